"""The end of every concurrency and fault test: the ledger's derived figures recomputed from its entries."""

from __future__ import annotations


def assert_verified(ledger) -> None:
    """`meterdesk verify` on the ledger, through its service: no difference, or each one in the failure."""
    from meterdesk.services.verify import verify_ledger

    result = verify_ledger(ledger)
    assert result.ok, "verify found differences:\n" + "\n".join(str(d) for d in result.differences)
