"""The command-line contract of SPEC section 4, end to end, through a subprocess."""

from __future__ import annotations

import json

import pytest

from tests.services.helpers import PRO_PLAN, last_month, last_month_at, this_month

PLAN_TOML = """
code = "pro"
name = "Pro"
currency = "EUR"
base_fee = "49.00"

[[charges]]
unit = "api_calls"
included = "10000"
model = "graduated"
tiers = [ { up_to = "100000", unit_price = "0.001" },
          { unit_price = "0.0005", flat_fee = "10" } ]

[[charges]]
unit = "storage_gb"
model = "per_unit"
unit_price = "0.10"
"""


@pytest.fixture
def catalog(cli, tmp_path):
    assert cli("db", "upgrade").status == 0
    assert cli("unit", "add", "api_calls", "--name", "API calls").status == 0
    assert cli("unit", "add", "storage_gb", "--name", "Storage", "--decimals", "3").status == 0
    plan = tmp_path / "pro.toml"
    plan.write_text(PLAN_TOML)
    imported = cli("plan", "import", str(plan), "--json")
    assert imported.status == 0, imported.stderr
    assert imported.json["code"] == "pro" and imported.json["base_fee"] == "49.00"
    prepaid = tmp_path / "starter.json"
    prepaid.write_text(json.dumps({"code": "starter", "name": "Starter", "currency": "EUR", "base_fee": "5",
                                   "charges": [{"unit": "api_calls", "model": "per_unit", "unit_price": "0.002"}]}))
    assert cli("plan", "import", str(prepaid)).status == 0
    assert cli("customer", "add", "acme", "--name", "Acme", "--plan", "pro", "--email", "ap@acme.test").status == 0
    assert cli("customer", "add", "bolt", "--name", "Bolt", "--plan", "starter", "--prepaid", "--credit-limit", "5").status == 0
    return cli


def test_help_lists_every_command(cli):
    run = cli("--help")
    assert run.status == 0
    for command in ("gui", "db", "unit", "plan", "customer", "credits", "usage", "invoice", "period", "settle"):
        assert command in run.stdout


def test_record_retry_correct_summarise_preview(catalog):
    cli = catalog
    first = cli("usage", "record", "acme", "api_calls", "25000", "--request-id", "r-1", "--at", last_month_at(5), "--json")
    assert first.status == 0, first.stderr
    assert first.json == first.json | {"duplicate": False, "charged": None, "balance": None, "over_limit": False}
    retry = cli("usage", "record", "acme", "api_calls", "25000", "--request-id", "r-1", "--at", last_month_at(5), "--json")
    assert retry.json["duplicate"] is True and retry.json["entry_id"] == first.json["entry_id"]
    conflict = cli("usage", "record", "acme", "api_calls", "2500", "--request-id", "r-1", "--json")
    assert conflict.status == 4 and conflict.stderr.startswith("error: request_id") and conflict.stdout == ""

    corrected = cli("usage", "correct", str(first.json["entry_id"]), "20000", "--reason", "double counted", "--json")
    assert corrected.status == 0, corrected.stderr
    assert set(corrected.json) == {"reversal_id", "replacement_id"}
    again = cli("usage", "correct", str(first.json["entry_id"]), "1", "--reason", "again")
    assert again.status == 4

    listed = cli("usage", "list", "--customer", "acme", "--json").json["entries"]
    assert [e["id"] for e in listed] == sorted((e["id"] for e in listed), reverse=True)
    assert set(listed[0]) >= {"id", "customer", "unit", "amount", "occurred_at", "recorded_at", "period", "request_id",
                              "kind", "corrects", "late", "source", "actor", "note", "charged"}
    reversal = next(e for e in listed if e["kind"] == "reversal")
    assert reversal["corrects"] == first.json["entry_id"] and reversal["amount"] == "-25000" and reversal["actor"] == "cli-tests"
    assert reversal["occurred_at"].endswith("Z")

    summary = cli("usage", "summary", "acme", "--period", last_month(), "--granularity", "day", "--json").json
    assert summary["customer"] == "acme" and summary["currency"] == "EUR"
    assert set(summary["period"]) >= {"start", "end"}
    api = next(u for u in summary["units"] if u["unit"] == "api_calls")
    assert api == api | {"quantity": "20000", "included": "10000", "billable": "10000", "amount": "10.00", "entries": 1}
    assert (summary["base_fee"], summary["usage_amount"], summary["total"], summary["balance"]) == ("49.00", "10.00", "59.00", None)
    assert sum(int(p["quantity"]) for p in summary["series"] if p["unit"] == "api_calls") == 20000

    preview = cli("invoice", "preview", "acme", "--period", last_month(), "--json").json
    assert preview["total"] == "59.00" and preview["currency"] == "EUR"
    assert [line["kind"] for line in preview["lines"]] == ["base_fee", "usage", "correction", "usage"]
    assert all(set(line) >= {"kind", "unit", "description", "quantity", "amount"} for line in preview["lines"])


