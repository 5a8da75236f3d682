"""SPEC 5: an import file is read the same way by every code path. A broken line (an unterminated quote, bad
bytes in its encoding, a nested JSON value where text belongs, JSON nested past any depth) is reported by its
line number and never swallows the lines after it; ids reach the shared validators exactly as written; amounts
are read by the one amount parser (ASCII digits only, never through a float).

Every CSV test runs on three ways of importing: the general path alone (services/imports.py), the fast lane
(services/column_reader.py and store/column_writer.py, column by column, in this process) and the reader process (which runs the fast lane's
reader in a second process); JSON Lines on the two ways it has (in this process, the reader process). Every
test runs on SQLite and PostgreSQL (the `ledger` fixture)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from meterdesk.domain.errors import MeterdeskError
from meterdesk.services import column_reader, imports
from meterdesk.store import column_writer
from meterdesk.services.imports import import_usage
from meterdesk.services.recording import record_usage
from tests.services.helpers import seed
from tests.services.test_import_paths import _this_period_at

CSV_WAYS = ["general", "fast-lane", "reader-process"]
JSONL_WAYS = ["in-process", "reader-process"]
HEADER = "customer,unit,amount,request_id,occurred_at\n"


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    return ledger


class _Way:
    """Forces one way of importing, and for the fast lane counts the batches it wrote."""

    def __init__(self, name: str, monkeypatch) -> None:
        self.name = name
        self.fast_batches = 0
        if name == "general":
            monkeypatch.setattr(column_reader.ColumnReader, "check", lambda *arguments: None)
        if name == "reader-process":
            monkeypatch.setattr(imports, "READER_PROCESS_BYTES", 0)
        else:
            monkeypatch.setattr(imports, "READER_PROCESS_BYTES", 1 << 40)
        original = column_writer.write_columns

        def counting(*arguments, **keywords):
            outcome = original(*arguments, **keywords)
            self.fast_batches += outcome is not None
            return outcome

        monkeypatch.setattr(imports, "write_columns", counting)

    def check(self) -> None:
        if self.name == "fast-lane":
            assert self.fast_batches >= 2, "the clean batches went through the fast lane"
        if self.name == "general":
            assert self.fast_batches == 0


def _clean(ledger, tag: str, count: int, second: int = 0) -> list[str]:
    """Lines the fast lane takes: a known customer and unit, a plain amount, a UTC time to the second."""
    return [f"acme,api_calls,{n % 9 + 1},{tag}-{n},{_this_period_at(ledger, second + n)}" for n in range(count)]


def _request_ids(ledger) -> list[str]:
    with ledger.read() as connection:
        return sorted(row[0] for row in connection.execute(text("SELECT request_id FROM usage_entries")))


def _errors(result) -> list[tuple[int, str]]:
    return [(error["line"], error["error"]) for error in result.errors]


# -- 1. an unterminated quote ----------------------------------------------------------------------------

@pytest.mark.parametrize("way", CSV_WAYS)
def test_a_stray_quote_rejects_its_own_line_and_the_lines_after_it_are_read(seeded, tmp_path, monkeypatch, way):
    forced = _Way(way, monkeypatch)
    before, between, after = _clean(seeded, "before", 8), _clean(seeded, "between", 8, 100), _clean(seeded, "after", 8, 200)
    at = _this_period_at(seeded, 300)
    lines = [
        *before,  # lines 2-9
        f'acme,api_calls,3,"broken-1,{at}',  # line 10: the quote never ends
        f'acme,api_calls,2,"quoted-ok",{at}',  # line 11: quoted properly
        *between,  # lines 12-19
        f'"acme,api_calls,4,broken-2,{at}',  # line 20
        f'acme,api_calls,5,"broken"-3,{at}',  # line 21: text after the closing quote
        *after,  # lines 22-29
    ]
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n")
    result = import_usage(seeded, path, batch_size=4)
    assert [line for line, _ in _errors(result)] == [10, 20, 21]
    assert all("quote" in error for _, error in _errors(result)), result.errors
    assert (result.recorded, result.duplicates, result.rejected) == (25, 0, 3)
    expected = sorted([line.split(",")[3] for line in before + between + after] + ["quoted-ok"])
    assert _request_ids(seeded) == expected
    forced.check()


# -- 2. bad bytes ----------------------------------------------------------------------------------------

def _bad_bytes_csv(ledger) -> tuple[bytes, list[str], list[int]]:
    """A CSV with a bad byte on line 3 (within the first 4 KB) and on a line past 4 KB; the clean request ids."""
    head = _clean(ledger, "head", 6)
    middle = _clean(ledger, "middle", 80, 100)
    tail = _clean(ledger, "tail", 8, 300)
    at = _this_period_at(ledger, 400)
    lines = [
        HEADER.encode(),
        *(line.encode() + b"\n" for line in head[:1]),  # line 2
        b"acme,api_calls,1,bad-\xff-id," + at.encode() + b"\n",  # line 3
        *(line.encode() + b"\n" for line in head[1:] + middle),  # lines 4-88
        b"ac\xc3(me,api_calls,1,bad-customer," + at.encode() + b"\n",  # line 89: a broken two-byte sequence
        *(line.encode() + b"\n" for line in tail),  # lines 90-97
    ]
    data = b"".join(lines)
    assert data.index(b"\xc3(") > 4096
    return data, sorted(line.split(",")[3] for line in head + middle + tail), [3, 89]


@pytest.mark.parametrize("way", CSV_WAYS)
def test_bad_bytes_reject_their_own_line_only(seeded, tmp_path, monkeypatch, way):
    forced = _Way(way, monkeypatch)
    data, clean_ids, bad_lines = _bad_bytes_csv(seeded)
    path = tmp_path / "usage.csv"
    path.write_bytes(data)
    result = import_usage(seeded, path, batch_size=8)
    assert [line for line, _ in _errors(result)] == bad_lines
    assert all("UTF-8" in error for _, error in _errors(result)), result.errors
    assert (result.recorded, result.rejected) == (len(clean_ids), 2)
    assert _request_ids(seeded) == clean_ids
    forced.check()


@pytest.mark.parametrize("way", JSONL_WAYS)
def test_bad_bytes_in_json_lines_reject_their_own_line_only(seeded, tmp_path, monkeypatch, way):
    _Way(way, monkeypatch)
    good = [json.dumps({"customer": "acme", "unit": "api_calls", "amount": "1", "request_id": f"j-{n}"}).encode() for n in range(120)]
    lines = good[:2] + [b'{"customer": "acme", "unit": "api_calls", "amount": "1", "request_id": "bad-\xfe"}'] + good[2:]
    lines.insert(100, b'{"customer": "acme", "unit": "api_\xe2\x82calls", "amount": "1", "request_id": "bad-2"}')
    path = tmp_path / "usage.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = import_usage(seeded, path, batch_size=16)
    assert [line for line, _ in _errors(result)] == [3, 101]
    assert all("UTF-8" in error for _, error in _errors(result)), result.errors
    assert result.recorded == 120
    assert _request_ids(seeded) == sorted(f"j-{n}" for n in range(120))


# -- 3. nested JSON values, and JSON numbers read exactly ------------------------------------------------

@pytest.mark.parametrize("way", JSONL_WAYS)
def test_a_nested_json_value_where_text_belongs_is_rejected_naming_the_field(seeded, tmp_path, monkeypatch, way):
    _Way(way, monkeypatch)

    def line(**changes) -> str:
        return json.dumps({"customer": "acme", "unit": "api_calls", "amount": "1", **changes})

    lines = [
        line(request_id="ok-1"),  # 1
        line(request_id="n-2", note={"text": "an object"}),  # 2
        line(request_id="n-3", customer={"id": "acme"}),  # 3
        line(request_id=["n-4"]),  # 4
        line(request_id="n-5", unit=["api_calls"]),  # 5
        line(request_id="n-6", amount={"value": "1"}),  # 6
        line(request_id="n-7", occurred_at=["2026-01-01"]),  # 7
        line(request_id="n-8", note=["a", "list"]),  # 8
        line(request_id="ok-9", note="plain text"),  # 9
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = import_usage(seeded, path)
    fields = {2: "note", 3: "customer", 4: "request_id", 5: "unit", 6: "amount", 7: "occurred_at", 8: "note"}
    assert [line for line, _ in _errors(result)] == list(fields)
    for (line_number, error), field in zip(_errors(result), fields.values()):
        assert error.startswith(f"{field}: "), (line_number, error)
        assert "JSON object" in error or "JSON array" in error, error
    assert _request_ids(seeded) == ["ok-1", "ok-9"]
    with seeded.read() as connection:
        notes = connection.execute(text("SELECT note FROM usage_entries WHERE request_id = 'ok-9'")).scalar()
    assert notes == "plain text"


@pytest.mark.parametrize("way", JSONL_WAYS)
def test_json_numbers_are_read_exactly(seeded, tmp_path, monkeypatch, way):
    _Way(way, monkeypatch)
    lines = [
        '{"customer": "acme", "unit": "storage_gb", "amount": 123456789012345.678, "request_id": "big"}',  # beyond a float
        '{"customer": "acme", "unit": "storage_gb", "amount": 0.1, "request_id": "tenth"}',
        '{"customer": "acme", "unit": "api_calls", "amount": 1E2, "request_id": "exponent"}',
        '{"customer": "acme", "unit": "api_calls", "amount": 1000000000000000, "request_id": "the-most"}',
        '{"customer": "acme", "unit": "storage_gb", "amount": 1.0001, "request_id": "too-fine"}',
        '{"customer": "acme", "unit": "api_calls", "amount": 1e400, "request_id": "huge"}',
        '{"customer": "acme", "unit": "api_calls", "amount": NaN, "request_id": "nan"}',
        '{"customer": "acme", "unit": "api_calls", "amount": -Infinity, "request_id": "infinite"}',
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = import_usage(seeded, path)
    assert [line for line, _ in _errors(result)] == [5, 6, 7, 8]
    assert all(error.startswith("amount: ") for _, error in _errors(result))
    assert [error for line, error in _errors(result) if line > 6] == [  # as the command line says of "NaN"
        "amount: must be a finite number, not NaN", "amount: must be a finite number, not -Infinity"]
    with seeded.read() as connection:
        stored = dict(connection.execute(text("SELECT request_id, quantity FROM usage_entries")).all())
    assert {key: int(value) for key, value in stored.items()} == {
        "big": 123456789012345678, "tenth": 100, "exponent": 100, "the-most": 10**15,
    }


# -- 4. JSON nested past any depth -----------------------------------------------------------------------

@pytest.mark.parametrize("way", JSONL_WAYS)
def test_json_nested_too_deeply_is_a_rejected_line(seeded, tmp_path, monkeypatch, way):
    _Way(way, monkeypatch)
    good = [json.dumps({"customer": "acme", "unit": "api_calls", "amount": "1", "request_id": f"d-{n}"}) for n in range(3)]
    lines = [good[0], "[" * 100_000, good[1], '{"customer": "acme", "note": ' + "{\"a\": " * 100_000 + "1" + "}" * 100_001, good[2]]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = import_usage(seeded, path)
    assert [line for line, _ in _errors(result)] == [2, 4]
    assert (result.recorded, result.rejected) == (3, 2)
    assert _request_ids(seeded) == ["d-0", "d-1", "d-2"]


# -- 5. NUL and other unprintable characters in ids -----------------------------------------------------

@pytest.mark.parametrize("way", JSONL_WAYS)
def test_a_nul_in_a_json_lines_field_is_refused_naming_the_field(seeded, tmp_path, monkeypatch, way):
    _Way(way, monkeypatch)

    def line(**changes) -> str:
        return json.dumps({"customer": "acme", "unit": "api_calls", "amount": "1", **changes})

    lines = [
        line(request_id="ok-1"),
        line(request_id="nul-2", customer="ac\u0000me"),
        line(request_id="nul\u0000-3"),
        line(request_id="nul-4", unit="api_calls\u0000"),
        line(request_id="nul-5", note="a\u0000note"),
        line(request_id="ok-6"),
        line(request_id="lone-7", customer="acme\ud800"),  # a lone surrogate, escaped in the JSON
        line(request_id="lone-\udfff-8"),
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = import_usage(seeded, path)
    fields = {2: "customer", 3: "request_id", 4: "unit", 5: "note", 7: "customer", 8: "request_id"}
    assert [line for line, _ in _errors(result)] == list(fields)
    for (line_number, error), field in zip(_errors(result), fields.values()):
        assert error.startswith(f"{field}: "), (line_number, error)
    assert _request_ids(seeded) == ["ok-1", "ok-6"]


@pytest.mark.parametrize("way", CSV_WAYS)
def test_a_nul_in_a_csv_field_is_refused_naming_the_field(seeded, tmp_path, monkeypatch, way):
    forced = _Way(way, monkeypatch)
    before, after = _clean(seeded, "before", 8), _clean(seeded, "after", 8, 100)
    at = _this_period_at(seeded, 200)
    lines = [*before, f"ac\0me,api_calls,1,nul-1,{at}", f"acme,api_calls,1,nul\0-2,{at}", f"acme,api_calls\0,1,nul-3,{at}", *after]
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n")
    result = import_usage(seeded, path, batch_size=4)
    fields = {10: "customer", 11: "request_id", 12: "unit"}
    assert [line for line, _ in _errors(result)] == list(fields)
    for (line_number, error), field in zip(_errors(result), fields.values()):
        assert error.startswith(f"{field}: "), (line_number, error)
    assert _request_ids(seeded) == sorted(line.split(",")[3] for line in before + after)
    forced.check()


# -- 6. whitespace: ids exactly as written, amounts the same way everywhere -----------------------------

def _reference(ledger, customer: str, unit: str, amount: str, request_id: str, occurred_at=None) -> str | None:
    """What the Python API says of one event: None when it records it (or finds it recorded), else its error."""
    try:
        record_usage(ledger, customer, unit, amount, request_id, occurred_at=occurred_at)
    except MeterdeskError as error:
        return str(error)
    return None


WHITESPACE_CASES = [
    # (customer, unit, amount, request id), as each format writes them
    (" acme ", "api_calls", "5", "ws-1"),
    ("acme ", "api_calls", "5", "ws-2"),
    ("acme", " api_calls", "5", "ws-3"),
    ("acme", "api_calls", "5", " ws-4 "),
]


@pytest.mark.parametrize("fmt", ["plain-csv", "quoted-csv", "jsonl"])
@pytest.mark.parametrize("way", CSV_WAYS)
def test_ids_reach_the_validators_exactly_as_written_on_every_path(seeded, tmp_path, monkeypatch, way, fmt):
    """` acme ` is the same bytes in a plain CSV, a quoted CSV and JSON Lines: no reader strips it; each
    line fares as the Python API fares with the same values (SPEC 2 "Ids": no surrounding whitespace)."""
    if fmt == "jsonl" and way == "fast-lane":
        pytest.skip("JSON Lines has no fast lane")
    _Way(way, monkeypatch)
    at = _this_period_at(seeded, 50)
    clean = _clean(seeded, "clean", 8)
    if fmt == "jsonl":
        def write(customer, unit, amount, request_id, occurred=at) -> str:
            return json.dumps({"customer": customer, "unit": unit, "amount": amount, "request_id": request_id, "occurred_at": occurred})

        lines = [write(*line.split(",")) for line in clean]
    else:
        def write(*fields) -> str:
            return ",".join(f'"{field}"' for field in (*fields, at)) if fmt == "quoted-csv" else ",".join((*fields, at))

        lines = [HEADER.rstrip("\n")] + clean
    first = len(lines) + 1
    lines += [write(*case) for case in WHITESPACE_CASES]
    path = tmp_path / ("usage.jsonl" if fmt == "jsonl" else "usage.csv")
    path.write_text("\n".join(lines) + "\n")
    result = import_usage(seeded, path, batch_size=1)  # each line a batch: the fast lane tries every one
    found = {error["line"]: error["error"] for error in result.errors}
    # The reference, on the same ledger after the import: a line the import recorded is a duplicate now
    # (no error); a line it rejected is rejected with the same message.
    for offset, case in enumerate(WHITESPACE_CASES):
        assert found.get(first + offset) == _reference(seeded, *case, occurred_at=at), case
    assert {line for line in found} >= {first, first + 1, first + 2}, "a customer or unit with spaces is never another's"
    assert found[first].startswith("customer: ") and found[first + 2].startswith("unit: ")


@pytest.mark.parametrize("fmt", ["plain-csv", "quoted-csv", "jsonl"])
@pytest.mark.parametrize("way", CSV_WAYS)
def test_spaces_around_an_amount_are_read_the_same_on_every_path(seeded, tmp_path, monkeypatch, way, fmt):
    """Amounts may carry surrounding spaces on every path (the Python API, the CLI, CSV, JSON Lines): an
    amount is a number, not a key."""
    if fmt == "jsonl" and way == "fast-lane":
        pytest.skip("JSON Lines has no fast lane")
    _Way(way, monkeypatch)
    at = _this_period_at(seeded, 50)
    amounts = [" 5", "5 ", " 2.5 "]
    units = ["api_calls", "api_calls", "storage_gb"]
    if fmt == "jsonl":
        lines = [json.dumps({"customer": "acme", "unit": unit, "amount": amount, "request_id": f"sp-{n}", "occurred_at": at})
                 for n, (unit, amount) in enumerate(zip(units, amounts))]
    else:
        quote = '"' if fmt == "quoted-csv" else ""
        lines = [HEADER.rstrip("\n")] + [f"acme,{unit},{quote}{amount}{quote},sp-{n},{at}" for n, (unit, amount) in enumerate(zip(units, amounts))]
    path = tmp_path / ("usage.jsonl" if fmt == "jsonl" else "usage.csv")
    path.write_text("\n".join(lines) + "\n")
    result = import_usage(seeded, path)
    assert (result.recorded, result.rejected) == (3, 0), result.errors
    with seeded.read() as connection:
        stored = dict(connection.execute(text("SELECT request_id, quantity FROM usage_entries")).all())
    assert {key: int(value) for key, value in stored.items()} == {"sp-0": 5, "sp-1": 5, "sp-2": 2500}
    assert _reference(seeded, "acme", "api_calls", " 7 ", "sp-api") is None


# -- 7. ASCII digits only --------------------------------------------------------------------------------

NON_ASCII_AMOUNTS = [("api_calls", "\u0665"), ("api_calls", "\uff15"), ("api_calls", "1\u0665"), ("storage_gb", "1.\u0665"),
                     ("storage_gb", "\u09e8.5"), ("api_calls", "\U0001d7d3")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("way", CSV_WAYS)
def test_amounts_with_digits_other_than_ascii_are_refused_on_every_path(seeded, tmp_path, monkeypatch, way, fmt):
    if fmt == "jsonl" and way == "fast-lane":
        pytest.skip("JSON Lines has no fast lane")
    forced = _Way(way, monkeypatch)
    clean = _clean(seeded, "clean", 8)
    at = _this_period_at(seeded, 100)
    bad = [f"acme,{unit},{amount},digit-{n},{at}" for n, (unit, amount) in enumerate(NON_ASCII_AMOUNTS)]
    if fmt == "jsonl":
        keys = ("customer", "unit", "amount", "request_id", "occurred_at")
        lines = [json.dumps(dict(zip(keys, line.split(",")))) for line in clean + bad]
        first = len(clean) + 1
    else:
        lines = [HEADER.rstrip("\n")] + clean + bad
        first = len(clean) + 2
    path = tmp_path / ("usage.jsonl" if fmt == "jsonl" else "usage.csv")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = import_usage(seeded, path, batch_size=4)
    assert [line for line, _ in _errors(result)] == list(range(first, first + len(bad)))
    assert all(error.startswith("amount: ") for _, error in _errors(result)), result.errors
    assert result.recorded == len(clean)
    assert _request_ids(seeded) == sorted(line.split(",")[3] for line in clean)
    if fmt == "csv":
        forced.check()
    for unit, amount in NON_ASCII_AMOUNTS:  # the Python API (and so the CLI and the HTTP API) the same
        assert (_reference(seeded, "acme", unit, amount, "digits") or "").startswith("amount: "), amount


def test_the_fast_lane_leaves_ids_with_spaces_at_either_end_to_the_validator():
    """The column check takes only request ids it can prove plain; the validator judges the rest (a batch
    with one goes the general way), so no path accepts what the validator refuses."""
    plain = column_reader.ColumnReader._plain_request_ids
    assert plain(["r-1", "a b", "x" * 255])
    for odd in (" r", "r ", " ", "   ", "a\x00b", "bad-\udcff", "a\tb", "\u00a0r"):
        assert not plain(["r-1", odd, "r-2"]), odd
