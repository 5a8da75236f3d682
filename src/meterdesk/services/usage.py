"""Use cases of the usage ledger: record one event, import a file of them, list entries."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from meterdesk.domain.errors import Conflict, InvalidInput, MeterdeskError, NotFound
from meterdesk.domain.periods import MAX_FUTURE_SKEW, check_not_future, from_micros, parse_timestamp, to_micros
from meterdesk.domain.units import MAX_AMOUNT, validate_request_id, validate_usage_amount
from meterdesk.services.context import default_actor, now_us
from meterdesk.services.shapes import exact_money, money
from meterdesk.services.writer import EntryWriter, NewEntry, StoredEntry, mismatch, over_limit
from meterdesk.store.codec import decode_money, decode_quantity, encode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import CustomerRow, UnitRow, customer_by_external_id, customer_from_row, unit_by_code
from meterdesk.store.schema import SOURCES, customers

MAX_NOTE_LENGTH = 2000
MAX_FUTURE_SKEW_US = int(MAX_FUTURE_SKEW.total_seconds()) * 1_000_000
MAX_REPORTED_ERRORS = 10_000
IMPORT_BATCH = 5000


@dataclass(frozen=True, slots=True)
class RecordResult:
    entry_id: int
    duplicate: bool
    charged: Decimal | None
    balance: Decimal | None
    over_limit: bool
    period: str
    late: bool
    currency: str

    def to_json(self) -> dict:
        return {
            "entry_id": self.entry_id,
            "duplicate": self.duplicate,
            "charged": None if self.charged is None else money(self.charged, self.currency),
            "balance": None if self.balance is None else money(self.balance, self.currency),
            "over_limit": self.over_limit,
            "period": self.period,
            "late": self.late,
            "charged_exact": None if self.charged is None else exact_money(self.charged),
            "balance_exact": None if self.balance is None else exact_money(self.balance),
        }


def validate_note(note: str | None) -> str | None:
    if note is None:
        return None
    note = str(note)
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidInput("note", f"is {len(note)} characters long; at most {MAX_NOTE_LENGTH} are allowed")
    return note or None


def validate_source(source: str) -> str:
    if source not in SOURCES:
        raise InvalidInput("source", f"must be one of {', '.join(SOURCES)}, not {source!r}")
    return source


def parse_occurred_at(value, now: int, field: str = "occurred_at") -> int | None:
    """An occurred_at as microseconds (None: now); refuses garbage and the future (+5 min skew)."""
    if value is None or value == "":
        return None
    instant = parse_timestamp(value, field)
    micros = to_micros(instant)
    if micros > now + MAX_FUTURE_SKEW_US:
        check_not_future(instant, from_micros(now), field)  # raises, with the domain's message
    return micros


def _duplicate_or_conflict(stored: StoredEntry, entry: NewEntry) -> None:
    reason = mismatch(stored, entry)
    if reason:
        raise Conflict(
            f"request_id: {entry.request_id!r} was already recorded for customer {entry.customer.external_id!r} "
            f"as entry {stored.id} with {reason}; use a new request id for a new event"
        )


def record_usage(
    ledger: Ledger,
    customer: str,
    unit: str,
    amount,
    request_id: str,
    *,
    occurred_at=None,
    note: str | None = None,
    source: str = "api",
    actor: str | None = None,
) -> RecordResult:
    """Record one usage event, exactly once per (customer, request id), charging prepaid balances at once."""
    source = validate_source(source)
    actor = actor or default_actor(source)
    request_id = validate_request_id(request_id)
    note = validate_note(note)
    now = now_us()
    occurred = parse_occurred_at(occurred_at, now)
    with ledger.write() as connection:
        customer_row = customer_by_external_id(connection, customer, lock=True)
        unit_row = unit_by_code(connection, unit, ledger.cache)
        quantity_amount = validate_usage_amount(unit_row.unit, amount)
        entry = NewEntry(
            customer_row,
            unit_row,
            quantity_amount,
            encode_quantity(quantity_amount, unit_row.unit.decimals),
            occurred,
            request_id,
            note,
        )
        writer = EntryWriter(connection, ledger, now, source, actor)
        stored = writer.existing([(customer_row.id, request_id)]).get((customer_row.id, request_id))
        if stored is None:
            row = writer.prepare(entry)
            entry_id = writer.insert_one(row)
            if entry_id is not None:
                balances = writer.flush()
                return _result(customer_row, entry_id, False, row.charged, balances.get(customer_row.id), row.period, row.late, writer)
            # Lost a race we should not be able to lose under the lock: the unique key kept us honest.
            stored = writer.existing([(customer_row.id, request_id)])[(customer_row.id, request_id)]
        _duplicate_or_conflict(stored, entry)
        return _result(customer_row, stored.id, True, stored.charged, None, stored.period, stored.late, writer)


def _result(customer: CustomerRow, entry_id, duplicate, charged, balance, period, late, writer: EntryWriter) -> RecordResult:
    if customer.prepaid and balance is None:
        balance = writer.balance(customer.id)
    return RecordResult(
        entry_id=entry_id,
        duplicate=duplicate,
        charged=decode_money(charged) if customer.prepaid else None,
        balance=decode_money(balance) if customer.prepaid else None,
        over_limit=customer.prepaid and over_limit(customer, balance),
        period=period,
        late=late,
        currency=customer.currency,
    )


# -- import -------------------------------------------------------------------------------------

IMPORT_FIELDS = ("customer", "unit", "amount", "request_id", "occurred_at", "note")


@dataclass
class ImportResult:
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    lines: int = 0
    cancelled: bool = False

    def reject(self, line: int, error: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "error": error})

    def to_json(self) -> dict:
        shape = {"recorded": self.recorded, "duplicates": self.duplicates, "rejected": self.rejected, "errors": self.errors}
        if self.cancelled:
            shape["cancelled"] = True
        return shape


@dataclass(frozen=True, slots=True)
class ImportProgress:
    lines: int
    bytes_read: int
    total_bytes: int | None
    recorded: int
    duplicates: int
    rejected: int


def _detect_format(path: Path, head: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "jsonl" if head.lstrip().startswith("{") else "csv"


def _csv_records(handle) -> Iterator[tuple[int, dict | str]]:
    """(line number, record or error) for every non-blank CSV line; a leading header row is optional."""
    reader = csv.reader(handle)
    header: tuple[str, ...] = IMPORT_FIELDS
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if line == 1 and row[0].strip().lower() == "customer":
            names = tuple(cell.strip().lower() for cell in row)
            unknown = [name for name in names if name not in IMPORT_FIELDS]
            if unknown:
                raise InvalidInput("file", f"unknown column {unknown[0]!r} in the header; columns are {', '.join(IMPORT_FIELDS)}")
            header = names
            continue
        if len(row) < 4 or len(row) > len(header):
            yield line, f"line has {len(row)} fields; expected customer,unit,amount,request_id[,occurred_at][,note]"
            continue
        yield line, dict(zip(header, row))


def _jsonl_records(handle) -> Iterator[tuple[int, dict | str]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text, parse_float=Decimal)
        except ValueError as error:
            yield line, f"not valid JSON: {error}"
            continue
        if not isinstance(record, dict):
            yield line, "each line must be a JSON object"
            continue
        unknown = [key for key in record if key not in IMPORT_FIELDS]
        if unknown:
            yield line, f"{unknown[0]}: unknown field"
            continue
        yield line, record


class _Importer:
    def __init__(self, ledger: Ledger, actor: str, result: ImportResult) -> None:
        self.ledger = ledger
        self.actor = actor
        self.result = result
        self.customers: dict[str, CustomerRow | None] = {}
        self.units: dict[str, UnitRow | None] = {}

    def _load_customers(self, ids: set[str]) -> None:
        missing = [i for i in ids if i not in self.customers]
        if not missing:
            return
        with self.ledger.read() as connection:
            for start in range(0, len(missing), 1000):
                chunk = missing[start : start + 1000]
                for row in connection.execute(select(customers).where(customers.c.external_id.in_(chunk))):
                    self.customers[row.external_id] = customer_from_row(row)
        for i in missing:
            self.customers.setdefault(i, None)

    def _load_units(self, codes: set[str]) -> None:
        missing = [code for code in codes if code not in self.units]
        if not missing:
            return
        with self.ledger.read() as connection:
            for code in missing:
                try:
                    self.units[code] = unit_by_code(connection, code, self.ledger.cache)
                except NotFound:
                    self.units[code] = None

    def run_batch(self, batch: list[tuple[int, dict | str]], now: int) -> None:
        records = [record for _, record in batch if type(record) is dict]
        self._load_customers({str(record.get("customer") or "").strip() for record in records})
        self._load_units({str(record.get("unit") or "").strip() for record in records})
        prepared: list[tuple[int, NewEntry]] = []
        reject, validate = self.result.reject, self._validate
        for line, record in batch:
            if type(record) is not dict:
                reject(line, record)
                continue
            try:
                prepared.append((line, validate(record, now)))
            except MeterdeskError as error:
                reject(line, str(error))
        if prepared:
            self._write(prepared, now)

    def _validate(self, record: dict, now: int) -> NewEntry:
        customer_id = str(record.get("customer") or "").strip()
        if not customer_id:
            raise InvalidInput("customer", "is missing")
        customer = self.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"customer: unknown customer {customer_id!r}")
        unit_code = str(record.get("unit") or "").strip()
        if not unit_code:
            raise InvalidInput("unit", "is missing")
        unit = self.units.get(unit_code)
        if unit is None:
            raise NotFound(f"unit: unknown unit {unit_code!r}")
        decimals = unit.unit.decimals
        raw_amount = record.get("amount")
        quantity = _plain_quantity(raw_amount, decimals)
        if quantity is None:
            amount = validate_usage_amount(unit.unit, raw_amount.strip() if isinstance(raw_amount, str) else raw_amount)
            quantity = encode_quantity(amount, decimals)
        else:
            amount = decode_quantity(quantity, decimals)
        request_id = validate_request_id(record.get("request_id") if record.get("request_id") is not None else "")
        raw_time = record.get("occurred_at")
        occurred = _utc_seconds(raw_time, now)
        if occurred is None:
            occurred = parse_occurred_at(raw_time.strip() or None if isinstance(raw_time, str) else raw_time, now)
        return NewEntry(customer, unit, amount, quantity, occurred, request_id, validate_note(record.get("note")))

    def _write(self, prepared: list[tuple[int, NewEntry]], now: int) -> None:
        with self.ledger.write() as connection:
            writer = EntryWriter(connection, self.ledger, now, "import", self.actor)
            writer.lock_customers(entry.customer.id for _, entry in prepared)
            stored = writer.existing((entry.customer.id, entry.request_id) for _, entry in prepared)
            writer.preload([entry for _, entry in prepared if (entry.customer.id, entry.request_id) not in stored])
            seen: dict[tuple[int, str], NewEntry] = {}
            fresh: list[NewEntry] = []
            duplicates = 0
            for line, entry in prepared:
                key = (entry.customer.id, entry.request_id)
                try:
                    if key in stored:
                        _duplicate_or_conflict(stored[key], entry)
                        duplicates += 1
                    elif key in seen:
                        if _same_event(seen[key], entry):
                            duplicates += 1
                        else:
                            raise Conflict(f"request_id: {entry.request_id!r} appears earlier in this file with a different event")
                    else:
                        seen[key] = entry
                        fresh.append(entry)
                except MeterdeskError as error:
                    self.result.reject(line, str(error))
            writer.insert_many(writer.prepare_many(fresh))
            writer.flush(balances=False)
        self.result.recorded += len(fresh)
        self.result.duplicates += duplicates


# The shapes almost every line of a usage file has, read without the general parsers (which stay the
# authority for everything else and for every error message): a plain amount such as "1500" or "2.25",
# and a UTC timestamp to the second such as "2026-11-03T10:00:00Z".
_PLAIN_AMOUNT = re.compile(r"(\d{1,16})(?:\.(\d{1,6}))?")
_UTC_SECOND = re.compile(r"(\d{4}-\d{2}-\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)Z")
_MAX_SCALED = [int(MAX_AMOUNT) * 10**places for places in range(7)]
_day_micros: dict[str, int] = {}


def _plain_quantity(value, decimals: int) -> int | None:
    """A plain positive amount as an integer scaled by `decimals`; None when the general parser must decide."""
    if type(value) is not str or not (match := _PLAIN_AMOUNT.fullmatch(value)):
        return None
    whole, fraction = match[1], match[2] or ""
    if fraction[decimals:].strip("0"):
        return None  # more places than the unit allows: the general parser words the error
    quantity = int(whole) * 10**decimals + (int(fraction[:decimals].ljust(decimals, "0")) if decimals else 0)
    return quantity if 0 < quantity <= _MAX_SCALED[decimals] else None


def _utc_seconds(value, now: int) -> int | None:
    """A timestamp like "2026-11-03T10:00:00Z" in microseconds; None when the general parser must decide."""
    if type(value) is not str or not (match := _UTC_SECOND.fullmatch(value)):
        return None
    day = _day_micros.get(match[1])
    if day is None:
        try:
            day = to_micros(datetime.combine(date.fromisoformat(match[1]), time.min, tzinfo=UTC))
        except ValueError:
            return None
        if len(_day_micros) < 4096:
            _day_micros[match[1]] = day
    micros = day + (int(match[2]) * 3600 + int(match[3]) * 60 + int(match[4])) * 1_000_000
    return micros if micros <= now + MAX_FUTURE_SKEW_US else None


def _same_event(first: NewEntry, second: NewEntry) -> bool:
    return (
        first.unit.id == second.unit.id
        and first.quantity == second.quantity
        and (second.occurred_at is None or first.occurred_at == second.occurred_at)
    )


def import_usage(
    ledger: Ledger,
    path: str | Path,
    *,
    actor: str | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    batch_size: int = IMPORT_BATCH,
) -> ImportResult:
    """Import a CSV or JSON Lines file in batches: valid lines recorded, bad lines reported, re-runnable.

    Each batch is one transaction, so an interrupted import keeps what it acknowledged, and running the
    same file again records nothing new (request ids are unique per customer forever).
    """
    path = Path(path)
    actor = actor or default_actor("import")
    try:
        handle = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as error:
        raise InvalidInput("file", f"cannot read {str(path)!r}: {error.strerror or error}") from error
    result = ImportResult()
    importer = _Importer(ledger, actor, result)
    total_bytes = path.stat().st_size if path.is_file() else None
    with handle:
        head = handle.read(4096)
        handle.seek(0)
        records = _jsonl_records(handle) if _detect_format(path, head) == "jsonl" else _csv_records(handle)
        batch: list[tuple[int, dict | str]] = []
        try:
            for item in records:
                batch.append(item)
                if len(batch) >= batch_size:
                    _run(importer, batch, result, progress, handle, total_bytes)
                    batch = []
                    if cancelled and cancelled():
                        result.cancelled = True
                        return result
            if batch:
                _run(importer, batch, result, progress, handle, total_bytes)
        except (UnicodeDecodeError, csv.Error) as error:
            raise InvalidInput("file", f"{path.name} is not a readable UTF-8 CSV or JSON Lines file: {error}") from error
    return result


def _run(importer: _Importer, batch, result: ImportResult, progress, handle, total_bytes) -> None:
    reported = len(result.errors)
    importer.run_batch(batch, now_us())
    # Validation and writing report separately; keep the batch's errors in line order.
    result.errors[reported:] = sorted(result.errors[reported:], key=lambda error: error["line"])
    result.lines = batch[-1][0]
    if progress:
        try:
            position = handle.buffer.tell() if hasattr(handle, "buffer") else 0
        except (OSError, ValueError):
            position = 0
        progress(ImportProgress(result.lines, position, total_bytes, result.recorded, result.duplicates, result.rejected))


def import_text(ledger: Ledger, text: str, *, name: str = "input.csv", actor: str | None = None) -> ImportResult:
    """Import from an in-memory text (the HTTP API and tests); same rules as a file."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / name
        target.write_text(text, encoding="utf-8")
        return import_usage(ledger, target, actor=actor)


