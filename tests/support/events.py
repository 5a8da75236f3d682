"""Recording, in order, when things a test races against happen (a chart read ending, a ledger closing)."""

from __future__ import annotations


def record_close(monkeypatch, ledger, events: list[str], label: str) -> None:
    """Append `label` to `events` when `ledger.close()` is called (then close it as usual)."""
    close = ledger.close

    def recorded() -> None:
        events.append(label)
        close()

    monkeypatch.setattr(ledger, "close", recorded)
