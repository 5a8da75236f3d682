"""Issue 20 through the services, on SQLite and PostgreSQL: ids kept exact, the exact range, corrections' own
request ids, the subscription start and the ledger's billing time zone (SPEC 2 "Ids", "Corrections", "Time",
"Exact range")."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from meterdesk.domain.errors import InvalidInput
from meterdesk.services.catalog import add_customer, add_unit
from meterdesk.services.corrections import correct_entry
from meterdesk.services.credits import grant_credits
from meterdesk.services.entries import EntryFilter, list_entries
from meterdesk.services.imports import import_text
from meterdesk.services.recording import record_usage
from tests.services.helpers import last_month_at, seed

BIG = "1000000000000000"  # 10^15, the largest amount; scaled by 3 decimals, 10^18


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    return ledger


def _entries(ledger) -> int:
    with ledger.read() as connection:
        return connection.execute(text("SELECT count(*) FROM usage_entries")).scalar_one()


def _inexact_rollup_rows(ledger) -> list:
    with ledger.read() as connection:
        if ledger.dialect == "sqlite":
            return connection.execute(
                text("SELECT * FROM usage_daily WHERE typeof(quantity) <> 'integer' OR typeof(peak) <> 'integer'")
            ).all()
        return []  # bigint columns: PostgreSQL stores nothing else


@pytest.mark.parametrize("value", [" acme2", "acme2 ", "\tacme2", "ac\x00me", "ac\u2028me", " "])
def test_customer_ids_are_kept_exact_and_refused_when_padded_or_unprintable(seeded, value):
    with pytest.raises(InvalidInput, match="^id: "):
        add_customer(seeded, value, "Padded", "pro")


@pytest.mark.parametrize("value", [" r1", "r1 ", "r\x001", "r\n1", "\u00a0r1"])
def test_request_ids_are_refused_when_padded_or_unprintable_on_every_path(seeded, value):
    with pytest.raises(InvalidInput, match="^request_id: "):
        record_usage(seeded, "acme", "api_calls", "1", value)
    with pytest.raises(InvalidInput, match="^request_id: "):
        grant_credits(seeded, "bolt", "1", value)
    assert _entries(seeded) == 0


def test_a_padded_request_id_in_an_import_file_is_a_rejected_line(seeded):
    result = import_text(seeded, "acme,api_calls,1,ok\nacme,api_calls,1, padded\nacme,api_calls,1,ok2\n")
    assert (result.recorded, result.rejected) == (2, 1), result.errors
    assert result.errors[0]["line"] == 2 and result.errors[0]["error"].startswith("request_id: ")


# -- exact range -----------------------------------------------------------------------------------------

def test_the_entry_that_would_take_a_period_total_out_of_the_exact_range_is_refused(seeded):
    at = last_month_at(3)
    for n in range(9):
        record_usage(seeded, "acme", "storage_gb", BIG, f"big-{n}", occurred_at=at)
    with pytest.raises(InvalidInput, match="storage_gb"):
        record_usage(seeded, "acme", "storage_gb", BIG, "big-9", occurred_at=at)
    # Another day of the period: the period total is what overflows.
    with pytest.raises(InvalidInput, match="storage_gb"):
        record_usage(seeded, "acme", "storage_gb", BIG, "big-10", occurred_at=last_month_at(20))
    assert _entries(seeded) == 9
    assert _inexact_rollup_rows(seeded) == []
    # Smaller amounts that still fit go in.
    record_usage(seeded, "acme", "storage_gb", "1", "small", occurred_at=at)
    assert _entries(seeded) == 10


def test_a_prepaid_period_total_out_of_the_exact_range_is_refused(seeded):
    at = last_month_at(3)
    add_unit(seeded, "ticks", "Ticks", 3, "max", actor="tests")
    for n in range(9):
        record_usage(seeded, "bolt", "ticks", BIG, f"t-{n}", occurred_at=at)
    with pytest.raises(InvalidInput, match="ticks"):
        record_usage(seeded, "bolt", "ticks", BIG, "t-9", occurred_at=at)
    assert _entries(seeded) == 9
    assert _inexact_rollup_rows(seeded) == []


def test_an_amount_beyond_the_exact_range_of_its_unit_is_refused(seeded):
    add_unit(seeded, "micro", "Micro", 6, "sum", actor="tests")
    with pytest.raises(InvalidInput, match="^amount: "):
        record_usage(seeded, "acme", "micro", "10000000000000", "m")
    record_usage(seeded, "acme", "micro", "9000000000000.5", "fits")
    assert _entries(seeded) == 1


def test_an_import_that_would_leave_the_exact_range_rejects_those_lines(seeded):
    add_unit(seeded, "micro", "Micro", 6, "sum", actor="tests")
    at = last_month_at(4)
    lines = [f"acme,storage_gb,{BIG},i-{n},{at}" for n in range(10)] + [f"acme,micro,10000000000000,m,{at}", f"acme,api_calls,1,ok,{at}"]
    result = import_text(seeded, "\n".join(lines) + "\n")
    assert (result.recorded, result.rejected) == (10, 2), result.errors
    assert [e["line"] for e in result.errors] == [10, 11]
    assert "storage_gb" in result.errors[0]["error"] and result.errors[1]["error"].startswith("amount: ")
    assert _inexact_rollup_rows(seeded) == []
    # Run again: the same lines are duplicates or rejected again, nothing new.
    again = import_text(seeded, "\n".join(lines) + "\n")
    assert (again.recorded, again.duplicates, again.rejected) == (0, 10, 2), again.errors


def test_a_large_clean_import_batch_cannot_leave_the_exact_range_either(seeded):
    """The fast lane (a clean batch of many lines) hands such a batch to the general path."""
    at = last_month_at(5)
    lines = [f"acme,api_calls,1,a-{n},{at}" for n in range(2000)]
    lines += [f"acme,storage_gb,{BIG},s-{n},{at}" for n in range(10)]
    result = import_text(seeded, "\n".join(lines) + "\n")
    assert (result.recorded, result.rejected) == (2009, 1), result.errors
    assert result.errors[0]["line"] == 2010
    assert _inexact_rollup_rows(seeded) == []


# -- corrections' request ids -------------------------------------------------------------------------------

def test_a_usage_request_id_cannot_take_a_corrections_request_id(seeded):
    original = record_usage(seeded, "acme", "api_calls", "10", "first")
    with pytest.raises(InvalidInput, match="^request_id: "):
        record_usage(seeded, "acme", "api_calls", "10", f"correction:{original.entry_id}:reversal")
    result = import_text(seeded, f"acme,api_calls,10,correction:{original.entry_id}:replacement\n")
    assert result.rejected == 1 and result.errors[0]["error"].startswith("request_id: ")
    corrected = correct_entry(seeded, original.entry_id, "7", "meter fix")
    assert corrected.reversal_id and corrected.replacement_id


def test_a_correction_still_works_where_an_old_ledger_let_usage_take_its_request_id(seeded):
    """Written before the prefix was reserved: the correction finds request ids of its own."""
    original = record_usage(seeded, "acme", "api_calls", "10", "first")
    with seeded.write() as connection:
        connection.execute(
            text(
                "INSERT INTO usage_entries (customer_id, unit_id, quantity, occurred_at, recorded_at, billed_at, period, "
                "late, request_id, kind, corrects_id, source, actor, note, charged) SELECT customer_id, unit_id, 1, "
                "occurred_at, recorded_at, billed_at, period, late, :rid, 'usage', NULL, 'api', 'old', NULL, NULL "
                "FROM usage_entries WHERE id = :id"
            ),
            {"rid": f"correction:{original.entry_id}:reversal", "id": original.entry_id},
        )
    corrected = correct_entry(seeded, original.entry_id, "7", "meter fix")
    assert corrected.reversal_id and corrected.replacement_id


# -- time -----------------------------------------------------------------------------------------------

def test_usage_before_the_subscription_start_is_refused_on_every_path(seeded):
    add_customer(seeded, "late", "Late", "pro", start="2026-01-01", actor="tests")
    with pytest.raises(InvalidInput, match="^occurred_at: .*2026-01-01"):
        record_usage(seeded, "late", "api_calls", "1", "r", occurred_at="2025-12-31T23:59:59Z")
    with pytest.raises(InvalidInput, match="^occurred_at: .*1970-01-01"):
        record_usage(seeded, "acme", "api_calls", "1", "r", occurred_at="1969-12-31T23:59:59Z")
    result = import_text(seeded, "late,api_calls,1,i1,2025-12-31T23:59:59Z\nlate,api_calls,1,i2,2026-01-01T00:00:00Z\n"
                                 "acme,api_calls,1,i3,1960-01-01\n")
    assert (result.recorded, result.rejected) == (1, 2), result.errors
    assert [e["line"] for e in result.errors] == [1, 3]
    assert all(e["error"].startswith("occurred_at: ") for e in result.errors)
    record_usage(seeded, "late", "api_calls", "1", "ok", occurred_at="2026-01-01T00:00:00Z")


def test_a_clean_import_batch_before_a_subscription_start_goes_the_general_way(seeded):
    add_customer(seeded, "late", "Late", "pro", start="2026-01-01", actor="tests")
    lines = [f"late,api_calls,1,a-{n},2026-01-02T10:00:00Z" for n in range(1500)] + ["late,api_calls,1,early,2025-12-31T10:00:00Z"]
    result = import_text(seeded, "\n".join(lines) + "\n")
    assert (result.recorded, result.rejected) == (1500, 1), result.errors
    assert result.errors[0]["line"] == 1501


def _los_angeles(ledger):
    from meterdesk.store.engine import open_ledger

    with ledger.write() as connection:
        connection.execute(text("UPDATE ledger_settings SET value = 'America/Los_Angeles' WHERE key = 'billing_timezone'"))
    return open_ledger(ledger.url)


def test_a_date_alone_is_local_midnight_when_recording_importing_and_filtering(seeded):
    la = _los_angeles(seeded)
    try:
        recorded = record_usage(la, "acme", "api_calls", "1", "d1", occurred_at="2025-11-01")
        assert recorded.period == "2025-11"
        imported = import_text(la, "acme,api_calls,1,d2,2025-11-01\nacme,api_calls,1,d3,2025-11-01T00:00:00\n")
        assert imported.recorded == 2, imported.errors
        midnight = int(datetime(2025, 11, 1, 7, tzinfo=timezone.utc).timestamp()) * 1_000_000
        assert {e.request_id: e.occurred_at_us for e in list_entries(la)} == {"d1": midnight, "d2": midnight, "d3": midnight}
        november = list_entries(la, EntryFilter.from_strings(la, start="2025-11-01", end="2025-12-01"))
        october = list_entries(la, EntryFilter.from_strings(la, start="2025-10-01T00:00:00", end="2025-11-01T00:00:00"))
        assert (len(november), len(october)) == (3, 0)
        assert {e.period for e in november} == {"2025-11"}
        assert list_entries(la, EntryFilter.from_strings(la, start=date(2025, 11, 1), end="2025-11-01T00:00:01"))
    finally:
        la.close()
