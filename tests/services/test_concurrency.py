"""Several processes recording the same request ids at once: one entry each, one charge each."""

from __future__ import annotations

import multiprocessing
from decimal import Decimal

from meterdesk.services.credits import grant_credits
from meterdesk.services.entries import count_entries, list_entries
from meterdesk.services.summary import usage_summary
from tests.services.helpers import seed
from tests.support.verified import assert_verified

PROCESSES = 4
EVENTS = 40


def _record_all(url: str, start_barrier, offset: int) -> tuple[int, int]:
    from meterdesk.services.recording import record_usage
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url)
    start_barrier.wait()
    new = duplicates = 0
    # Each process walks the ids from a different starting point so they collide all the time.
    for step in range(EVENTS):
        n = (step + offset) % EVENTS
        for customer in ("acme", "bolt"):
            result = record_usage(ledger, customer, "api_calls", "10", f"race-{n}", occurred_at=None)
            new += not result.duplicate
            duplicates += result.duplicate
    ledger.close()
    return new, duplicates


def _import_same_file(url: str, path: str, start_barrier) -> int:
    from meterdesk.services.imports import import_usage
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url)
    start_barrier.wait()
    result = import_usage(ledger, path, batch_size=50)
    ledger.close()
    return result.recorded


def test_racing_processes_leave_one_entry_per_request_id(ledger, ledger_url):
    seed(ledger)
    grant_credits(ledger, "bolt", "100", "g")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(PROCESSES)
        with context.Pool(PROCESSES) as pool:
            outcomes = pool.starmap(_record_all, [(ledger_url, barrier, i * 7) for i in range(PROCESSES)])
    assert sum(new for new, _ in outcomes) == 2 * EVENTS
    assert sum(duplicates for _, duplicates in outcomes) == 2 * EVENTS * (PROCESSES - 1)
    assert count_entries(ledger) == 2 * EVENTS
    bolt = usage_summary(ledger, "bolt")
    # starter plan: 0.002 per call; 40 events of 10 calls charged exactly once each
    assert bolt.balance == Decimal("100") - Decimal("0.002") * 10 * EVENTS
    assert sum(e.charged for e in list_entries(ledger, limit=1000) if e.customer == "bolt") == Decimal("0.8")
    assert_verified(ledger)


def test_racing_imports_of_one_file_count_each_line_once(ledger, ledger_url, tmp_path):
    seed(ledger)
    grant_credits(ledger, "bolt", "100", "g")
    path = tmp_path / "usage.csv"
    lines = ["customer,unit,amount,request_id"]
    lines += [f"{'acme' if i % 2 else 'bolt'},api_calls,{i % 9 + 1},imp-{i}" for i in range(400)]
    path.write_text("\n".join(lines) + "\n")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(3)
        with context.Pool(3) as pool:
            recorded = pool.starmap(_import_same_file, [(ledger_url, str(path), barrier)] * 3)
    assert sum(recorded) == 400
    assert count_entries(ledger) == 400
    expected_bolt = sum(i % 9 + 1 for i in range(400) if i % 2 == 0)
    bolt = next(u for u in usage_summary(ledger, "bolt").units if u.unit == "api_calls")
    assert bolt.quantity == expected_bolt
    assert usage_summary(ledger, "bolt").balance == Decimal(100) - Decimal("0.002") * expected_bolt
    assert_verified(ledger)
