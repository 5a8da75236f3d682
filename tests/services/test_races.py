"""Writers racing on one ledger, checked exactly: prepaid charges add up to the price of the final quantity on
plans that are not linear, and usage recorded while a period closes lands on its invoice or, late, in the next.

Each test runs on SQLite and on PostgreSQL (at READ COMMITTED, where a statement that waits for a row lock keeps
the snapshot it took before the wait: what the lock protects must be read after it)."""

from __future__ import annotations

import multiprocessing
import random
from collections import defaultdict
from decimal import Decimal

import pytest

from meterdesk.domain.money import round_balance
from meterdesk.domain.plans import plan_from_dict
from meterdesk.domain.pricing import charge_price
from meterdesk.services.billing import preview_invoice
from meterdesk.services.catalog import add_customer, add_unit, save_plan
from meterdesk.services.credits import grant_credits
from meterdesk.services.entries import list_entries
from meterdesk.services.summary import usage_summary
from tests.services.helpers import last_month, last_month_at, this_month
from tests.support.verified import assert_verified

WRITERS = 8
EVENTS_PER_WRITER = 30
REQUEST_IDS = 90  # fewer than WRITERS * EVENTS_PER_WRITER: every id is raced by several writers

# Three prepaid plans whose price is not linear in the quantity: a running total read from a stale snapshot
# prices an event at the wrong position and the charges no longer add up to the price of the final quantity.
NONLINEAR_PLANS = {
    "package": {"unit": "calls", "model": "package", "package_size": "7", "package_price": "1.00"},
    "graduated": {
        "unit": "calls",
        "included": "25",
        "model": "graduated",
        "tiers": [
            {"up_to": "60", "unit_price": "0.011"},
            {"up_to": "150", "unit_price": "0.0037", "flat_fee": "0.5"},
            {"unit_price": "0.0013", "flat_fee": "0.25"},
        ],
    },
    "volume": {
        "unit": "calls",
        "model": "volume",
        "tiers": [
            {"up_to": "40", "unit_price": "0.2"},
            {"up_to": "200", "unit_price": "0.07", "flat_fee": "3"},
            {"unit_price": "0.03", "flat_fee": "9"},
        ],
    },
}


def _plan(code: str, charge: dict) -> dict:
    return {"code": code, "name": code.title(), "currency": "EUR", "base_fee": "0", "charges": [charge]}


def _seed_prepaid(ledger) -> None:
    add_unit(ledger, "calls", "Calls", 0, "sum", actor="tests")
    for code, charge in NONLINEAR_PLANS.items():
        save_plan(ledger, _plan(code, charge), actor="tests")
        add_customer(ledger, f"c-{code}", code.title(), code, prepaid=True, actor="tests")
        grant_credits(ledger, f"c-{code}", "1000", f"grant-{code}")


def _event(request_id: int) -> tuple[str, int]:
    """The customer and amount of a request id: the same for every writer, so a retry is a duplicate."""
    customers = sorted(NONLINEAR_PLANS)
    return f"c-{customers[request_id % 3]}", request_id % 5 + 1


def _record_racing(url: str, barrier, seed: int) -> int:
    from meterdesk.services.recording import record_usage
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url)
    ids = random.Random(seed).choices(range(REQUEST_IDS), k=EVENTS_PER_WRITER)
    barrier.wait()
    recorded = 0
    for n in ids:
        customer, amount = _event(n)
        recorded += not record_usage(ledger, customer, "calls", amount, f"race-{n}", source="api").duplicate
    ledger.close()
    return recorded


def _run(target, arguments: list[tuple]) -> list:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(len(arguments))
        with context.Pool(len(arguments)) as pool:
            return pool.starmap(target, [(url, barrier, *rest) for url, *rest in arguments])


@pytest.mark.slow
def test_racing_writers_charge_prepaid_customers_the_price_of_their_final_quantity(ledger, ledger_url):
    _seed_prepaid(ledger)
    recorded = _run(_record_racing, [(ledger_url, seed) for seed in range(WRITERS)])

    entries = list_entries(ledger, limit=10_000)
    assert sum(recorded) == len(entries)
    assert len({(e.customer, e.request_id) for e in entries}) == len(entries)
    problems = []
    for code, charge in NONLINEAR_PLANS.items():
        customer = f"c-{code}"
        mine = [e for e in entries if e.customer == customer]
        quantity = sum((e.amount for e in mine), Decimal(0))
        charged = sum((e.charged for e in mine), Decimal(0))
        expected = round_balance(charge_price(plan_from_dict(_plan(code, charge)).charges[0], quantity))
        balance = usage_summary(ledger, customer).balance
        if charged != expected or balance != Decimal(1000) - expected:
            problems.append(f"{code}: quantity {quantity}, charged {charged}, price {expected}, balance {balance}")
    assert not problems, "; ".join(problems)
    assert_verified(ledger)


def _record_into_closing_month(url: str, barrier, seed: int, month_at: str) -> int:
    from meterdesk.services.recording import record_usage
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url)
    barrier.wait()
    for n in range(60):
        record_usage(ledger, "acme", "calls", n % 5 + 1, f"close-{seed}-{n}", occurred_at=month_at, source="api")
    ledger.close()
    return 60


def _close_month(url: str, barrier, month: str) -> int:
    from meterdesk.services.billing import close_period
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url)
    barrier.wait()
    result = close_period(ledger, month, actor="tests")
    ledger.close()
    return len(result.invoices)


@pytest.mark.slow
def test_usage_recorded_while_its_period_closes_is_on_the_invoice_or_late_in_the_next(ledger, ledger_url):
    add_unit(ledger, "calls", "Calls", 0, "sum", actor="tests")
    save_plan(ledger, _plan("metered", {"unit": "calls", "model": "per_unit", "unit_price": "0.01"}), actor="tests")
    add_customer(ledger, "acme", "Acme", "metered", actor="tests")
    month, at = last_month(), last_month_at()
    # A head start, so that the close has work to do while the writers go on.
    from meterdesk.services.recording import record_usage

    for n in range(20):
        record_usage(ledger, "acme", "calls", 1, f"early-{n}", occurred_at=at, source="api")

    _run_close_race(ledger_url, at, month)

    entries = list_entries(ledger, limit=10_000)
    on_invoice = sum((e.amount for e in entries if e.period == month), Decimal(0))
    late = [e for e in entries if e.period != month]
    invoice = preview_invoice(ledger, "acme", month)
    usage_lines = [line for line in invoice.lines if line.kind in ("usage", "correction")]
    assert sum((line.quantity for line in usage_lines), Decimal(0)) == on_invoice
    assert all(e.late and e.period == this_month() for e in late)
    assert invoice.closed and late, "the close should have raced the writers"
    assert len(entries) == 20 + 4 * 60
    assert_verified(ledger)


def _run_close_race(url: str, at: str, month: str) -> None:
    """Four writers into `month` and one closer, started together: the close takes the customer's lock
    somewhere in the middle of the writers' stream."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(5)
        with context.Pool(5) as pool:
            writers = [pool.apply_async(_record_into_closing_month, (url, barrier, 10 + seed, at)) for seed in range(4)]
            closer = pool.apply_async(_close_month, (url, barrier, month))
            [w.get(timeout=300) for w in writers]
            closer.get(timeout=300)