def test_prepaid_credits_and_balance(catalog):
    cli = catalog
    grant = cli("credits", "grant", "bolt", "10", "--request-id", "top-1", "--json")
    assert grant.status == 0 and grant.json["balance"] == "10.00"
    assert cli("credits", "grant", "bolt", "10", "--request-id", "top-1", "--json").json["duplicate"] is True
    assert cli("credits", "grant", "bolt", "11", "--request-id", "top-1").status == 4
    recorded = cli("usage", "record", "bolt", "api_calls", "1500", "--request-id", "b-1", "--json").json
    assert (recorded["charged"], recorded["balance"], recorded["over_limit"]) == ("3.00", "7.00", False)
    over = cli("usage", "record", "bolt", "api_calls", "7000", "--request-id", "b-2", "--json").json
    assert (over["balance"], over["over_limit"]) == ("-7.00", True)
    assert cli("customer", "show", "bolt", "--json").json["balance"] == "-7.00"


def test_import_reports_bad_lines_with_exit_3_and_is_rerunnable(catalog, tmp_path):
    cli = catalog
    path = tmp_path / "usage.csv"
    path.write_text("customer,unit,amount,request_id\nacme,api_calls,5,i-1\nacme,api_calls,five,i-2\nacme,api_calls,6,i-3\n")
    first = cli("usage", "import", str(path), "--json")
    assert first.status == 3
    assert first.json == {"recorded": 2, "duplicates": 0, "rejected": 1, "errors": [first.json["errors"][0]]}
    assert first.json["errors"][0]["line"] == 3 and "amount" in first.json["errors"][0]["error"]
    second = cli("usage", "import", str(path), "--json")
    assert (second.json["recorded"], second.json["duplicates"]) == (0, 2)


def test_close_period_and_settle_without_a_key(catalog):
    cli = catalog
    cli("usage", "record", "acme", "api_calls", "20000", "--request-id", "c-1", "--at", last_month_at(3))
    closed = cli("period", "close", last_month(), "--json")
    assert closed.status == 0, closed.stderr
    assert {i["customer"] for i in closed.json["invoices"]} == {"acme", "bolt"}
    acme = next(i for i in closed.json["invoices"] if i["customer"] == "acme")
    assert (acme["total"], acme["currency"]) == ("59.00", "EUR") and acme["id"]
    assert cli("period", "close", this_month()).status == 4


def test_listing_commands(catalog):
    cli = catalog
    assert [u["code"] for u in cli("unit", "list", "--json").json["units"]] == ["api_calls", "storage_gb"]
    assert [p["code"] for p in cli("plan", "list", "--json").json["plans"]] == ["pro", "starter"]
    assert cli("plan", "show", "pro", "--json").json["charges"][0]["unit"] == PRO_PLAN["charges"][0]["unit"]
    assert [c["id"] for c in cli("customer", "list", "--json").json["customers"]] == ["acme", "bolt"]
    assert "Acme" in cli("customer", "list").stdout
