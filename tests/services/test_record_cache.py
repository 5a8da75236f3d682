"""record_usage remembers what it read about a customer between events: what another desk changes shows at once."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text

from meterdesk.services.billing import close_period
from meterdesk.services.catalog import add_customer, assign_plan, save_plan, update_customer
from meterdesk.services.credits import grant_credits
from meterdesk.services.recording import record_usage
from meterdesk.store.engine import open_ledger
from tests.services.helpers import last_month, last_month_at, seed, this_month

METERED = {
    "code": "metered",
    "name": "Metered",
    "currency": "EUR",
    "base_fee": "0",
    "charges": [{"unit": "api_calls", "model": "per_unit", "included": "100", "unit_price": "0.01"}],
}
PRICEY = {
    "code": "pricey",
    "name": "Pricey",
    "currency": "EUR",
    "base_fee": "0",
    "charges": [{"unit": "api_calls", "model": "per_unit", "unit_price": "0.01"}],
}


@pytest.fixture
def desks(ledger, ledger_url):
    """Two desks on one ledger: `mine` records events in a loop, `other` (another process) changes things."""
    seed(ledger)
    other = open_ledger(ledger_url)
    yield ledger, other
    other.close()


def _warm(ledger, customer: str, tag: str, amount: str = "1", **options) -> None:
    """Record twice, so that the next event can run on what these remembered."""
    for n in range(2):
        record_usage(ledger, customer, "api_calls", amount, f"{tag}-{n}", **options)


def test_usage_recorded_by_another_desk_moves_the_total_the_next_charge_is_priced_from(desks):
    mine, other = desks
    save_plan(mine, METERED, actor="tests")
    add_customer(mine, "cato", "Cato", "metered", prepaid=True, actor="tests")
    grant_credits(mine, "cato", "10", "g")
    assert record_usage(mine, "cato", "api_calls", "60", "a-1").charged == 0
    assert record_usage(mine, "cato", "api_calls", "30", "a-2").charged == 0  # 90 of the 100 included
    assert record_usage(other, "cato", "api_calls", "20", "b-1").charged == Decimal("0.1")  # 110: 10 billable
    third = record_usage(mine, "cato", "api_calls", "10", "a-3")
    assert third.charged == Decimal("0.1") and third.balance == Decimal("9.8")


def test_a_grant_from_another_desk_shows_in_the_next_balance(desks):
    mine, other = desks
    _warm(mine, "bolt", "warm")  # starter: 0.002 a call
    grant_credits(other, "bolt", "10", "top-up")
    assert record_usage(mine, "bolt", "api_calls", "1", "after").balance == Decimal("10") - Decimal("0.006")


def test_a_period_closed_by_another_desk_makes_the_next_event_in_it_late(desks):
    mine, other = desks
    _warm(mine, "acme", "warm", occurred_at=last_month_at(10))
    close_period(other, last_month())
    late = record_usage(mine, "acme", "api_calls", "7", "late-one", occurred_at=last_month_at(20))
    assert late.late is True and late.period == this_month()


def test_a_plan_changed_by_another_desk_prices_the_next_event(desks):
    mine, other = desks
    save_plan(mine, PRICEY, actor="tests")
    first_of_month = datetime.now(timezone.utc).date().replace(day=1)
    add_customer(mine, "dora", "Dora", "starter", prepaid=True, start=last_month() + "-01", actor="tests")
    _warm(mine, "dora", "warm", amount="10")
    assert record_usage(mine, "dora", "api_calls", "10", "before").charged == Decimal("0.02")
    assign_plan(other, "dora", "pricey", start=first_of_month.isoformat(), actor="tests")
    assert record_usage(mine, "dora", "api_calls", "10", "after").charged == Decimal("0.1")


def test_a_credit_limit_lowered_by_another_desk_decides_the_next_over_limit(desks):
    mine, other = desks
    _warm(mine, "bolt", "warm", amount="1000")  # balance -4, credit limit 5
    update_customer(other, "bolt", credit_limit="1", actor="tests")
    result = record_usage(mine, "bolt", "api_calls", "1", "after")
    assert result.balance == Decimal("-4.002") and result.over_limit is True


def test_other_writes_of_the_same_process_show_in_the_next_event(desks):
    mine, _ = desks
    _warm(mine, "bolt", "warm")
    grant_credits(mine, "bolt", "10", "top-up")  # same ledger, possibly the same connection
    assert record_usage(mine, "bolt", "api_calls", "1", "after").balance == Decimal("10") - Decimal("0.006")


def test_a_change_written_by_another_program_shows_in_the_next_event(desks, ledger_url):
    mine, _ = desks
    _warm(mine, "bolt", "warm")
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as connection:  # plain SQL, no meterdesk in between
            connection.execute(text(
                "UPDATE customer_balances SET granted = granted + 5000000, balance = balance + 5000000 "
                "WHERE customer_id = (SELECT id FROM customers WHERE external_id = 'bolt')"
            ))
    finally:
        engine.dispose()
    assert record_usage(mine, "bolt", "api_calls", "1", "after").balance == Decimal("5") - Decimal("0.006")
