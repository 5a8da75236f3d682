"""The import pipeline: a usage file read in batches (in a reader process for big files), validated and written, each batch once."""

from __future__ import annotations

import csv
import gc
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from itertools import islice
from operator import itemgetter
from pathlib import Path

from sqlalchemy import select

from meterdesk.domain.errors import Conflict, InvalidInput, MeterdeskError, NotFound, Unavailable
from meterdesk.domain.periods import to_micros
from meterdesk.domain.units import (
    MAX_SCALED_AMOUNTS, UNIT_CODE_RE, plain_quantity, validate_request_id, validate_usage_amount,
)
from meterdesk.services.catalog import validate_customer_id
from meterdesk.services.context import default_actor, now_us
from meterdesk.domain.timeline import local_midnight
from meterdesk.services.column_reader import FAST_COLUMNS, ColumnReader
from meterdesk.services.import_files import (
    FILE_ERRORS, IMPORT_FIELDS, csv_fields, csv_record, csv_records, detect_format, file_position, file_records,
)
from meterdesk.services.recording import MAX_FUTURE_SKEW_US, check_not_before_start, parse_occurred_at, validate_note
from meterdesk.store.column_writer import ColumnBatch, by_customer, write_columns
from meterdesk.store.writer import EntryWriter, NewEntry, duplicate_or_conflict
from meterdesk.store.codec import decode_quantity, encode_quantity
from meterdesk.store.engine import BackgroundCheckpoints, Ledger
from meterdesk.store.queries import CustomerRow, UnitRow, customer_from_row, subscription_starts, unit_by_code, unit_by_id
from meterdesk.store.schema import customers


MAX_REPORTED_ERRORS = 10_000


IMPORT_BATCH = 250_000  # lines per transaction: commits, index page writes and per-batch reads amortize (1M lines: 8 batches, measured 1.2 s of SQLite commits fewer than at 100k)


FIRST_BATCH = 12_500  # a fast-lane import's first batch; the next ones double up to IMPORT_BATCH


EXPECT_NEW_AFTER = 1000  # a batch this big with no request id taken makes the next ones skip the lookups


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


def batch_sizes(batch_size: int = IMPORT_BATCH) -> Iterator[int]:
    """Lines per batch of a fast-lane CSV import, endlessly: small first batches, so the writer starts while
    the reader goes on, then doubling up to `batch_size`."""
    size = min(batch_size, FIRST_BATCH)
    while True:
        yield size
        size = min(batch_size, size * 2)


def _read_csv_fast(importer: "_Importer", handle, batch_size: int) -> Iterator:
    """A CSV file's batches: clean ones checked column by column (services/column_reader.py) and handed on as
    a ColumnBatch, any other the general way (a validated batch, its lines read one by one by
    `csv_fields`). A file whose header reorders the columns goes the general way throughout."""
    first = handle.readline()
    if not first:
        return
    row = csv_fields(first)
    line = 0
    pending = [first]
    width = len(row) if type(row) is list else len(IMPORT_FIELDS)
    if type(row) is list and row and row[0].strip().lower() == "customer":
        names = [cell.strip().lower() for cell in row]
        if names not in (list(FAST_COLUMNS), list(IMPORT_FIELDS)) or '"' in first:
            handle.seek(0)
            yield from _read_in_turn(importer, csv_records(handle), batch_size, handle)
            return
        line, pending = 1, []
    if width not in (len(FAST_COLUMNS), len(IMPORT_FIELDS)):
        width = len(IMPORT_FIELDS)  # the column checks will send every batch the general way
    reader = ColumnReader(importer, width, MAX_SCALED_AMOUNTS, lambda now: now + MAX_FUTURE_SKEW_US)
    for size in batch_sizes(batch_size):
        lines = pending + list(islice(handle, size - len(pending)))
        pending = []
        if not lines:
            return
        first_line, line = line + 1, line + len(lines)
        now = now_us()
        batch = reader.check(lines, first_line, line, file_position(handle), now)
        if batch is not None:
            yield batch
            continue
        records = []
        for number, text in enumerate(lines, start=first_line):
            row = csv_fields(text)
            record = row if type(row) is str else csv_record(row, width)
            if record is not None:
                records.append((number, record))
        if records:
            yield importer.validate(records, now, file_position(handle))


