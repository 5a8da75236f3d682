"""SPEC section 6 row by row, against a real `meterdesk serve` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from meterdesk.services.summary import usage_summary
from tests.api.conftest import cli_env
from tests.services.helpers import this_month

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def next_month() -> str:
    year, month = map(int, this_month().split("-"))
    return f"{year + month // 12}-{month % 12 + 1:02d}"


def event(rid: str, amount="3", **fields) -> dict:
    return {"customer": "bolt", "unit": "api_calls", "amount": amount, "request_id": rid, **fields}


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    document = response.json()
    assert PROBLEM_KEYS <= set(document) and document["status"] == status
    if field is not None:
        assert document.get("field") == field, document
    return document


def entry(api, customer: str, request_id: str) -> dict:
    page = api.client("read").get("/v1/usage", params={"customer": customer, "limit": 1000}).json()["entries"]
    return next(e for e in page if e["request_id"] == request_id)


def test_health_and_the_document_need_no_key(api):
    health = api.client(None).get("/v1/health")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": api.dialect}
    document = api.client(None).get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/v1/usage", "/v1/usage/batch", "/v1/usage/summary", "/v1/customers/{id}/balance", "/v1/health", "/v1/openapi.json",
    }


def test_record_then_retry_returns_the_original_entry_marked_duplicate(api, rid):
    first = api.client().post("/v1/usage", json=event(rid, note="first call"))
    assert first.status_code == 201, first.text
    recorded = first.json()
    assert recorded["duplicate"] is False and recorded["charged"] == "0.01" and recorded["charged_exact"] == "0.006000"
    before = api.entries("bolt")
    again = api.client().post("/v1/usage", json=event(rid, note="first call"))
    assert again.status_code == 200
    retried = again.json()
    assert retried["duplicate"] is True
    assert {k: v for k, v in retried.items() if k not in ("duplicate", "balance", "balance_exact")} == {
        k: v for k, v in recorded.items() if k not in ("duplicate", "balance", "balance_exact")
    }
    assert api.entries("bolt") == before
    stored = entry(api, "bolt", rid)
    assert (stored["source"], stored["actor"], stored["amount"], stored["note"]) == ("api", "api:backend", "3", "first call")


def test_same_request_id_with_another_amount_is_a_conflict_and_writes_nothing(api, rid):
    assert api.client().post("/v1/usage", json=event(rid, "5")).status_code == 201
    before = api.entries()
    problem = assert_problem(api.client().post("/v1/usage", json=event(rid, "6")), 409, "request_id")
    assert "different amount" in problem["detail"]
    assert api.entries() == before
    assert entry(api, "bolt", rid)["amount"] == "5"


@pytest.mark.parametrize(("unit", "literal", "stored"), [
    ("tokens", "0.000001", "0.000001"),
    ("tokens", "999999999999.999999", "999999999999.999999"),  # 18 digits: a binary float would make it 1000000000000
    ("tokens", '"999999999999.999999"', "999999999999.999999"),
    ("api_calls", "1E+3", "1000"),
    ("api_calls", "1000000000000000", "1000000000000000"),
    ("storage_gb", "2.500", "2.5"),
])
def test_amounts_are_read_exactly_from_json_numbers_and_strings(api, rid, unit, literal, stored):
    body = '{"customer": "acme", "unit": "%s", "amount": %s, "request_id": "%s"}' % (unit, literal, rid)
    response = api.client().post("/v1/usage", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    assert entry(api, "acme", rid)["amount"] == stored


@pytest.mark.parametrize(("unit", "literal"), [
    ("storage_gb", "0.30000000000000004"),  # stays that number: 17 decimal places, storage_gb allows 3
    ("tokens", "0.30000000000000004"),
    ("tokens", '"0.30000000000000004"'),
    ("tokens", "1e-7"),
    ("api_calls", "1234567890123456789012345"),  # 25 digits: above 10^15
    ("api_calls", "1234567890123456789012345.5"),
    ("api_calls", "0"),
    ("api_calls", "-1"),
    ("api_calls", "1e999999999"),
    ("api_calls", "true"),
    ("api_calls", '"1,5"'),
])
def test_amounts_out_of_range_or_too_precise_are_refused_by_field(api, rid, unit, literal):
    before = api.entries()
    body = '{"customer": "acme", "unit": "%s", "amount": %s, "request_id": "%s"}' % (unit, literal, rid)
    assert_problem(api.client().post("/v1/usage", content=body), 422, "amount")
    assert api.entries() == before


@pytest.mark.parametrize(("change", "field"), [
    ({"customer": "nobody"}, "customer"),
    ({"unit": "nothing"}, "unit"),
    ({"request_id": ""}, "request_id"),
    ({"request_id": "x" * 256}, "request_id"),
    ({"customer": 7}, "customer"),
    ({"occurred_at": "yesterday-ish"}, "occurred_at"),
    ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
    ({"note": "n" * 2001}, "note"),
    ({"surprise": 1}, "surprise"),
])
def test_an_invalid_field_is_422_naming_it(api, rid, change, field):
    before = api.entries()
    assert_problem(api.client().post("/v1/usage", json={**event(rid), **change}), 422, field)
    assert api.entries() == before


def test_a_batch_reports_each_event_in_order_and_again_records_nothing_new(api, rid):
    assert api.client().post("/v1/usage", json=event(rid + "-earlier", "2")).status_code == 201
    batch = {"events": [
        event(rid + "-a", "4"),
        event(rid + "-earlier", "2"),  # a retry of the call above
        event(rid + "-b", "0.5"),  # api_calls are whole
        {"customer": "acme", "unit": "storage_gb", "amount": 1.25, "request_id": rid + "-c"},
        event(rid + "-earlier", "9"),  # a conflict
        "not an event",
    ]}
    before = api.entries()
    answer = api.client().post("/v1/usage/batch", json=batch)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["recorded"], result["duplicates"], result["rejected"]) == (2, 1, 3)
    assert [r["index"] for r in result["results"]] == list(range(6))
    assert [r["status"] for r in result["results"]] == ["recorded", "duplicate", "rejected", "recorded", "rejected", "rejected"]
    assert result["results"][0]["charged"] == "0.01" and result["results"][3]["charged"] is None
    assert result["results"][2]["error"]["field"] == "amount"
    assert result["results"][4]["error"]["field"] == "request_id"
    assert result["results"][5]["error"] == {"field": "event", "detail": "must be a JSON object, not a string"}
    assert api.entries() == before + 2
    assert entry(api, "acme", rid + "-c")["amount"] == "1.25"

    again = api.client().post("/v1/usage/batch", json=batch).json()
    assert (again["recorded"], again["duplicates"], again["rejected"]) == (0, 3, 3)
    assert [r.get("entry_id") for r in again["results"]][:4] == [r.get("entry_id") for r in result["results"]][:4]
    assert api.entries() == before + 2


@pytest.mark.parametrize("body", [{"events": []}, {"events": [{}] * 1001}, {"events": "x"}, {}, {"events": [], "more": 1}, []])
def test_a_batch_must_hold_1_to_1000_events(api, body):
    assert_problem(api.client().post("/v1/usage/batch", json=body), 422)


def test_the_summary_over_http_is_the_command_line_summary(api, rid):
    assert api.client().post("/v1/usage", json={**event(rid, "12"), "customer": "acme"}).status_code == 201
    query = {"customer": "acme", "period": this_month(), "granularity": "day"}
    over_http = api.client("read").get("/v1/usage/summary", params=query)
    assert over_http.status_code == 200, over_http.text
    done = subprocess.run(
        [sys.executable, "-m", "meterdesk", "usage", "summary", "acme", "--period", this_month(), "--granularity", "day", "--json"],
        capture_output=True, text=True, env=cli_env(api.ledger.url), timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert over_http.json() == json.loads(done.stdout)


@pytest.mark.parametrize(("query", "arguments"), [
    ({"customer": "acme"}, {}),
    ({"customer": "bolt", "from": this_month() + "-01", "to": next_month() + "-01", "granularity": "hour"},
     {"start": this_month() + "-01", "end": next_month() + "-01", "granularity": "hour"}),
])
def test_the_summary_over_http_is_the_summary_service(api, query, arguments):
    """What `usage summary --json` prints is the service's to_json (cmd_usage_summary), for each way to ask."""
    over_http = api.client("read").get("/v1/usage/summary", params=query)
    assert over_http.status_code == 200, over_http.text
    assert over_http.json() == usage_summary(api.ledger, query["customer"], **arguments).to_json()


