"""`meterdesk usage import FILE` on broken lines (SPEC 5): exit 3, one `error:` line, each broken line reported
by its number in the JSON, every other line recorded; never a traceback. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def seeded_cli(cli):
    from meterdesk.store.engine import open_ledger
    from tests.services.helpers import seed

    ledger = open_ledger(cli.url)
    seed(ledger)
    ledger.close()
    return cli


def _jsonl(*records: dict | str) -> bytes:
    return "".join((record if isinstance(record, str) else json.dumps(record)) + "\n" for record in records).encode()


def _event(request_id: str, **changes) -> dict:
    return {"customer": "acme", "unit": "api_calls", "amount": "1", "request_id": request_id, **changes}


_FILLER = b"".join(b"acme,api_calls,1,fill-%d\n" % n for n in range(300))  # past the first 4 KB

# name: (file bytes, lines recorded, lines rejected with the field or word their error begins with)
CASES = {
    "stray-quote.csv": (b'acme,api_calls,1,q-1\nacme,api_calls,2,"q-2\nacme,api_calls,3,q-3\nacme,api_calls,4,q-4\n',
                        3, {2: "line: a quote is not closed"}),
    "bad-byte-head.csv": (b"acme,api_calls,1,b-1\nacme,api_calls,1,b-\xff2\nacme,api_calls,1,b-3\n", 2, {2: "line: not valid UTF-8"}),
    "bad-byte-later.csv": (_FILLER + b"acme,api_calls,1,late-\xc3(\nacme,api_calls,1,late-2\n", 301, {301: "line: not valid UTF-8"}),
    "nested-note.jsonl": (_jsonl(_event("n-1"), _event("n-2", note={"a": 1}), _event("n-3", customer=["acme"]), _event("n-4")),
                          2, {2: "note:", 3: "customer:"}),
    "deep.jsonl": (_jsonl(_event("d-1"), "[" * 100_000, _event("d-3")), 2, {2: "not valid JSON"}),
    "nul.jsonl": (_jsonl(_event("z-1"), _event("z-2", customer="ac\u0000me"), _event("z\u0000-3"), _event("z-4", note="a\u0000b"),
                         _event("z-5")), 2, {2: "customer:", 3: "request_id:", 4: "note:"}),
    "spaces.csv": (b" acme ,api_calls,1,s-1\nacme,api_calls, 2 ,s-2\nacme, api_calls,1,s-3\n", 1, {1: "customer:", 3: "unit:"}),
    "digits.csv": ("acme,api_calls,\u0665,g-1\nacme,api_calls,\uff15,g-2\nacme,api_calls,5,g-3\n".encode(), 1,
                   {1: "amount:", 2: "amount:"}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_broken_line_is_reported_by_number_and_the_rest_recorded(seeded_cli, tmp_path, name):
    data, recorded, rejected = CASES[name]
    path = tmp_path / name
    path.write_bytes(data)
    run = seeded_cli("usage", "import", str(path), "--json")
    assert "Traceback" not in run.stderr, run.stderr
    assert run.status == 3, (run.status, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    document = run.json
    assert set(document) >= {"recorded", "duplicates", "rejected", "errors"}
    assert (document["recorded"], document["rejected"]) == (recorded, len(rejected)), document
    assert {error["line"]: error["error"] for error in document["errors"]}.keys() == rejected.keys()
    for error in document["errors"]:
        assert error["error"].startswith(rejected[error["line"]]), error
    again = seeded_cli("usage", "import", str(path), "--json")
    assert (again.status, again.json["recorded"], again.json["duplicates"]) == (3, 0, recorded)


def test_usage_record_reads_amounts_as_the_import_does(seeded_cli):
    """ASCII digits only; spaces around an amount are accepted, as on every import path."""
    for amount in ("\u0665", "\uff15", "1\u0665"):
        run = seeded_cli("usage", "record", "acme", "api_calls", amount, "--request-id", "digits")
        assert run.status == 3 and run.stderr.startswith("error: amount: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
    run = seeded_cli("usage", "record", "acme", "api_calls", " 5 ", "--request-id", "spaced", "--json")
    assert run.status == 0, run.stderr
    entries = seeded_cli("usage", "list", "--json").json["entries"]
    assert [(entry["request_id"], entry["amount"]) for entry in entries] == [("spaced", "5")]
