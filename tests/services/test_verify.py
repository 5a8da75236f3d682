"""`verify`: a ledger written through the services verifies clean; a figure changed behind meterdesk's back is found."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from meterdesk.services.billing import close_period
from meterdesk.services.catalog import add_customer, save_plan
from meterdesk.services.corrections import correct_entry
from meterdesk.services.credits import grant_credits
from meterdesk.services.imports import import_text
from meterdesk.services.recording import record_usage
from meterdesk.services.verify import VerifyProgress, verify_ledger
from tests.services.helpers import last_month, last_month_at, seed, this_month

# Prepaid, with prices that are not linear: a running total priced wrongly shows up as a wrong charge.
TIERED_PLAN = {
    "code": "tiered",
    "name": "Tiered",
    "currency": "EUR",
    "base_fee": "10.00",
    "charges": [
        {"unit": "api_calls", "model": "graduated", "included": "100",
         "tiers": [{"up_to": "1000", "unit_price": "0.01", "flat_fee": "1"}, {"unit_price": "0.004", "flat_fee": "2.5"}]},
        {"unit": "storage_gb", "model": "package", "package_size": "10", "package_price": "0.75"},
        {"unit": "seats", "model": "volume", "tiers": [{"up_to": "5", "unit_price": "3"}, {"unit_price": "2", "flat_fee": "1"}]},
        {"unit": "builds", "model": "per_unit", "included": "2", "unit_price": "0.333333"},
    ],
}


def build_ledger(ledger) -> dict:
    """A ledger with a bit of everything: postpaid and prepaid customers, every aggregation, corrections
    before and after a close, late usage, an import and credit grants. Returns a few entry ids."""
    seed(ledger)
    save_plan(ledger, TIERED_PLAN, actor="tests")
    add_customer(ledger, "cobalt", "Cobalt", "tiered", prepaid=True, actor="tests")
    grant_credits(ledger, "bolt", "100", "g1", actor="tests")
    grant_credits(ledger, "cobalt", "50", "g1", actor="tests")
    ids = {}
    for number, (customer, unit, amount) in enumerate([
        ("acme", "api_calls", "12000"), ("acme", "api_calls", "700"), ("acme", "storage_gb", "1.5"),
        ("acme", "seats", "4"), ("acme", "seats", "7"), ("acme", "builds", "1"), ("acme", "builds", "1"),
        ("bolt", "api_calls", "300"), ("cobalt", "api_calls", "650"), ("cobalt", "api_calls", "600"),
        ("cobalt", "storage_gb", "12.5"), ("cobalt", "seats", "6"), ("cobalt", "seats", "2"), ("cobalt", "builds", "1"),
    ]):
        result = record_usage(ledger, customer, unit, amount, f"last-{number}", occurred_at=last_month_at(3 + number % 20, number % 24))
        ids[(customer, unit, amount)] = result.entry_id
    import_text(ledger, "\n".join(
        [f"acme,api_calls,{n + 1},imp-{n},{last_month_at(10, n)}" for n in range(20)]
        + [f"cobalt,builds,1,imp-{n},{last_month_at(11, n)}" for n in range(5)]
        + [f"bolt,api_calls,{n + 10},imp-{n}" for n in range(5)]
    ) + "\n", actor="tests")
    # Corrections inside the open period: a sum unit down, a max unit down, a prepaid entry up.
    correct_entry(ledger, ids[("acme", "api_calls", "700")], "500", "miscounted", actor="tests")
    correct_entry(ledger, ids[("acme", "seats", "7")], "5", "miscounted", actor="tests")
    correct_entry(ledger, ids[("cobalt", "api_calls", "600")], "900", "miscounted", actor="tests")
    close_period(ledger, last_month(), actor="tests")
    # After the close: late usage, and corrections of the closed period's entries, billed in this period.
    record_usage(ledger, "acme", "api_calls", "5000", "late-1", occurred_at=last_month_at(20))
    record_usage(ledger, "cobalt", "api_calls", "200", "late-1", occurred_at=last_month_at(20))
    record_usage(ledger, "bolt", "api_calls", "40", "late-1", occurred_at=last_month_at(21))
    correct_entry(ledger, ids[("acme", "storage_gb", "1.5")], "2.25", "late correction", actor="tests")
    correct_entry(ledger, ids[("cobalt", "storage_gb", "12.5")], "3", "late correction", actor="tests")
    correct_entry(ledger, ids[("bolt", "api_calls", "300")], "0", "late correction", actor="tests")
    for number, (customer, unit, amount) in enumerate([
        ("acme", "api_calls", "100"), ("cobalt", "api_calls", "90"), ("cobalt", "seats", "3"), ("bolt", "storage_gb", "2.5"),
    ]):
        record_usage(ledger, customer, unit, amount, f"now-{number}")
    grant_credits(ledger, "bolt", "25", "g2", actor="tests")
    return ids


def tamper(ledger, sql: str, **params) -> None:
    """Change the ledger behind meterdesk's back, past the triggers that refuse UPDATE and DELETE."""
    with ledger.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))  # no triggers (superuser)
        else:
            for (name,) in connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
                connection.execute(text(f'DROP TRIGGER "{name}"'))
        connection.execute(text(sql), params)


