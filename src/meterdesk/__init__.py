"""meterdesk: an exact, append-only usage ledger for usage-based billing."""

__version__ = "0.1.0"