@dataclass(frozen=True, slots=True)
class _ValidatedBatch:
    """A batch of lines, read and validated ahead of the one being written."""

    last_line: int
    bytes_read: int
    entries: list[tuple[int, NewEntry]]
    rejected: list[tuple[int, str]]


class _Importer:
    def __init__(self, ledger: Ledger, actor: str, result: ImportResult, checkpoints: BackgroundCheckpoints | None = None) -> None:
        self.ledger = ledger
        self.actor = actor
        self.result = result
        self.customers: dict[str, CustomerRow | None] = {}
        self.units: dict[str, UnitRow | None] = {}
        self.customers_by_id: dict[int, CustomerRow] = {}
        self.starts: dict[int, int] = {}  # customer row id -> first instant of its first subscription
        self.units_by_id: dict[int, UnitRow] = {}
        self.expect_new = False
        self.checkpoints = checkpoints  # the import's checkpoint thread (SQLite), for each batch's write

    def _load_customers(self, ids: set[str]) -> None:
        """Look up customer ids not seen yet; an id the customer id validator refuses (a NUL, bad bytes,
        spaces around it) is never looked up: it is unknown here, and `_validate` says why."""
        missing = [i for i in ids if i not in self.customers]
        if not missing:
            return
        for i in missing:
            if not _valid_customer_id(i):
                self.customers[i] = None
        missing = [i for i in missing if i not in self.customers]
        with self.ledger.read() as connection:
            for start in range(0, len(missing), 1000):
                chunk = missing[start : start + 1000]
                for row in connection.execute(select(customers).where(customers.c.external_id.in_(chunk))):
                    self.customers[row.external_id] = customer_from_row(row)
            loaded = [self.customers[i].id for i in missing if self.customers.get(i) is not None]
            zone = self.ledger.timezone
            self.starts.update((key, local_midnight(day, zone)) for key, day in subscription_starts(connection, loaded).items())
        for i in missing:
            self.customers.setdefault(i, None)

    def _load_units(self, codes: set[str]) -> None:
        """Look up unit codes not seen yet; text that is no unit code's shape is unknown without asking."""
        missing = [code for code in codes if code not in self.units]
        for code in missing:
            if not UNIT_CODE_RE.fullmatch(code):
                self.units[code] = None
        missing = [code for code in missing if code not in self.units]
        if not missing:
            return
        with self.ledger.read() as connection:
            for code in missing:
                try:
                    self.units[code] = unit_by_code(connection, code, self.ledger.cache)
                except NotFound:
                    self.units[code] = None

    def validate(self, batch: list[tuple[int, list | str]], now: int, bytes_read: int) -> _ValidatedBatch:
        records = [fields for _, fields in batch if type(fields) is list]
        self._load_customers(_unknown(self.customers, (f[0] for f in records)))
        self._load_units(_unknown(self.units, (f[1] for f in records)))
        entries: list[tuple[int, NewEntry]] = []
        rejected: list[tuple[int, str]] = []
        validate = self._validate
        for line, fields in batch:
            if type(fields) is not list:
                rejected.append((line, fields))
                continue
            try:
                entries.append((line, validate(fields, now)))
            except MeterdeskError as error:
                rejected.append((line, str(error)))
        return _ValidatedBatch(batch[-1][0], bytes_read, entries, rejected)

    def rebuild(self, entries: list[tuple]) -> list[tuple[int, NewEntry]]:
        """Entries validated by the reader process, around this process's customer and unit rows."""
        by_id = self.customers_by_id
        missing = {customer_id for _, customer_id, *_ in entries if customer_id not in by_id}
        units = self.units_by_id
        with self.ledger.read() as connection:
            for start in range(0, len(missing), 1000):
                chunk = sorted(missing)[start : start + 1000]
                for row in connection.execute(select(customers).where(customers.c.id.in_(chunk))):
                    by_id[row.id] = customer_from_row(row)
            for unit_id in {unit_id for _, _, unit_id, *_ in entries} - units.keys():
                units[unit_id] = unit_by_id(connection, unit_id, self.ledger.cache)
        amounts: dict[tuple[int, int], Decimal] = {}
        rebuilt = []
        for line, customer_id, unit_id, quantity, occurred, request_id, note in entries:
            unit = units[unit_id]
            amount = amounts.get((quantity, unit_id))
            if amount is None:
                amount = amounts[(quantity, unit_id)] = decode_quantity(quantity, unit.unit.decimals)
            rebuilt.append((line, NewEntry(by_id[customer_id], unit, amount, quantity, occurred, request_id, note)))
        return rebuilt

    def write(self, batch: "_ValidatedBatch | ColumnBatch") -> None:
        if type(batch) is ColumnBatch:
            self._write_columns(batch)
            return
        for line, error in batch.rejected:
            self.result.reject(line, error)
        if batch.entries:
            self._write(batch.entries, now_us())

    def _column_writing(self) -> dict:
        """What the column writer takes from this import besides the batch."""
        return {"actor": self.actor, "customers_by_id": self.customers_by_id, "units_by_id": self.units_by_id,
                "checkpoints": self.checkpoints}

    def _write_columns(self, batch: ColumnBatch) -> None:
        """A clean batch through the fast lane; the general path when the fast lane declines it."""
        now = now_us()
        outcome = write_columns(self.ledger, batch, now, expect_new=self.expect_new, **self._column_writing())
        if outcome is None and self.expect_new:
            self.expect_new = False  # a re-run or an overlap: look every request id up from now on
            outcome = write_columns(self.ledger, batch, now, expect_new=False, **self._column_writing())
        if outcome is None:
            entries = [
                (batch.line(i), *values, None)
                for i, values in enumerate(zip(batch.customer_ids, batch.unit_ids, batch.quantities, batch.occurred, batch.request_ids))
            ]
            if batch.lines is not None:
                entries.sort(key=itemgetter(0))  # the general path takes the lines in file order
            self._write(self.rebuild(entries), now)
            return
        self.result.recorded += outcome.recorded
        self.result.duplicates += outcome.duplicates
        for line, error in outcome.rejected:
            self.result.reject(line, error)
        self.expect_new = not outcome.duplicates and not outcome.rejected and outcome.recorded >= EXPECT_NEW_AFTER

    def _validate(self, fields: list, now: int) -> NewEntry:
        customer_text, unit_text, raw_amount, raw_request_id, raw_time, note = fields
        # The common line — known customer and unit, plain amount, UTC timestamp to the second — is read
        # without the general parsers; anything else (and every error) goes through them below.
        if type(customer_text) is str and type(unit_text) is str:
            customer, unit = self.customers.get(customer_text), self.units.get(unit_text)
        else:
            customer = unit = None
        if customer is not None and unit is not None:
            known = _amounts.get((raw_amount, unit.unit.decimals)) if type(raw_amount) is str else None
            if known is None:
                known = _plain_amount(raw_amount, unit.unit.decimals)
            occurred = _utc_seconds(raw_time, now) if raw_time else None
            if (known is not None and (occurred is not None or not raw_time) and type(raw_request_id) is str
                    and (occurred if occurred is not None else now) >= self.starts.get(customer.id, 0)):
                return NewEntry(customer, unit, known[1], known[0], occurred, validate_request_id(raw_request_id),
                                validate_note(note) if note else None)
        # Ids reach the shared validators exactly as written: no reader strips them (SPEC 2 "Ids").
        if customer_text is None or customer_text == "":
            raise InvalidInput("customer", "is missing")
        customer_id = validate_customer_id(customer_text, "customer")
        customer = self.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"customer: unknown customer {customer_id!r}")
        if unit_text is None or unit_text == "":
            raise InvalidInput("unit", "is missing")
        if type(unit_text) is not str:
            raise InvalidInput("unit", f"must be text, not {type(unit_text).__name__}")
        unit = self.units.get(unit_text)
        if unit is None:
            raise NotFound(f"unit: unknown unit {unit_text!r}")
        decimals = unit.unit.decimals
        quantity = plain_quantity(raw_amount, decimals)
        if quantity is None:
            amount = validate_usage_amount(unit.unit, raw_amount)
            quantity = encode_quantity(amount, decimals)
        else:
            amount = decode_quantity(quantity, decimals)
        request_id = validate_request_id(raw_request_id if raw_request_id is not None else "")
        occurred = _utc_seconds(raw_time, now)
        if occurred is None:
            occurred = parse_occurred_at(raw_time.strip() or None if isinstance(raw_time, str) else raw_time, now, timezone=self.ledger.timezone)
        check_not_before_start(occurred if occurred is not None else now, self.starts.get(customer.id), self.ledger.timezone)
        return NewEntry(customer, unit, amount, quantity, occurred, request_id, validate_note(note))

    def _write(self, prepared: list[tuple[int, NewEntry]], now: int) -> None:
        if self.expect_new:
            try:
                self._write_new(prepared, now)
                return
            except _RequestIdTaken:
                self.expect_new = False  # a re-run or an overlap: look every request id up from now on
        self._write_checked(prepared, now)

    def _write_new(self, prepared: list[tuple[int, NewEntry]], now: int) -> None:
        """Write a batch whose request ids are all expected to be new (a file importing for the first
        time, once its first batch found none taken): the insert's own unique-key check is the only one.
        Raises _RequestIdTaken, having written nothing, when a request id was taken after all."""
        entries = [entry for _, entry in prepared]
        if len({(entry.customer.id, entry.request_id) for entry in entries}) < len(entries):
            raise _RequestIdTaken  # the file repeats itself within the batch: the checked path says how
        with self.ledger.write(checkpoints=self.checkpoints) as connection:
            writer = EntryWriter(connection, self.ledger, now, "import", self.actor)
            writer.lock_customers(entry.customer.id for entry in entries)
            writer.preload(entries)
            if any(writer.out_of_range(entries)):
                raise _RequestIdTaken  # a line would leave the exact range: the checked path rejects it
            if not writer.insert_new(writer.prepare_many(entries)):
                raise _RequestIdTaken  # rolls the transaction back
            writer.flush(balances=False)
        self.result.recorded += len(entries)

    def _write_checked(self, prepared: list[tuple[int, NewEntry]], now: int) -> None:
        with self.ledger.write(checkpoints=self.checkpoints) as connection:
            writer = EntryWriter(connection, self.ledger, now, "import", self.actor)
            writer.lock_customers(entry.customer.id for _, entry in prepared)
            stored = writer.existing((entry.customer.id, entry.request_id) for _, entry in prepared)
            writer.preload([entry for _, entry in prepared if (entry.customer.id, entry.request_id) not in stored])
            seen: dict[tuple[int, str], NewEntry] = {}
            fresh: list[NewEntry] = []
            fresh_lines: list[int] = []
            repeated: dict[tuple[int, str], list[int]] = {}  # lines repeating a fresh line of this batch
            duplicates = 0
            for line, entry in prepared:
                key = (entry.customer.id, entry.request_id)
                try:
                    if key in stored:
                        duplicate_or_conflict(stored[key], entry)
                        duplicates += 1
                    elif key in seen:
                        if _same_event(seen[key], entry):
                            duplicates += 1
                            repeated.setdefault(key, []).append(line)
                        else:
                            raise Conflict(f"request_id: {entry.request_id!r} appears earlier in this file with a different event")
                    else:
                        seen[key] = entry
                        fresh.append(entry)
                        fresh_lines.append(line)
                except MeterdeskError as error:
                    self.result.reject(line, str(error))
            # Lines that would take a period total out of the exact range are rejected, and so are their repeats.
            problems = writer.out_of_range(fresh)
            if any(problems):
                kept = []
                for line, entry, problem in zip(fresh_lines, fresh, problems):
                    if problem is None:
                        kept.append(entry)
                        continue
                    again = repeated.get((entry.customer.id, entry.request_id), [])
                    duplicates -= len(again)
                    for rejected_line in (line, *again):
                        self.result.reject(rejected_line, str(problem))
                fresh = kept
            writer.insert_many(writer.prepare_many(fresh))
            writer.flush(balances=False)
        self.result.recorded += len(fresh)
        self.result.duplicates += duplicates
        # A batch that found every request id new suggests a fresh file: skip the lookups next time.
        self.expect_new = not stored and not duplicates and len(prepared) >= EXPECT_NEW_AFTER


