"""Reading usage files: format detection and the CSV and JSON Lines records every import path reads the same way."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from meterdesk.domain.errors import InvalidInput


IMPORT_FIELDS = ("customer", "unit", "amount", "request_id", "occurred_at", "note")


def detect_format(path: Path, head: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "jsonl" if head.lstrip().startswith("{") else "csv"


# An import file is decoded with errors="surrogateescape": a byte that is not UTF-8 becomes one of these
# lone surrogates (which valid UTF-8 never decodes to), so the file reads on and the line that holds it is
# rejected by its number like any other bad line (SPEC 5).
BAD_BYTES = re.compile("[\udc80-\udcff]")


FILE_ERRORS = "surrogateescape"


def bad_bytes(text: str) -> str | None:
    """The error of a line holding bytes that are not UTF-8, or None."""
    found = BAD_BYTES.search(text)
    if found is None:
        return None
    return f"line: not valid UTF-8 (byte 0x{ord(found[0]) - 0xDC00:02X} at character {found.start() + 1}); nothing on it was read"


def csv_fields(text: str) -> list[str] | str:
    """The CSV fields of one line of a file, or why the line is broken. A quoted field ends on the line it
    starts: a stray quote breaks its own line and never swallows the lines after it (SPEC 5)."""
    if '"' not in text:
        if BAD_BYTES.search(text):
            return bad_bytes(text)
        return text.rstrip("\r\n").split(",")  # the csv module's reading of a line without quotes
    if BAD_BYTES.search(text):
        return bad_bytes(text)
    try:
        return next(csv.reader((text,), strict=True), [])
    except csv.Error as error:
        if str(error) == "unexpected end of data":
            return "line: a quote is not closed; a quoted field must end on the line it starts"
        return f"line: broken quoting ({error}); a quoted field is a whole field, quotes inside it doubled"


def csv_records(handle, *, first_line: int = 1, header: bool = True, width: int = len(IMPORT_FIELDS)) -> Iterator[tuple[int, list | str]]:
    """(line number, fields in IMPORT_FIELDS order or an error) for every non-blank CSV line; a leading
    header row is optional. Missing trailing fields are None. `first_line`: the number of the handle's
    first line in the file; `header`: whether that line may be the header."""
    order: list[int] | None = None  # where each of IMPORT_FIELDS is in a row, after a header that reorders them
    for line, text in enumerate(handle, start=first_line):
        row = csv_fields(text)
        if type(row) is str:
            yield line, row
            continue
        if header and line == first_line and row and row[0].strip().lower() == "customer":
            names = [cell.strip().lower() for cell in row]
            unknown = [name for name in names if name not in IMPORT_FIELDS]
            if unknown:
                raise InvalidInput("file", f"unknown column {unknown[0]!r} in the header; columns are {', '.join(IMPORT_FIELDS)}")
            width = len(names)
            if names != list(IMPORT_FIELDS[: len(names)]):
                order = [names.index(name) if name in names else -1 for name in IMPORT_FIELDS]
            continue
        record = csv_record(row, width, order)
        if record is not None:
            yield line, record


def csv_record(row: list[str], width: int, order: list[int] | None = None) -> list | str | None:
    """A CSV row's fields in IMPORT_FIELDS order, an error, or None for a blank line."""
    if not row or all(not cell.strip() for cell in row):
        return None
    if len(row) < 4 or len(row) > width:
        return f"line has {len(row)} fields; expected customer,unit,amount,request_id[,occurred_at][,note]"
    if order is None:
        if len(row) < 6:
            row += [None] * (6 - len(row))
        return row
    return [row[i] if 0 <= i < len(row) else None for i in order]


JSON_TYPES = {dict: "a JSON object", list: "a JSON array", bool: "a JSON boolean", int: "a JSON number", Decimal: "a JSON number"}


TEXT_FIELDS = frozenset(("customer", "unit", "request_id", "occurred_at", "note"))


def jsonl_records(handle) -> Iterator[tuple[int, list | str]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        if BAD_BYTES.search(text):
            yield line, bad_bytes(text)
            continue
        try:
            # Numbers as Decimals, never floats; NaN and Infinity too, so the amount parser refuses them
            # as it refuses the text "NaN" on every other path.
            record = json.loads(text, parse_float=Decimal, parse_constant=Decimal)
        except ValueError as error:
            yield line, f"not valid JSON: {error}"
            continue
        except RecursionError:
            yield line, "not valid JSON: nested too deeply"
            continue
        if not isinstance(record, dict):
            yield line, "each line must be a JSON object"
            continue
        problem = json_field_problem(record)
        if problem:
            yield line, problem
            continue
        yield line, [record.get(name) for name in IMPORT_FIELDS]


def json_field_problem(record: dict) -> str | None:
    """Why a JSON Lines record's fields cannot be read, or None: an unknown field, or a value of the wrong
    JSON type — text fields take a string (or null), the amount a string or a number, never a nested value."""
    for key, value in record.items():
        if key not in IMPORT_FIELDS:
            return f"{key}: unknown field"
        if value is None or type(value) is str:
            continue
        if key in TEXT_FIELDS or type(value) in (dict, list):
            wanted = "text (a JSON string)" if key in TEXT_FIELDS else "a number (a JSON number or string)"
            return f"{key}: must be {wanted}, not {JSON_TYPES.get(type(value), type(value).__name__)}"
    return None


def file_records(path: Path, head: str, handle) -> Iterator[tuple[int, list | str]]:
    return jsonl_records(handle) if detect_format(path, head) == "jsonl" else csv_records(handle)


def file_position(handle) -> int:
    try:
        return handle.buffer.tell() if hasattr(handle, "buffer") else 0
    except (OSError, ValueError):
        return 0
