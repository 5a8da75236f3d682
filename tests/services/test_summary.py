"""Summaries and the period report: every customer priced in one pass agrees with each customer's summary."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from meterdesk.domain.periods import Period
from meterdesk.services.catalog import add_customer, save_plan
from meterdesk.services.corrections import correct_entry
from meterdesk.services.summary import period_report, top_customers, usage_summary
from meterdesk.services.recording import record_usage
from tests.services.helpers import PRO_PLAN, last_month, last_month_at, seed, this_month

SEATS_PLAN = {
    "code": "team",
    "name": "Team",
    "currency": "EUR",
    "base_fee": "10.00",
    "charges": [
        {"unit": "seats", "model": "volume", "tiers": [{"up_to": "10", "unit_price": "5"}, {"unit_price": "4"}]},
        {"unit": "builds", "model": "package", "package_size": "3", "package_price": "0.50"},
        {"unit": "storage_gb", "model": "per_unit", "included": "1", "unit_price": "0.333"},
    ],
}


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    save_plan(ledger, SEATS_PLAN, actor="tests")
    period = Period.parse(last_month())
    add_customer(ledger, "crew", "Crew GmbH", "team", start=date(period.year, period.month, 11).isoformat(), actor="t")
    add_customer(ledger, "idle", "Idle Inc", "pro", actor="t")
    record_usage(ledger, "acme", "api_calls", "150000", "a1", occurred_at=last_month_at(2))
    record_usage(ledger, "acme", "storage_gb", "12.345", "a2", occurred_at=last_month_at(3))
    record_usage(ledger, "bolt", "api_calls", "700", "b1", occurred_at=last_month_at(4))
    for day, seats in ((11, "7"), (12, "12"), (13, "9")):
        record_usage(ledger, "crew", "seats", seats, f"s{day}", occurred_at=last_month_at(day))
    wrong = record_usage(ledger, "crew", "seats", "30", "s14", occurred_at=last_month_at(14))
    correct_entry(ledger, wrong.entry_id, "8", "typo", actor="t")  # the peak of 30 no longer counts
    for number in range(7):
        record_usage(ledger, "crew", "builds", "1", f"c{number}", occurred_at=last_month_at(15))
    record_usage(ledger, "crew", "storage_gb", "2.5", "g1", occurred_at=last_month_at(16))
    return ledger


def test_the_period_report_prices_every_customer_as_its_summary_does(seeded):
    report = period_report(seeded, last_month())
    assert {row.customer for row in report} == {"acme", "bolt", "crew", "idle"}
    for row in report:
        summary = usage_summary(seeded, row.customer, period=last_month())
        assert (row.base_fee, row.usage_amount, row.total, row.due) == (summary.base_fee, summary.usage_amount, summary.total, summary.due)
        by_unit = {unit.unit: (unit.quantity, unit.amount) for unit in summary.units}
        assert [(code, quantity, amount) for code, quantity, amount in row.units] == [
            (code, *by_unit[code]) for code, _, _ in row.units
        ]


def test_the_period_report_aggregates_sum_count_and_max_units(seeded):
    crew = next(row for row in period_report(seeded, last_month()) if row.customer == "crew")
    assert crew.units == (
        ("seats", Decimal(12), Decimal("48.00")),  # the corrected 30 is not the peak; 12 seats, all at 4 (volume)
        ("builds", Decimal(7), Decimal("1.50")),  # 3 packages of 3
        ("storage_gb", Decimal("2.5"), Decimal("0.50")),  # 1.5 * 0.333 = 0.4995, rounded once
    )
    period = Period.parse(last_month())
    assert crew.base_fee == (Decimal("10.00") * (period.days - 10) / period.days).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")


def test_the_period_report_lists_the_largest_total_first(seeded):
    report = period_report(seeded, last_month())
    totals = [row.total for row in report]
    assert totals == sorted(totals, reverse=True)
    assert report[0].customer == "acme" and report[0].total == Decimal("180.23")
    assert [row.customer for row in top_customers(seeded, last_month(), limit=2)] == [row.customer for row in report[:2]]
    idle = next(row for row in report if row.customer == "idle")
    assert idle.usage_amount == Decimal("0.00") and idle.total == Decimal("49.00")
    assert [quantity for _, quantity, _ in idle.units] == [Decimal(0), Decimal(0)]


def test_the_period_report_prices_each_period_with_the_plan_version_in_force(seeded):
    record_usage(seeded, "acme", "api_calls", "20000", "now", occurred_at=this_month() + "-01T00:00:00Z")
    from meterdesk.services.billing import close_period

    close_period(seeded, last_month())
    save_plan(seeded, dict(PRO_PLAN, base_fee="39.00"), actor="t")  # used: a new version from next period
    acme = {period: next(row for row in period_report(seeded, period) if row.customer == "acme")
            for period in (last_month(), this_month(), str(Period.parse(this_month()).next()))}
    assert [row.base_fee for row in acme.values()] == [Decimal("49.00"), Decimal("49.00"), Decimal("39.00")]
    assert acme[this_month()].units[0] == ("api_calls", Decimal(20000), Decimal("10.00"))


def test_a_summary_follows_what_another_desk_changes_in_the_catalog(seeded, ledger_url):
    from meterdesk.services.catalog import assign_plan
    from meterdesk.store.engine import open_ledger

    record_usage(seeded, "idle", "api_calls", "20000", "i1")
    assert usage_summary(seeded, "idle").total == Decimal("59.00")  # 10000 billable at 0.001, plus 49
    other_desk = open_ledger(ledger_url)
    try:
        save_plan(other_desk, dict(PRO_PLAN, base_fee="45.00"), actor="t")  # unused: a new version at once
        assert usage_summary(seeded, "idle").total == Decimal("55.00")
        save_plan(other_desk, dict(PRO_PLAN, code="flat", name="Flat", charges=[]), actor="t")
        assign_plan(other_desk, "idle", "flat", start=this_month() + "-01", actor="t")
        after = usage_summary(seeded, "idle")
        assert (after.plan, after.base_fee, after.usage_amount) == ("flat", Decimal("49.00"), Decimal(0))
        assert [unit.quantity for unit in after.units if unit.unit == "api_calls"] == [Decimal(20000)]
    finally:
        other_desk.close()


def test_a_summary_leaves_its_connection_ready_for_the_next_transaction(seeded):
    from sqlalchemy import literal, select

    from meterdesk.store.queries import fetch_alone

    if seeded.dialect == "postgresql":
        from psycopg.pq import TransactionStatus

    for _ in range(8):  # past psycopg's prepare threshold: the statement runs prepared
        usage_summary(seeded, "acme", period=last_month())
    daily = usage_summary(seeded, "acme", period=last_month(), granularity="day")  # more statements after it
    assert sum(point.quantity for point in daily.series if point.unit == "api_calls") == Decimal(150000)
    with seeded.read() as connection:
        assert fetch_alone(connection, "SELECT 1") == [(1,)]
        assert fetch_alone(connection, "SELECT 2") == [(2,)]
        assert connection.execute(select(literal(3))).scalar() == 3  # and then statements in a transaction
        if seeded.dialect == "postgresql":
            driver = connection.connection.driver_connection
            assert driver.autocommit is False and driver.info.transaction_status == TransactionStatus.INTRANS
    record_usage(seeded, "acme", "api_calls", "1", "after", occurred_at=last_month_at(20))
    assert usage_summary(seeded, "acme", period=last_month()).units[0].quantity == Decimal(150001)
    with pytest.raises(Exception, match="unknown customer"):
        usage_summary(seeded, "nobody", period=last_month())
