"""Is the database there: the usage API's health check."""

from __future__ import annotations

from sqlalchemy import text

from meterdesk.store.engine import Ledger


def ping(ledger: Ledger) -> str:
    """One round trip to the database; its dialect ("sqlite" or "postgresql"). Unavailable when it is unreachable."""
    with ledger.read() as connection:
        connection.execute(text("SELECT 1")).scalar()
    return ledger.dialect
