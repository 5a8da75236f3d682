"""Literal ledgers for service tests: units, plans and customers created through the services."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from meterdesk.services.catalog import add_customer, add_unit, save_plan

# One usage entry written straight into the ledger table, past every service (for the schema's own guards).
ENTRY_INSERT = (
    "INSERT INTO usage_entries (customer_id, unit_id, quantity, occurred_at, recorded_at, billed_at, period, late, "
    "request_id, kind, corrects_id, source, actor, note, charged) "
    "VALUES (1, 1, 1, 0, 0, 0, '2026-01', false, :request_id, :kind, NULL, :source, 'test', NULL, NULL)"
)

PRO_PLAN = {
    "code": "pro",
    "name": "Pro",
    "currency": "EUR",
    "base_fee": "49.00",
    "charges": [
        {
            "unit": "api_calls",
            "included": "10000",
            "model": "graduated",
            "tiers": [
                {"up_to": "100000", "unit_price": "0.001"},
                {"unit_price": "0.0005", "flat_fee": "10"},
            ],
        },
        {"unit": "storage_gb", "model": "per_unit", "unit_price": "0.10"},
    ],
}

PREPAID_PLAN = {
    "code": "starter",
    "name": "Starter",
    "currency": "EUR",
    "base_fee": "5.00",
    "charges": [
        {"unit": "api_calls", "model": "per_unit", "unit_price": "0.002"},
        {"unit": "storage_gb", "model": "per_unit", "unit_price": "0.10"},
    ],
}


def seed(ledger) -> None:
    """Units api_calls (whole) and storage_gb (3 decimals); plans pro and starter;
    customers acme (postpaid, pro) and bolt (prepaid, starter, credit limit 5)."""
    add_unit(ledger, "api_calls", "API calls", 0, "sum", actor="tests")
    add_unit(ledger, "storage_gb", "Storage GB", 3, "sum", actor="tests")
    add_unit(ledger, "seats", "Seats", 0, "max", actor="tests")
    add_unit(ledger, "builds", "Builds", 0, "count", actor="tests")
    save_plan(ledger, PRO_PLAN, actor="tests")
    save_plan(ledger, PREPAID_PLAN, actor="tests")
    add_customer(ledger, "acme", "Acme Corp", "pro", email="billing@acme.test", actor="tests")
    add_customer(ledger, "bolt", "Bolt Ltd", "starter", prepaid=True, credit_limit="5", actor="tests")


def last_month_at(day: int = 15, hour: int = 12) -> str:
    """A timestamp inside the previous calendar month (UTC), as ISO text."""
    first = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous = (first - timedelta(days=1)).replace(day=day, hour=hour)
    return previous.strftime("%Y-%m-%dT%H:%M:%SZ")


def last_month() -> str:
    return last_month_at()[:7]


def this_month() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m")
