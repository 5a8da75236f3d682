"""services/chart_data: reversal markers, allowances, bucket edges and the balance series, read in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from meterdesk.domain.errors import InvalidInput, NotFound
from meterdesk.domain.periods import Period, to_micros
from meterdesk.services.chart_data import align_range, auto_granularity, bucket_edges, chart_data
from meterdesk.services.corrections import correct_entry
from meterdesk.services.credits import grant_credits
from meterdesk.services.recording import record_usage
from tests.services.helpers import last_month, last_month_at, seed

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


def test_reversals_are_marked_in_the_bucket_the_series_puts_them(ledger):
    seed(ledger)
    first = record_usage(ledger, "acme", "api_calls", "40", "a-1", occurred_at=last_month_at(3, 7)).entry_id
    record_usage(ledger, "acme", "api_calls", "60", "a-2", occurred_at=last_month_at(3, 9))
    correct_entry(ledger, first, "10", "typo", actor="tests")
    for granularity, bucket in (("hour", (3, 7)), ("day", (3, 0)), ("month", (1, 0))):
        data = chart_data(ledger, "acme", period=last_month(), granularity=granularity)
        day, hour = bucket
        expected_start = to_micros(datetime.fromisoformat(last_month_at(day, hour).replace("Z", "+00:00")))
        assert [(m.start_us, m.unit, m.reversals) for m in data.reversals] == [(expected_start, "api_calls", 1)]
        starts = {p.start_us for p in data.summary.series}
        assert expected_start in starts


def test_allowances_come_from_the_plan_pricing_the_period(ledger):
    seed(ledger)
    data = chart_data(ledger, "acme")
    api = data.allowance("api_calls")
    assert (api.model, api.included, api.tier_bounds) == ("graduated", Decimal(10000), (Decimal(110000),))
    storage = data.allowance("storage_gb")
    assert (storage.model, storage.included, storage.tier_bounds) == ("per_unit", Decimal(0), ())
    assert data.balance is None


def test_balance_series_is_grants_minus_charges_over_time(ledger):
    seed(ledger)
    grant_credits(ledger, "bolt", "5", "g-1")
    record_usage(ledger, "bolt", "api_calls", "1000", "b-1")  # 2.00 charged
    record_usage(ledger, "bolt", "storage_gb", "0.125", "b-2")  # 0.0125 charged
    data = chart_data(ledger, "bolt", granularity="hour")
    points = data.balance.points
    assert points[-1].balance == Decimal("2.9875") == data.balance.current
    assert all(point.balance == Decimal(0) for point in points[:-1])  # nothing happened before this hour
    assert len(points) == (data.now_us - data.start_us) // HOUR_US + 1
    assert data.balance.credit_limit == Decimal(5)


def test_charges_sit_where_their_usage_is_and_grants_where_they_were_made(ledger):
    seed(ledger)
    now = datetime.now(UTC)
    early = now.replace(day=1, hour=0, minute=30, second=0, microsecond=0)
    if now - early < timedelta(hours=2):
        pytest.skip("needs two hours of the month behind us")
    record_usage(ledger, "bolt", "api_calls", "500", "b-early", occurred_at=early.strftime("%Y-%m-%dT%H:%M:%SZ"))  # 1.00
    grant_credits(ledger, "bolt", "4", "g-now")
    data = chart_data(ledger, "bolt", granularity="hour")
    balances = [point.balance for point in data.balance.points]
    assert balances[0] == Decimal(-1)  # the first hour's usage, before the grant made just now
    assert balances[-1] == Decimal(3) == data.summary.balance


def test_a_range_that_ended_before_now_opens_with_the_balance_then(ledger):
    seed(ledger)
    grant_credits(ledger, "bolt", "7.25", "g-1")
    today = datetime.now(UTC).date()
    later = chart_data(ledger, "bolt", start=today + timedelta(days=1), end=today + timedelta(days=3))
    assert later.balance.opening == Decimal("7.25")
    assert later.balance.points == ()  # the future has no balance yet
    earlier = chart_data(ledger, "bolt", start=today - timedelta(days=3), end=today, granularity="day")
    assert earlier.balance.opening == Decimal(0)
    assert [point.balance for point in earlier.balance.points] == [Decimal(0)] * 3


def test_bucket_edges_follow_local_days_and_periods_of_the_billing_time_zone(tmp_path, monkeypatch):
    from meterdesk.store.engine import open_ledger

    monkeypatch.setenv("METERDESK_TIMEZONE", "America/New_York")
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ny.sqlite3'}")
    try:
        new_york = ZoneInfo("America/New_York")
        start = to_micros(datetime(2026, 11, 1, tzinfo=new_york))
        end = to_micros(datetime(2026, 11, 4, tzinfo=new_york))
        days = bucket_edges(ledger, start, end, "day")
        assert days == tuple(to_micros(datetime(2026, 11, d, tzinfo=new_york)) for d in (1, 2, 3, 4))
        assert days[1] - days[0] == 25 * HOUR_US  # 1 Nov 2026: summer time ends in New York
        hours = bucket_edges(ledger, start, end, "hour")
        assert len(hours) == 73 + 1
        assert align_range(ledger, start + 5 * HOUR_US, end - HOUR_US, "month") == (
            to_micros(datetime(2026, 11, 1, tzinfo=new_york)),
            to_micros(datetime(2026, 12, 1, tzinfo=new_york)),
        )
        assert align_range(ledger, start + 5 * HOUR_US, end - HOUR_US, "day") == (start, end)
    finally:
        ledger.close()


def test_granularity_is_chosen_from_the_range_length():
    assert auto_granularity(0, 2 * DAY_US) == "hour"
    assert auto_granularity(0, 31 * DAY_US) == "day"
    assert auto_granularity(0, 90 * DAY_US) == "day"
    assert auto_granularity(0, 365 * DAY_US) == "month"


def test_bad_requests_name_the_field(ledger):
    seed(ledger)
    with pytest.raises(InvalidInput, match="to"):
        chart_data(ledger, "acme", start="2026-01-05", end="2026-01-01")
    with pytest.raises(InvalidInput, match="granularity"):
        chart_data(ledger, "acme", granularity="week")
    with pytest.raises(InvalidInput, match="from"):
        chart_data(ledger, "acme", start="yesterday", end="2026-01-01")
    with pytest.raises(NotFound):
        chart_data(ledger, "nobody")
    assert chart_data(ledger, "acme", period=Period.parse(last_month())).summary.period == last_month()