class _RequestIdTaken(Exception):
    """An import batch expected to be all new met a request id already recorded."""


def _unknown(known: dict, values) -> set[str]:
    """The values not yet looked up: text, exactly as written (anything else is refused by `_validate`)."""
    return {value for value in values if type(value) is str and value not in known}


def _valid_customer_id(value: str) -> bool:
    try:
        validate_customer_id(value, "customer")
    except InvalidInput:
        return False
    return True


# The shapes almost every line of a usage file has, read without the general parsers (which stay the
# authority for everything else and for every error message): a plain amount such as "1500" or "2.25"
# (domain.units.plain_quantity, the amount parser's own reading of it), and a UTC timestamp to the second
# such as "2026-11-03T10:00:00Z".
_UTC_SECOND = re.compile(r"(\d{4}-\d{2}-\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)Z", re.ASCII)






_day_micros: dict[str, int] = {}


_amounts: dict[tuple[str, int], tuple[int, Decimal]] = {}


def _plain_amount(value, decimals: int) -> tuple[int, Decimal] | None:
    """(scaled quantity, amount) of a plain amount, remembered: a usage file repeats the same few amounts."""
    quantity = plain_quantity(value, decimals)
    if quantity is None:
        return None
    found = (quantity, decode_quantity(quantity, decimals))
    if len(_amounts) < 65536:
        _amounts[(value, decimals)] = found
    return found


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
        handle = path.open("r", encoding="utf-8-sig", errors=FILE_ERRORS, newline="")
    except OSError as error:
        raise InvalidInput("file", f"cannot read {str(path)!r}: {error.strerror or error}") from error
    result = ImportResult()
    total_bytes = path.stat().st_size if path.is_file() else None
    with handle, _no_cycle_collection(), ledger.background_checkpoints() as checkpoints:
        importer = _Importer(ledger, actor, result, checkpoints)
        if total_bytes is not None and total_bytes >= READER_PROCESS_BYTES:
            # A big file is read and validated by a second process while this one writes: parsing and
            # validating is about a third of an import's Python time, and two cores do both at once.
            batches = _read_in_process(ledger, importer, path, batch_size)
        else:
            head = handle.read(4096)
            handle.seek(0)
            if detect_format(path, head) == "csv":
                batches = _read_csv_fast(importer, handle, batch_size)
            else:
                # PostgreSQL: validate the next batch on a thread while the server writes this one. SQLite
                # writes in this process, where a second Python thread only takes turns with it for the GIL.
                read = _read_ahead if ledger.dialect == "postgresql" else _read_in_turn
                batches = read(importer, file_records(path, head, handle), batch_size, handle)
        try:
            for batch in batches:
                reported = len(result.errors)
                importer.write(batch)
                # Validation and writing report separately; keep the batch's errors in line order.
                result.errors[reported:] = sorted(result.errors[reported:], key=lambda error: error["line"])
                result.lines = batch.last_line
                if progress:
                    progress(ImportProgress(result.lines, batch.bytes_read, total_bytes, result.recorded, result.duplicates, result.rejected))
                if cancelled and cancelled():
                    result.cancelled = True
                    return result
        except (UnicodeDecodeError, csv.Error) as error:
            raise InvalidInput("file", f"{path.name} is not a readable UTF-8 CSV or JSON Lines file: {error}") from error
        finally:
            batches.close()
    return result


