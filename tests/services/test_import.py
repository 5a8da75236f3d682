"""Importing files: streamed in batches, bad lines reported by number, re-runnable without double counting."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from meterdesk.domain.errors import InvalidInput
from meterdesk.services.credits import grant_credits
from meterdesk.services.entries import count_entries
from meterdesk.services.summary import usage_summary
from meterdesk.services.imports import import_usage
from tests.services.helpers import last_month_at, seed


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    grant_credits(ledger, "bolt", "100", "g")
    return ledger


def test_csv_import_records_valid_lines_and_reports_bad_ones(seeded, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text(
        "customer,unit,amount,request_id,occurred_at,note\n"
        "acme,api_calls,100,r1,,first\n"
        "acme,api_calls,abc,r2,,\n"
        f"acme,storage_gb,1.25,r3,{last_month_at(3)},\n"
        "ghost,api_calls,5,r4,,\n"
        "\n"
        "bolt,api_calls,1000,r5,,prepaid\n"
        "acme,api_calls,100,r1,,same again\n"
        "acme,api_calls,7,r1,,conflicting\n"
        "acme,api_calls,5,r6,2999-01-01T00:00:00Z,\n"
    )
    result = import_usage(seeded, path)
    assert (result.recorded, result.duplicates, result.rejected) == (3, 1, 4)
    assert [e["line"] for e in result.errors] == [3, 5, 9, 10]
    assert "amount" in result.errors[0]["error"] and "customer" in result.errors[1]["error"]
    assert "request_id" in result.errors[2]["error"] and "occurred_at" in result.errors[3]["error"]
    assert usage_summary(seeded, "bolt").balance == Decimal(98)


def test_running_the_same_file_twice_records_nothing_new(seeded, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text("".join(f"acme,api_calls,{i + 1},req-{i}\n" for i in range(1234)))
    first = import_usage(seeded, path, batch_size=100)
    second = import_usage(seeded, path, batch_size=100)
    assert (first.recorded, first.duplicates) == (1234, 0)
    assert (second.recorded, second.duplicates) == (0, 1234)
    assert count_entries(seeded) == 1234
    api = next(u for u in usage_summary(seeded, "acme").units if u.unit == "api_calls")
    assert api.quantity == sum(range(1, 1235))


def test_json_lines_import_with_progress_and_cancel(seeded, tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text("".join(json.dumps({"customer": "acme", "unit": "api_calls", "amount": "2", "request_id": f"j{i}"}) + "\n" for i in range(300)))
    seen = []
    result = import_usage(seeded, path, batch_size=100, progress=seen.append, cancelled=lambda: len(seen) == 2)
    assert result.cancelled and result.recorded == 200
    assert [p.lines for p in seen] == [100, 200]
    rest = import_usage(seeded, path, batch_size=100)
    assert (rest.recorded, rest.duplicates) == (100, 200)


def test_json_lines_refuse_unknown_fields_and_bad_json(seeded, tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text('{"customer": "acme", "unit": "api_calls", "amount": "2", "request_id": "ok"}\n{not json}\n{"customer": "acme", "colour": "red"}\n')
    result = import_usage(seeded, path)
    assert result.recorded == 1 and [e["line"] for e in result.errors] == [2, 3]


def test_unreadable_file_is_invalid_input(seeded, tmp_path):
    with pytest.raises(InvalidInput, match="file"):
        import_usage(seeded, tmp_path / "missing.csv")
