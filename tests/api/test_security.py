"""Keys, scopes, limits and hostile bodies against a real server: the right 4xx, nothing written, no key in the log."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from meterdesk.services.apikeys import create_api_key, revoke_api_key
from tests.api.conftest import cli_env, start_server
from tests.api.test_contract import assert_problem, event

MIB = 1024 * 1024


def test_no_key_a_wrong_key_or_another_scheme_is_401(api, rid):
    before = api.entries()
    for headers in ({}, {"Authorization": "Bearer mdk_not-a-key"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer"}, {"Authorization": api.keys["rw"]}):
        answer = httpx.post(api.server.base + "/v1/usage", json=event(rid), headers=headers)
        assert_problem(answer, 401)
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert_problem(httpx.get(api.server.base + "/v1/usage/summary", params={"customer": "acme"}), 401)
    assert api.entries() == before


def test_a_revoked_key_is_refused_from_the_next_request_on(api, rid):
    key = create_api_key(api.ledger, f"short-lived-{rid[-8:]}", "usage:write", actor="tests").key
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.post(api.server.base + "/v1/usage", json=event(rid), headers=headers).status_code == 201
    revoke_api_key(api.ledger, f"short-lived-{rid[-8:]}", actor="tests")
    before = api.entries()
    assert_problem(httpx.post(api.server.base + "/v1/usage", json=event(rid + "-after"), headers=headers), 401)
    assert api.entries() == before


def test_a_key_without_the_scope_is_403(api, rid):
    before = api.entries()
    assert_problem(api.client("read").post("/v1/usage", json=event(rid)), 403)
    assert_problem(api.client("read").post("/v1/usage/batch", json={"events": [event(rid)]}), 403)
    for path, params in (("/v1/usage/summary", {"customer": "acme"}), ("/v1/usage", {"customer": "acme"}), ("/v1/customers/acme/balance", {})):
        assert_problem(api.client("write").get(path, params=params), 403)
    assert api.entries() == before


@pytest.mark.parametrize("parameter", ["key", "api_key", "access_token", "API_KEY"])
def test_a_key_in_the_query_string_is_refused_and_never_logged(api, rid, parameter):
    before = api.entries()
    leaked = api.keys["rw"]
    answer = api.client().post("/v1/usage", params={parameter: leaked}, json=event(rid))
    assert_problem(answer, 400, parameter)
    assert_problem(httpx.get(api.server.base + "/v1/usage/summary", params={"customer": "acme", parameter: leaked}), 400, parameter)
    assert api.entries() == before
    deadline = time.monotonic() + 5
    while '"GET /v1/usage/summary" 400' not in api.server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = api.server.log_text()
    assert '"GET /v1/usage/summary" 400' in log
    assert leaked not in log and "Bearer" not in log and "?" not in log


def test_keys_never_reach_the_log(api, rid):
    assert api.client().post("/v1/usage", json=event(rid)).status_code == 201
    time.sleep(0.2)
    log = api.server.log_text()
    assert '"POST /v1/usage" 201' in log and "key=backend" in log
    assert not any(key in log for key in api.keys.values())


def body_problem(api, content, status: int, **headers):
    before = api.entries()
    answer = api.client().post("/v1/usage", content=content, headers={"content-type": "application/json", **headers})
    assert_problem(answer, status)
    assert api.entries() == before
    return answer


def test_a_body_over_one_mebibyte_is_413_whether_announced_or_streamed(api, rid):
    padded = ('{"customer": "acme", "unit": "api_calls", "amount": "1", "request_id": "%s", "note": "' % rid).encode()
    big = padded + b"x" * (MIB - len(padded)) + b'"}'
    assert len(big) > MIB
    body_problem(api, big, 413)

    def chunks():
        yield big[: MIB // 2]
        yield big[MIB // 2:]

    body_problem(api, chunks(), 413)  # chunked: no Content-Length to go by


@pytest.mark.parametrize("content", [
    b"", b"{", b'{"customer": "acme",}', b"not json", b"\xff\xfe{}", b'\xef\xbb\xbf{"customer": "acme"}',
    b'{"customer": "acme", "unit": "api_calls", "amount": NaN, "request_id": "r"}',
    b'{"customer": "acme", "unit": "api_calls", "amount": Infinity, "request_id": "r"}',
    b'{"customer": "acme", "unit": "api_calls", "amount": -Infinity, "request_id": "r"}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    b'{"amount": ' + b"9" * 5000 + b"}",
], ids=["empty", "open", "trailing-comma", "text", "utf16", "bom", "nan", "infinity", "minus-infinity", "deep-arrays",
        "deep-objects", "huge-integer"])
def test_malformed_json_is_400(api, content):
    body_problem(api, content, 400)


def test_ten_thousand_fields_and_odd_values_are_422(api, rid):
    many = {**event(rid), **{f"field{n}": n for n in range(10_000)}}
    body_problem(api, httpx.Request("POST", "/", json=many).content, 422)
    for change in ({"note": "\ud800"}, {"note": "a\x00b"}, {"customer": "a\x00b"}, {"request_id": "\ud800"},
                   {"amount": [[[[1]]]]}, {"amount": {"value": 1}}, {"unit": None}):
        # json.dumps escapes the lone surrogate as \\ud800, as a client would send it.
        body_problem(api, json.dumps({**event(rid), **change}).encode(), 422)
    body_problem(api, b"[1, 2, 3]", 422)


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_over_the_rate_limit_is_429_with_retry_after(api, tmp_path):
    limited = start_server(api.ledger.url, tmp_path / "limited.log", "--rate-limit", "2")
    try:
        headers = {"Authorization": f"Bearer {api.keys['read']}"}
        with httpx.Client(base_url=limited.base, headers=headers) as client:
            answers = [client.get("/v1/customers/acme/balance") for _ in range(4)]
            assert [a.status_code for a in answers][:2] == [200, 200]
            refused = answers[-1]
            assert_problem(refused, 429)
            assert int(refused.headers["retry-after"]) >= 1
            # Another key has its own bucket.
            other = client.get("/v1/customers/acme/balance", headers={"Authorization": f"Bearer {api.keys['rw']}"})
            assert other.status_code == 200
    finally:
        # uvicorn finishes in-flight requests, then ends by the SIGTERM it was sent (re-raised after shutdown).
        assert limited.stop() in (0, -15)
        assert "Application shutdown complete" in limited.log_text()


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_sqlite_is_served_by_one_process(api):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "meterdesk", "serve", "--workers", "2"], capture_output=True, text=True,
                          env=cli_env(api.ledger.url), timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: --workers") and done.stderr.count("\n") == 1