def whats(result) -> list[str]:
    return [d.what for d in result.differences]


def test_a_ledger_written_through_the_services_verifies_clean(ledger):
    build_ledger(ledger)
    steps = []
    result = verify_ledger(ledger, progress=steps.append)
    assert result.differences == (), "\n".join(map(str, result.differences))
    assert result.ok
    checked = result.checked
    assert checked["entries"] >= 60 and checked["invoices"] == 3 and checked["settlements"] == 3
    assert checked["late_entries"] >= 3 and checked["corrections"] == 2 * 6 - 1  # bolt's was corrected to 0
    assert checked["prepaid_charges"] >= 6 and checked["customers"] == 3
    assert steps[-1] == VerifyProgress(len(steps) - 1, len(steps) - 1, "done")
    shape = result.to_json()
    assert shape["ok"] is True and shape["differences"] == [] and shape["checked"] == checked


def test_an_empty_ledger_verifies_clean(ledger):
    assert verify_ledger(ledger).ok
    seed(ledger)
    assert verify_ledger(ledger).ok


def test_a_changed_rollup_quantity_is_found(ledger):
    build_ledger(ledger)
    day = last_month_at(3)[:10]
    tamper(ledger, "UPDATE usage_daily SET quantity = quantity + 1 WHERE day = :day AND unit_id = "
                   "(SELECT id FROM units WHERE code = 'api_calls') AND customer_id = (SELECT id FROM customers WHERE external_id = 'acme')",
           day=day)
    result = verify_ledger(ledger)
    assert not result.ok
    assert [str(d) for d in result.differences] == [f"usage_daily acme {last_month()} api_calls {day} quantity: expected 12000, found 12001"]


def test_a_raised_balance_is_found(ledger):
    build_ledger(ledger)
    tamper(ledger, "UPDATE customer_balances SET granted = granted + 5000000, balance = balance + 5000000 "
                   "WHERE customer_id = (SELECT id FROM customers WHERE external_id = 'bolt')")
    result = verify_ledger(ledger)
    assert whats(result) == ["customer_balances bolt granted", "customer_balances bolt balance"]
    granted = result.differences[0]
    assert (granted.expected, granted.found) == ("125.000000", "130.000000")


def test_a_settlement_finalized_without_a_stripe_invoice_is_found(ledger):
    build_ledger(ledger)
    tamper(ledger, "UPDATE settlements SET state = 'finalized' WHERE invoice_id = "
                   "(SELECT id FROM invoices WHERE customer_id = (SELECT id FROM customers WHERE external_id = 'acme'))")
    result = verify_ledger(ledger)
    texts = [str(d) for d in result.differences]
    assert any("settlement (finalized): expected a Stripe invoice id, found none" in t and " acme " in t for t in texts), texts
    assert all(" acme " in t for t in texts), texts


def test_a_changed_entry_quantity_is_found(ledger):
    ids = build_ledger(ledger)
    tamper(ledger, "UPDATE usage_entries SET quantity = 9 WHERE id = :id", id=ids[("cobalt", "seats", "6")])
    result = verify_ledger(ledger)
    found = whats(result)
    day = next(w for w in found if w.startswith("usage_daily cobalt")).split()[4]
    # The rollup no longer adds up, nor does what the seats were charged for the period.
    assert f"usage_daily cobalt {last_month()} seats {day} quantity" in found
    assert f"usage_daily cobalt {last_month()} seats {day} peak" in found
    assert any(w.startswith(f"prepaid charges cobalt {last_month()} seats") for w in found), found


