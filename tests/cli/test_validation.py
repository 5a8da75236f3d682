"""Issue 20 through the command line: exact ids, the exact range, the subscription start, the billing time zone,
unknown filters and no tracebacks (SPEC 2 "Ids", "Time", "Exact range"; SPEC 4 and 5)."""

from __future__ import annotations

import pytest

from tests.services.helpers import last_month_at


def _one_error_line(run, status: int, *words: str) -> None:
    lines = run.stderr.strip().splitlines()
    assert run.status == status, (run.status, run.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert "Traceback" not in run.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def _set_timezone(url: str, name: str) -> None:
    from sqlalchemy import text

    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url)
    with ledger.write() as connection:
        connection.execute(text("UPDATE ledger_settings SET value = :zone WHERE key = 'billing_timezone'"), {"zone": name})
    ledger.close()


@pytest.fixture
def seeded(cli):
    from meterdesk.store.engine import open_ledger
    from tests.services.helpers import seed

    ledger = open_ledger(cli.url)
    seed(ledger)
    ledger.close()
    return cli


@pytest.mark.parametrize("customer_id", [" acme2", "acme2 ", "ac\x1bme", "ac\tme"])
def test_a_customer_id_with_outer_whitespace_or_a_control_character_is_refused(seeded, customer_id):
    run = seeded("customer", "add", customer_id, "--name", "Padded", "--plan", "pro")
    _one_error_line(run, 3, "id")
    assert [c["id"] for c in seeded("customer", "list", "--json").json["customers"]] == ["acme", "bolt"]


@pytest.mark.parametrize("request_id", [" r1", "r1 ", "r\x7f1"])
def test_a_request_id_with_outer_whitespace_or_a_control_character_is_refused(seeded, request_id):
    run = seeded("usage", "record", "acme", "api_calls", "1", "--request-id", request_id)
    _one_error_line(run, 3, "request_id")
    assert seeded("usage", "list", "--json").json["entries"] == []


def test_a_period_total_beyond_the_exact_range_is_refused_and_nothing_inexact_is_stored(seeded):
    at = last_month_at(3)
    for n in range(9):
        run = seeded("usage", "record", "acme", "storage_gb", "1000000000000000", "--request-id", f"big-{n}", "--at", at)
        assert run.status == 0, run.stderr
    run = seeded("usage", "record", "acme", "storage_gb", "1000000000000000", "--request-id", "big-9", "--at", at)
    _one_error_line(run, 3, "storage_gb")
    assert len(seeded("usage", "list", "--json").json["entries"]) == 9
    summary = seeded("usage", "summary", "acme", "--period", at[:7], "--json")
    assert summary.status == 0, summary.stderr
    assert [u["quantity"] for u in summary.json["units"] if u["unit"] == "storage_gb"] == ["9000000000000000"]


def test_an_amount_beyond_the_exact_range_of_its_unit_is_refused(seeded):
    assert seeded("unit", "add", "micro", "--name", "Micro", "--decimals", "6").status == 0
    run = seeded("usage", "record", "acme", "micro", "10000000000000", "--request-id", "m")
    _one_error_line(run, 3, "amount")
    assert seeded("usage", "list", "--json").json["entries"] == []


def test_usage_before_the_subscription_start_is_refused(seeded):
    assert seeded("customer", "add", "late", "--name", "Late", "--plan", "pro", "--start", "2026-01-01").status == 0
    run = seeded("usage", "record", "late", "api_calls", "1", "--request-id", "r", "--at", "2025-12-31T23:59:59Z")
    _one_error_line(run, 3, "occurred_at", "2026-01-01")
    run = seeded("usage", "record", "acme", "api_calls", "1", "--request-id", "r", "--at", "1969-12-31T23:59:59Z")
    _one_error_line(run, 3, "occurred_at", "1970-01-01")
    assert seeded("usage", "list", "--json").json["entries"] == []


def test_an_unknown_customer_or_unit_filter_is_not_found(seeded):
    _one_error_line(seeded("usage", "list", "--customer", "nobody"), 5, "customer", "nobody")
    _one_error_line(seeded("usage", "list", "--unit", "nothing"), 5, "unit", "nothing")


def test_a_huge_limit_is_an_error_line_not_a_traceback(seeded):
    run = seeded("usage", "list", "--limit", "99999999999999999999")
    assert run.status in (2, 3), run.stderr
    _one_error_line(run, run.status, "limit")


def test_year_one_in_a_berlin_ledger_is_an_error_line_not_a_traceback(seeded):
    _set_timezone(seeded.url, "Europe/Berlin")
    for at in ("0001-01-01T12:00:00Z", "0001-01-01T00:30:00", "0001-01-01"):
        run = seeded("usage", "record", "acme", "api_calls", "1", "--request-id", "old", "--at", at)
        _one_error_line(run, 3, "occurred_at")
    for at in ("0001-01-01", "0001-01-01T00:30:00"):
        run = seeded("usage", "list", "--from", at)
        _one_error_line(run, 3, "from")
    assert seeded("usage", "list", "--json").json["entries"] == []


def test_a_date_alone_is_midnight_in_the_billing_time_zone_when_recording_and_filtering(seeded):
    _set_timezone(seeded.url, "America/Los_Angeles")
    assert seeded("customer", "add", "old", "--name", "Old", "--plan", "pro", "--start", "2025-01-01").status == 0
    run = seeded("usage", "record", "old", "api_calls", "5", "--request-id", "nov", "--at", "2025-11-01", "--json")
    assert run.status == 0, run.stderr
    assert run.json["period"] == "2025-11"
    (entry,) = seeded("usage", "list", "--json").json["entries"]
    assert entry["occurred_at"] == "2025-11-01T07:00:00Z"  # midnight in Los Angeles (PDT, UTC-7)
    listed = seeded("usage", "list", "--from", "2025-11-01", "--to", "2025-11-02", "--json").json["entries"]
    assert [e["request_id"] for e in listed] == ["nov"]
    assert seeded("usage", "list", "--to", "2025-11-01", "--json").json["entries"] == []
    # A timestamp without a zone is wall-clock time there too, when recording and when filtering.
    run = seeded("usage", "record", "old", "api_calls", "5", "--request-id", "wall", "--at", "2025-11-01T23:30:00", "--json")
    assert run.status == 0 and run.json["period"] == "2025-11", run.stderr
    listed = seeded("usage", "list", "--from", "2025-11-01T23:00:00", "--to", "2025-11-02T00:00:00", "--json").json["entries"]
    assert [(e["request_id"], e["occurred_at"]) for e in listed] == [("wall", "2025-11-02T06:30:00Z")]  # PDT still: UTC-7