class _no_cycle_collection:
    """Python's cycle collector paused while a file is imported: the batches allocate millions of short-lived
    tuples and lists and make no cycles, and the collector's passes over them were ~4 % of a 1M-line import's
    CPU (perf). Whatever cycles the import does make are collected when it ends."""

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info) -> None:
        if self.was_enabled:
            gc.enable()


_END = object()


READER_PROCESS_BYTES = 8 * 1024 * 1024


def _read_in_process(ledger: Ledger, importer: _Importer, path: Path, batch_size: int) -> Iterator[_ValidatedBatch]:
    """The file's batches, read and validated by a reader process (see `_reader_process`) and handed over
    as plain tuples through a pipe; the entries are rebuilt here around this process's customer and unit
    rows. The reader works on the next batch while this process writes one."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # never fork: the GUI has threads
    receiving, sending = context.Pipe(duplex=False)
    reader = context.Process(
        target=_reader_process, args=(ledger.url, str(path), batch_size, sending), name="meterdesk-import-reader", daemon=True
    )
    reader.start()
    sending.close()  # the reader holds the only sending end: its exit ends the pipe
    try:
        while True:
            try:
                message = receiving.recv()
            except EOFError:
                raise Unavailable(f"the process reading {path.name} stopped (exit status {reader.join(5) or reader.exitcode})") from None
            if message[0] == "end":
                return
            if message[0] == "unreadable":
                raise csv.Error(message[1])
            if message[0] == "error":
                raise message[1]
            if message[0] == "columns":
                yield message[1]
                continue
            _, last_line, bytes_read, entries, rejected = message
            yield _ValidatedBatch(last_line, bytes_read, importer.rebuild(entries), rejected)
    finally:
        receiving.close()  # a reader still sending gets a broken pipe and stops
        reader.join(10)
        if reader.is_alive():
            reader.terminate()
            reader.join()


def _reader_process(url: str, path: str, batch_size: int, sending) -> None:
    """Runs in the reader process: validate the file batch by batch against the ledger's customers and
    units, and send each batch as tuples of ids and values (sent as soon as it is ready; the pipe holds
    back the reader while the importing process is still writing the one before)."""
    from meterdesk.store.engine import open_ledger

    gc.disable()  # this process only reads the file: see _no_cycle_collection
    try:
        try:
            ledger = open_ledger(url, upgrade=False)
        except BaseException as error:  # noqa: BLE001 - reported by the importing process
            sending.send(("error", error))
            return
        try:
            importer = _Importer(ledger, "", ImportResult())
            with Path(path).open("r", encoding="utf-8-sig", errors=FILE_ERRORS, newline="") as handle:
                head = handle.read(4096)
                handle.seek(0)
                if detect_format(Path(path), head) == "csv":
                    batches = _read_csv_fast(importer, handle, batch_size)
                else:
                    batches = _read_in_turn(importer, file_records(Path(path), head, handle), batch_size, handle)
                for batch in batches:
                    if type(batch) is ColumnBatch:
                        sending.send(("columns", by_customer(batch)))
                        continue
                    entries = [
                        (line, e.customer.id, e.unit.id, e.quantity, e.occurred_at, e.request_id, e.note) for line, e in batch.entries
                    ]
                    sending.send(("batch", batch.last_line, batch.bytes_read, entries, batch.rejected))
            sending.send(("end",))
        except (UnicodeDecodeError, csv.Error) as error:
            sending.send(("unreadable", str(error)))
        except MeterdeskError as error:
            sending.send(("error", error))
        except (BrokenPipeError, EOFError, OSError):
            pass  # the importing process stopped listening (cancelled, or failed): nothing to report
        except BaseException as error:  # noqa: BLE001 - reported by the importing process
            sending.send(("error", RuntimeError(f"reading the file failed: {error!r}")))
        finally:
            ledger.close()
    except (BrokenPipeError, OSError):
        pass
    finally:
        sending.close()


def _read_in_turn(importer: _Importer, records: Iterator, batch_size: int, handle) -> Iterator[_ValidatedBatch]:
    batch: list = []
    for item in records:
        batch.append(item)
        if len(batch) >= batch_size:
            yield importer.validate(batch, now_us(), file_position(handle))
            batch = []
    if batch:
        yield importer.validate(batch, now_us(), file_position(handle))


def _read_ahead(importer: _Importer, records: Iterator, batch_size: int, handle) -> Iterator[_ValidatedBatch]:
    """The file's batches, read and validated on a thread while the previous batch is being written.

    Parsing and validating a batch is Python work; writing it is mostly the database's (SQLite's B-tree
    work runs without the GIL, PostgreSQL's in its own process), so the two overlap on two cores. At most
    two batches wait ahead; an error while reading arrives in order, after the batches before it.
    """
    ahead: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            batch: list = []
            for item in records:
                batch.append(item)
                if len(batch) >= batch_size:
                    if not offer(importer.validate(batch, now_us(), file_position(handle))):
                        return
                    batch = []
            if batch and not offer(importer.validate(batch, now_us(), file_position(handle))):
                return
            offer(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread, which raises it
            offer(error)

    reader = threading.Thread(target=read, name="meterdesk-import-reader", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def import_text(ledger: Ledger, text: str, *, name: str = "input.csv", actor: str | None = None) -> ImportResult:
    """Import from an in-memory text (the HTTP API and tests); same rules as a file."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / name
        target.write_text(text, encoding="utf-8")
        return import_usage(ledger, target, actor=actor)
