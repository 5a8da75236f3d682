"""Invoice previews and closing periods: lines rounded once, frozen for good, late usage moves on."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from meterdesk.domain.errors import Conflict
from meterdesk.domain.periods import Period
from meterdesk.services.billing import close_period, preview_invoice
from meterdesk.services.catalog import add_customer, assign_plan, get_plan, save_plan
from meterdesk.services.credits import grant_credits
from meterdesk.services.summary import usage_summary
from meterdesk.services.recording import record_usage
from tests.services.helpers import PRO_PLAN, last_month, last_month_at, seed, this_month


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    return ledger


def test_preview_of_a_hybrid_customer(seeded):
    record_usage(seeded, "acme", "api_calls", "150000", "a", occurred_at=last_month_at(2))
    record_usage(seeded, "acme", "storage_gb", "12.345", "b", occurred_at=last_month_at(3))
    invoice = preview_invoice(seeded, "acme", last_month())
    lines = [(line.kind, line.unit, line.quantity, line.amount) for line in invoice.lines]
    # api_calls: 140000 billable -> 100000 * 0.001 + 40000 * 0.0005 + 10 flat = 130.00
    assert lines == [
        ("base_fee", None, Decimal(1), Decimal("49.00")),
        ("usage", "api_calls", Decimal(150000), Decimal("130.00")),
        ("usage", "storage_gb", Decimal("12.345"), Decimal("1.23")),  # 1.2345 rounds half up once
    ]
    assert invoice.total == Decimal("180.23")
    assert invoice.to_json()["total"] == "180.23"
    assert [t["tier"] for t in invoice.to_json()["lines"][1]["tiers"]] == [1, 2]
    summary = usage_summary(seeded, "acme", period=last_month())
    assert summary.total == invoice.total


def test_prepaid_invoice_carries_the_base_fee_only(seeded):
    grant_credits(seeded, "bolt", "50", "g")
    record_usage(seeded, "bolt", "api_calls", "1000", "b", occurred_at=last_month_at(2))
    invoice = preview_invoice(seeded, "bolt", last_month())
    assert [(line.kind, line.amount) for line in invoice.lines] == [("base_fee", Decimal("5.00"))]


def test_base_fee_is_prorated_by_days(seeded):
    period = Period.parse(last_month())
    start = date(period.year, period.month, 11)
    add_customer(seeded, "late-starter", "Late Starter", "pro", start=start.isoformat(), actor="t")
    invoice = preview_invoice(seeded, "late-starter", period)
    active = period.days - 10
    expected = (Decimal("49.00") * active / period.days).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    assert invoice.lines[0].amount == expected
    assert f"{active} of {period.days} days" in invoice.lines[0].description


def test_closing_freezes_the_invoice_and_is_idempotent(seeded):
    record_usage(seeded, "acme", "api_calls", "20000", "a", occurred_at=last_month_at(2))
    first = close_period(seeded, last_month())
    assert {i.customer for i in first.invoices} == {"acme", "bolt"}
    acme = next(i for i in first.invoices if i.customer == "acme")
    assert acme.closed and acme.total == Decimal("59.00")
    again = close_period(seeded, last_month())
    assert again.invoices == [] and {i.id for i in again.already_closed} == {i.id for i in first.invoices}
    record_usage(seeded, "acme", "api_calls", "50000", "late", occurred_at=last_month_at(25))
    assert preview_invoice(seeded, "acme", last_month()) == acme
    current = preview_invoice(seeded, "acme", this_month())
    assert [line.kind for line in current.lines] == ["base_fee", "usage", "correction", "usage"]
    assert current.lines[2].quantity == 50000


def test_a_running_period_cannot_be_closed(seeded):
    with pytest.raises(Conflict, match="has not ended"):
        close_period(seeded, this_month())


def test_close_reports_progress_and_can_be_cancelled(seeded):
    seen = []
    result = close_period(seeded, last_month(), progress=seen.append, cancelled=lambda: len(seen) >= 1)
    assert result.cancelled and len(result.invoices) == 1 and seen[0].total == 2


def test_a_used_plan_gets_a_new_version_for_the_next_period(seeded):
    record_usage(seeded, "acme", "api_calls", "20000", "a", occurred_at=last_month_at(2))
    close_period(seeded, last_month())
    cheaper = dict(PRO_PLAN, base_fee="39.00")
    info = save_plan(seeded, cheaper, actor="t")
    assert info.version == 2 and info.in_use
    assert preview_invoice(seeded, "acme", last_month()).lines[0].amount == Decimal("49.00")
    assert preview_invoice(seeded, "acme", this_month()).lines[0].amount == Decimal("49.00")
    next_period = Period.parse(this_month()).next()
    assert preview_invoice(seeded, "acme", next_period).lines[0].amount == Decimal("39.00")
    assert get_plan(seeded, "pro").versions == 2


def test_an_unused_plan_is_replaced_at_once(seeded):
    save_plan(seeded, dict(PRO_PLAN, base_fee="45.00"), actor="t")
    assert preview_invoice(seeded, "acme", this_month()).lines[0].amount == Decimal("45.00")


def test_assigning_a_plan_starts_next_period(seeded):
    save_plan(seeded, dict(PRO_PLAN, code="pro2", name="Pro 2", base_fee="99.00"), actor="t")
    assign_plan(seeded, "acme", "pro2", actor="t")
    assert preview_invoice(seeded, "acme", this_month()).lines[0].amount == Decimal("49.00")
    assert preview_invoice(seeded, "acme", Period.parse(this_month()).next()).lines[0].amount == Decimal("99.00")
