"""Recording usage: counted once per request id forever, charged at once for prepaid customers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from meterdesk.domain.errors import Conflict, InvalidInput, NotFound
from meterdesk.services.billing import close_period
from meterdesk.services.credits import grant_credits
from meterdesk.services.entries import EntryFilter, list_entries
from meterdesk.services.summary import usage_summary
from meterdesk.services.recording import record_usage
from tests.services.helpers import last_month, last_month_at, seed, this_month


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    return ledger


def test_record_returns_a_new_entry_in_the_current_period(seeded):
    result = record_usage(seeded, "acme", "api_calls", "1500", "req-1")
    assert result.duplicate is False
    assert result.period == this_month()
    assert result.charged is None and result.balance is None
    [entry] = list_entries(seeded)
    assert (entry.id, entry.customer, entry.unit, entry.amount, entry.kind) == (result.entry_id, "acme", "api_calls", Decimal(1500), "usage")


def test_same_request_again_is_a_duplicate_and_writes_nothing(seeded):
    at = last_month_at(3)
    first = record_usage(seeded, "acme", "api_calls", "1500", "req-1", occurred_at=at)
    again = record_usage(seeded, "acme", "api_calls", "1500", "req-1", occurred_at=at)
    without_time = record_usage(seeded, "acme", "api_calls", "1500", "req-1")
    assert again.duplicate and without_time.duplicate
    assert again.entry_id == first.entry_id == without_time.entry_id
    assert len(list_entries(seeded)) == 1


@pytest.mark.parametrize("change", [
    {"amount": "1501"},
    {"unit": "storage_gb"},
    {"occurred_at": "2020-01-01T00:00:00Z"},
])
def test_same_request_id_with_a_difference_is_a_conflict(seeded, change):
    record_usage(seeded, "acme", "api_calls", "1500", "req-1", occurred_at=last_month_at(3))
    arguments = {"customer": "acme", "unit": "api_calls", "amount": "1500", "request_id": "req-1", "occurred_at": last_month_at(3)} | change
    with pytest.raises(Conflict, match="request_id"):
        record_usage(seeded, **arguments)
    assert len(list_entries(seeded)) == 1


def test_request_ids_are_unique_per_customer_not_globally(seeded):
    grant_credits(seeded, "bolt", "10", "g")
    a = record_usage(seeded, "acme", "api_calls", "1", "shared")
    b = record_usage(seeded, "bolt", "api_calls", "1", "shared")
    assert a.entry_id != b.entry_id and not b.duplicate


@pytest.mark.parametrize("arguments, field", [
    ({"amount": "abc"}, "amount"),
    ({"amount": "NaN"}, "amount"),
    ({"amount": "Infinity"}, "amount"),
    ({"amount": "0"}, "amount"),
    ({"amount": "-5"}, "amount"),
    ({"amount": "1000000000000001"}, "amount"),
    ({"amount": "1.5"}, "amount"),  # api_calls allows no decimals
    ({"request_id": ""}, "request_id"),
    ({"request_id": "x" * 256}, "request_id"),
    ({"occurred_at": "yesterday-ish"}, "occurred_at"),
])
def test_bad_input_names_the_field_and_writes_nothing(seeded, arguments, field):
    call = {"customer": "acme", "unit": "api_calls", "amount": "10", "request_id": "r"} | arguments
    with pytest.raises(InvalidInput) as caught:
        record_usage(seeded, **call)
    assert caught.value.field == field
    assert list_entries(seeded) == []


def test_future_timestamps_are_refused_but_five_minutes_of_skew_is_fine(seeded):
    soon = (datetime.now(timezone.utc) + timedelta(minutes=4)).isoformat()
    later = (datetime.now(timezone.utc) + timedelta(minutes=10)).isoformat()
    record_usage(seeded, "acme", "api_calls", "1", "soon", occurred_at=soon)
    with pytest.raises(InvalidInput, match="occurred_at"):
        record_usage(seeded, "acme", "api_calls", "1", "later", occurred_at=later)


def test_unknown_customer_or_unit_is_not_found(seeded):
    with pytest.raises(NotFound, match="customer"):
        record_usage(seeded, "nobody", "api_calls", "1", "r")
    with pytest.raises(NotFound, match="unit"):
        record_usage(seeded, "acme", "furlongs", "1", "r")


def test_decimal_units_keep_their_places_exactly(seeded):
    record_usage(seeded, "acme", "storage_gb", "0.001", "a")
    record_usage(seeded, "acme", "storage_gb", "2.5", "b")
    with pytest.raises(InvalidInput, match="amount"):
        record_usage(seeded, "acme", "storage_gb", "0.0001", "c")
    summary = usage_summary(seeded, "acme")
    storage = next(u for u in summary.units if u.unit == "storage_gb")
    assert storage.quantity == Decimal("2.501")
    assert storage.amount == Decimal("0.25")  # 2.501 * 0.10 = 0.2501 -> 0.25


def test_prepaid_usage_is_charged_at_once_and_the_balance_drops(seeded):
    grant_credits(seeded, "bolt", "10.00", "top-up-1")
    first = record_usage(seeded, "bolt", "api_calls", "1000", "b-1")
    assert first.charged == Decimal("2") and first.balance == Decimal("8")
    second = record_usage(seeded, "bolt", "api_calls", "1", "b-2")
    assert second.charged == Decimal("0.002") and second.balance == Decimal("7.998")
    assert second.to_json()["balance"] == "8.00"  # shown rounded, kept exact
    assert second.to_json()["balance_exact"] == "7.998000"


def test_prepaid_balance_may_go_negative_and_reports_over_limit(seeded):
    grant_credits(seeded, "bolt", "1", "top-up")
    within = record_usage(seeded, "bolt", "api_calls", "2500", "b-1")  # 5.00 -> balance -4 (limit 5)
    assert within.balance == Decimal("-4") and within.over_limit is False
    beyond = record_usage(seeded, "bolt", "api_calls", "1000", "b-2")  # -6 < -5
    assert beyond.balance == Decimal("-6") and beyond.over_limit is True
    duplicate = record_usage(seeded, "bolt", "api_calls", "1000", "b-2")
    assert duplicate.duplicate and duplicate.charged == Decimal("2") and duplicate.balance == Decimal("-6")


def test_prepaid_graduated_charges_follow_the_period_total(seeded):
    from meterdesk.services.catalog import add_customer, save_plan

    save_plan(seeded, {"code": "tiered", "name": "Tiered", "currency": "EUR", "base_fee": "0", "charges": [
        {"unit": "api_calls", "model": "graduated", "included": "100",
         "tiers": [{"up_to": "1000", "unit_price": "0.01"}, {"unit_price": "0.001"}]}]}, actor="t")
    add_customer(seeded, "tiny", "Tiny", "tiered", prepaid=True, actor="t")
    charges = [record_usage(seeded, "tiny", "api_calls", amount, f"t-{i}").charged for i, amount in enumerate(["50", "100", "900", "1000"])]
    # totals 50, 150, 1050, 2050 -> billable 0, 50, 950, 1950 (tiers apply after the 100 included)
    # prices 0, 0.50, 9.50, 10.00 + 950 * 0.001 = 10.95; each charge is the step between them
    assert charges == [Decimal(0), Decimal("0.5"), Decimal("9"), Decimal("1.45")]
    assert usage_summary(seeded, "tiny").balance == Decimal("-10.95")


def test_late_usage_goes_to_the_open_period_once_its_own_is_closed(seeded):
    record_usage(seeded, "acme", "api_calls", "100", "on-time", occurred_at=last_month_at(10))
    close_period(seeded, last_month())
    late = record_usage(seeded, "acme", "api_calls", "7", "late-one", occurred_at=last_month_at(20))
    assert late.late is True and late.period == this_month()
    [entry] = list_entries(seeded, EntryFilter(text="late-one"))
    assert entry.occurred_text.startswith(last_month_at(20)[:10])  # keeps its real occurred_at
    assert usage_summary(seeded, "acme", period=last_month()).units[0].quantity == 100
    current = usage_summary(seeded, "acme", granularity="day")
    assert next(u for u in current.units if u.unit == "api_calls").quantity == 7
    assert sum(p.quantity for p in current.series if p.unit == "api_calls") == 7


def test_count_and_max_aggregations(seeded):
    from meterdesk.services.corrections import correct_entry

    for i, seats in enumerate(["3", "9", "5"]):
        record_usage(seeded, "acme", "seats", seats, f"s-{i}")
    for i in range(4):
        record_usage(seeded, "acme", "builds", "7", f"b-{i}")
    nine = next(e for e in list_entries(seeded) if e.request_id == "s-1")
    correct_entry(seeded, nine.id, "4", "seat count was wrong")
    summary = usage_summary(seeded, "acme")
    quantities = {u.unit: u.quantity for u in summary.units}
    assert quantities["seats"] == 5  # the 9 was reversed; max ignores it and its reversal
    assert quantities["builds"] == 4


def test_series_of_a_max_unit_shows_each_buckets_peak(seeded):
    from meterdesk.services.corrections import correct_entry

    day_one, day_two = last_month_at(3, 9), last_month_at(4, 9)
    record_usage(seeded, "acme", "seats", "3", "s-1", occurred_at=day_one)
    nine = record_usage(seeded, "acme", "seats", "9", "s-2", occurred_at=day_one)
    record_usage(seeded, "acme", "seats", "5", "s-3", occurred_at=day_two)
    record_usage(seeded, "acme", "seats", "4", "s-4", occurred_at=day_two)
    correct_entry(seeded, nine.entry_id, "6", "seat count was wrong")
    for granularity, expected in (("day", [Decimal(6), Decimal(5)]), ("hour", [Decimal(6), Decimal(5)]), ("month", [Decimal(6)])):
        summary = usage_summary(seeded, "acme", period=last_month(), granularity=granularity)
        assert [p.quantity for p in summary.series if p.unit == "seats"] == expected, granularity
    assert next(u for u in summary.units if u.unit == "seats").quantity == 6


def test_a_grant_can_be_dated_but_not_in_the_future(seeded):
    dated = grant_credits(seeded, "bolt", "10", "paid-last-month", granted_at=last_month_at(2))
    assert dated.balance == Decimal(10)
    with pytest.raises(InvalidInput, match="granted_at"):
        grant_credits(seeded, "bolt", "10", "paid-next-year", granted_at="2999-01-01T00:00:00Z")