def test_a_changed_invoice_line_amount_is_found(ledger):
    build_ledger(ledger)
    tamper(ledger, "UPDATE invoice_lines SET amount = amount + 10000 WHERE kind = 'usage' AND unit_code = 'api_calls' AND invoice_id = "
                   "(SELECT id FROM invoices WHERE customer_id = (SELECT id FROM customers WHERE external_id = 'acme'))")
    result = verify_ledger(ledger)
    found = [str(d) for d in result.differences]
    assert len(found) == 2, found
    assert "total: expected" in found[0] and "(the sum of its lines)" in found[0]
    assert " line 2 (usage api_calls) amount: expected 2.91, found 2.92" in found[1]


def test_an_entry_recorded_into_a_closed_period_is_found(ledger):
    """The period seal: an entry that lands in a closed period after its invoice was made is on no invoice."""
    build_ledger(ledger)
    tamper(ledger, "UPDATE usage_entries SET period = :period, late = false, billed_at = occurred_at WHERE request_id = 'late-1' "
                   "AND customer_id = (SELECT id FROM customers WHERE external_id = 'acme')", period=last_month())
    result = verify_ledger(ledger)
    found = [str(d) for d in result.differences]
    assert any(f"billed in closed period {last_month()}: expected recorded before its invoice" in t for t in found), found
    assert any("line 2 (usage api_calls) quantity" in t for t in found), found
    assert any(t.startswith(f"usage_daily acme {this_month()}") for t in found), found


def test_days_are_those_of_the_billing_time_zone(ledger_url):
    """Around both DST changes of New York, each entry is verified against the local day it was rolled up in."""
    from sqlalchemy import create_engine

    from meterdesk.store.engine import open_ledger

    engine = create_engine(ledger_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE ledger_settings SET value = 'America/New_York' WHERE key = 'billing_timezone'"))
    engine.dispose()
    ledger = open_ledger(ledger_url)
    try:
        seed(ledger)
        instants = ["2025-03-09T06:30:00Z", "2025-03-09T07:30:00Z", "2025-03-10T03:59:59Z", "2025-03-10T04:00:00Z",
                    "2025-11-02T03:59:59Z", "2025-11-02T04:00:00Z", "2025-11-03T04:59:59Z", "2025-11-03T05:00:00Z",
                    "2025-04-01T03:59:59Z", "2025-04-01T04:00:00Z"]
        for number, instant in enumerate(instants):
            record_usage(ledger, "acme", "api_calls", str(number + 1), f"dst-{number}", occurred_at=instant)
        with ledger.read() as connection:
            days = dict(connection.execute(text("SELECT day, sum(quantity) FROM usage_daily GROUP BY day")).all())
        assert days == {"2025-03-09": 1 + 2 + 3, "2025-03-10": 4, "2025-11-01": 5, "2025-11-02": 6 + 7, "2025-11-03": 8,
                        "2025-03-31": 9, "2025-04-01": 10}
        result = verify_ledger(ledger)
        assert result.ok, "\n".join(map(str, result.differences))
        # A rollup row moved to the next day is found.
        tamper(ledger, "UPDATE usage_daily SET day = '2025-03-11' WHERE day = '2025-03-10'")
        assert [str(d) for d in verify_ledger(ledger).differences] == [
            "usage_daily acme 2025-03 api_calls 2025-03-10: expected a row: quantity 4, entries 1, reversals 0, found no row",
            "usage_daily acme 2025-03 api_calls 2025-03-11: expected no row (no entry billed that day), found a row: "
            "quantity 4, entries 1, reversals 0",
        ]
    finally:
        ledger.close()


@pytest.mark.xfail(strict=True, reason="known gap: a late downward correction of a `max` unit lowers the closed period's "
                                       "peak but refunds the prepaid customer nothing (SPEC 2: it should credit what was over-billed)")
def test_a_late_downward_correction_of_a_peak_keeps_prepaid_charges_consistent(ledger):
    ids = build_ledger(ledger)
    correct_entry(ledger, ids[("cobalt", "seats", "6")], "1", "late correction of a peak", actor="tests")
    result = verify_ledger(ledger)
    assert result.ok, "\n".join(map(str, result.differences))