def test_summary_and_listing_refuse_bad_parameters(api):
    read = api.client("read")
    assert_problem(read.get("/v1/usage/summary", params={"customer": "nobody"}), 404, "customer")
    assert_problem(read.get("/v1/usage/summary"), 422, "customer")
    assert_problem(read.get("/v1/usage/summary", params={"customer": "acme", "period": "2026-13"}), 422)
    assert_problem(read.get("/v1/usage/summary", params={"customer": "acme", "granularity": "week"}), 422, "granularity")
    assert_problem(read.get("/v1/usage", params={"customer": "acme", "limit": "1001"}), 422, "limit")
    assert_problem(read.get("/v1/usage", params={"customer": "acme", "after": "abc"}), 422, "after")
    assert_problem(read.get("/v1/usage", params={"customer": "nobody"}), 404, "customer")
    assert_problem(read.get("/v1/usage", params={"customer": "a\x00b"}), 422, "customer")


def test_listing_pages_newest_first_with_a_cursor(api, rid):
    for number in range(3):
        assert api.client().post("/v1/usage", json=event(f"{rid}-{number}", str(number + 1))).status_code == 201
    read = api.client("read")
    everything = read.get("/v1/usage", params={"customer": "bolt", "limit": 1000}).json()
    assert everything["next"] is None or len(everything["entries"]) == 1000
    ids = [e["id"] for e in everything["entries"]]
    assert ids == sorted(ids, reverse=True)
    seen, cursor = [], None
    while True:
        page = read.get("/v1/usage", params={"customer": "bolt", "limit": 2, **({"after": cursor} if cursor else {})}).json()
        seen += [e["id"] for e in page["entries"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids
    only = read.get("/v1/usage", params={"customer": "bolt", "unit": "storage_gb"}).json()
    assert all(e["unit"] == "storage_gb" for e in only["entries"])


def test_balance_of_a_prepaid_and_a_postpaid_customer(api, rid):
    write, read = api.client("write"), api.client("read")
    assert write.post("/v1/usage", json={**event(rid, "100"), "customer": "acme"}).status_code == 201
    prepaid = read.get("/v1/customers/bolt/balance").json()
    summary = read.get("/v1/usage/summary", params={"customer": "bolt"}).json()
    assert prepaid["mode"] == "prepaid" and prepaid["balance"] == summary["balance"] and prepaid["credit_limit"] == "5.00"
    assert prepaid["over_limit"] is (float(prepaid["balance"]) < -5)  # a comparison of the shown figures only
    assert prepaid["period"] == this_month() and prepaid["currency"] == "EUR"
    postpaid = read.get("/v1/customers/acme/balance").json()
    assert (postpaid["mode"], postpaid["balance"], postpaid["credit_limit"], postpaid["over_limit"]) == ("invoice", None, None, False)
    calls = next(u for u in postpaid["units"] if u["unit"] == "api_calls")
    assert calls["included"] == "10000"
    from decimal import Decimal
    assert Decimal(calls["remaining_included"]) == max(Decimal(0), Decimal("10000") - Decimal(calls["quantity"]))
    assert_problem(read.get("/v1/customers/nobody/balance"), 404, "customer")


def test_unknown_paths_and_methods_are_problems_too(api):
    assert_problem(api.client().get("/v1/nothing"), 404)
    assert_problem(api.client().delete("/v1/usage"), 405)
