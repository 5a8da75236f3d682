"""The entry writer's column batches: a clean import batch written in one transaction, column by column.

A batch the fast lane (services/column_reader.py) has proved clean is written here with the same
`EntryWriter` bookkeeping every other entry gets — placement, idempotency, prepaid charges through the
domain's one pricer, the daily rollup and the balances — only with the per-line work done in bulk: COPY on
PostgreSQL, one executemany on SQLite, the rollup added up over whole columns. A batch it cannot write as
such (lines in more than one period, or in a period already closed for one of its customers, a request id
repeated within it, a total beyond the exact range) is left untouched and returned as None: the general
path takes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from bisect import bisect_right
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

from meterdesk.domain.units import Aggregation
from meterdesk.store.writer import EntryWriter, NewEntry, StoredEntry
from meterdesk.store.codec import decode_quantity
from meterdesk.store.engine import Ledger


class ColumnBatch(NamedTuple):
    """A clean batch: entry i is line `first_line + i`, or `lines[i]` in a batch put in customer order
    (`by_customer`). Plain lists, so it crosses a process pipe cheaply."""

    first_line: int
    last_line: int
    bytes_read: int
    customer_ids: list[int]
    unit_ids: list[int]
    quantities: list[int]  # scaled by the unit's decimals
    occurred: list[int]  # microseconds
    request_ids: list[str]  # no notes: a batch with one goes the general way
    lines: list[int] | None = None

    def line(self, index: int) -> int:
        """The file line of entry `index`."""
        return self.first_line + index if self.lines is None else self.lines[index]


def by_customer(batch: ColumnBatch) -> ColumnBatch:
    """The batch with its entries in customer order, each customer's in file order, and their line numbers.

    The reader process sends batches so. Unpickling creates a column's values in the order they come, so
    in the importing process they then lie in memory in the order the SQLite insert binds them (by
    customer, `_insert_sqlite`): bound from values scattered in file order, a 1M-line import's inserts
    took about 1 s longer. Nothing else depends on the order across customers: a customer's prepaid
    charges are priced in its own lines' order, errors are reported by line number."""
    n = len(batch.customer_ids)
    if n < 2 or batch.lines is not None:
        return batch
    if n < NUMPY_ORDER_ROWS:
        order = sorted(range(n), key=batch.customer_ids.__getitem__)
        pick = itemgetter(*order)
        return batch._replace(
            customer_ids=list(pick(batch.customer_ids)), unit_ids=list(pick(batch.unit_ids)),
            quantities=list(pick(batch.quantities)), occurred=list(pick(batch.occurred)),
            request_ids=list(pick(batch.request_ids)), lines=[batch.first_line + index for index in order],
        )
    import numpy as np

    # Integer columns through numpy: gathering a list's ints touches each object at random (half the time).
    customer_ids = np.array(batch.customer_ids, dtype=np.int64)
    order = np.argsort(customer_ids, kind="stable")
    pick = itemgetter(*order.tolist())

    def ordered(column: list[int]) -> list[int]:
        try:
            return np.array(column, dtype=np.int64)[order].tolist()
        except OverflowError:  # a quantity beyond 64 bits (16 digits and 6 decimals): the plain way
            return list(pick(column))

    return batch._replace(
        customer_ids=customer_ids[order].tolist(), unit_ids=ordered(batch.unit_ids), quantities=ordered(batch.quantities),
        occurred=ordered(batch.occurred), request_ids=list(pick(batch.request_ids)), lines=(order + batch.first_line).tolist(),
    )


NUMPY_ORDER_ROWS = 50_000  # smaller batches (the first ones) are put in order without importing numpy


class Outcome(NamedTuple):
    recorded: int
    duplicates: int
    rejected: list[tuple[int, str]]


class _NotForTheFastLane(Exception):
    """Raised inside the write transaction to roll it back: the general path takes the batch."""


def write_columns(ledger: Ledger, batch: ColumnBatch, now: int, *, actor: str, customers_by_id: dict, units_by_id: dict,
                  checkpoints=None, expect_new: bool) -> Outcome | None:
    """Write a clean batch in one transaction; None (nothing written) when the general path must take it.

    `customers_by_id` and `units_by_id` are the caller's caches of the rows the batch refers to, filled
    here with any not seen yet. With `expect_new` the request ids are not looked up first: the insert's
    unique key is the only check, and a batch that finds one taken is rolled back and returned as None for
    the general path.
    """
    timeline = ledger.timeline
    occurred = batch.occurred
    period = timeline.period_of(min(occurred))
    _, end = timeline.bounds(period)
    if max(occurred) >= end:
        return None  # spans two periods
    name = timeline.name(period)
    customer_ids, unit_ids, request_ids = batch.customer_ids, batch.unit_ids, batch.request_ids
    n = len(request_ids)
    if len(set(request_ids)) < n and len(set(zip(customer_ids, request_ids))) < n:
        return None  # the file repeats a request id within the batch: the general path says how
    try:
        # SQLite without its per-row foreign key checks: every customer and unit the batch refers to is read
        # in this transaction first (a missing one stops the batch), and neither is ever deleted; on a bulk
        # import those checks cost a fifth of each insert.
        with ledger.write(foreign_keys=False, checkpoints=checkpoints) as connection:
            customers = _customers(customers_by_id, connection, set(customer_ids))
            units = _units(units_by_id, ledger, connection, set(unit_ids))
            writer = EntryWriter(connection, ledger, now, "import", actor)
            ids = sorted(set(customer_ids))
            writer.lock_customers(ids)
            if any(last is not None and last >= name for last in _last_closed(connection, ids)):
                raise _NotForTheFastLane  # late usage for someone: placement is the general path's
            fresh: range | list[int] = range(n)
            duplicates = 0
            rejected: list[tuple[int, str]] = []
            if not expect_new:
                found = _existing(connection, batch)
                if found == n:
                    found, duplicates = [], n  # a re-run: every line recorded before, as the same event
                    fresh = []
                if found:
                    differing = [index for index, same in found if not same]
                    duplicates = len(found) - len(differing)
                    for index in differing:
                        rejected.append((batch.line(index), _conflict(connection, batch, index, customers, units)))
                    rejected.sort()  # in file order, whatever the batch's order
                    taken = {index for index, _ in found}
                    fresh = [index for index in range(n) if index not in taken]
            count, chunks, book_rollup = _prepare(writer, batch, fresh, customers, units, period, name, timeline.days(period))
            # PostgreSQL inserts one slice while the next is priced, and the rollup is added up meanwhile.
            if not _insert(connection, count, chunks, now, actor, book_rollup):
                raise _NotForTheFastLane  # a request id was taken after all (a racing import)
            if not _within_exact_range(connection, writer.rollup, name, units):
                raise _NotForTheFastLane  # the general path rejects the lines that would leave it, one by one
            if connection.dialect.name == "postgresql":
                _upsert_rollup(connection, writer.rollup)
                writer.rollup.clear()
            writer.flush(balances=False)
    except _NotForTheFastLane:
        return None
    return Outcome(count, duplicates, rejected)


def _within_exact_range(connection, rollup: dict, name: str, units: dict) -> bool:
    """Whether every period total of the batch's customers and units stays within the exact range (SPEC 2):
    what the period holds already plus what the batch adds (its rollup, keyed by customer, period, unit,
    day)."""
    from meterdesk.domain.units import MAX_SCALED
    from meterdesk.store.queries import period_quantities

    added: dict[tuple[int, int, str], int] = {}
    for (customer_id, _, unit_id, _), counts in rollup.items():
        key = (customer_id, unit_id, name)
        added[key] = added.get(key, 0) + counts[0]
    stored = period_quantities(connection, set(added))
    return all(stored.get(key, 0) + quantity <= MAX_SCALED for key, quantity in added.items())


def _customers(by_id: dict, connection, ids: set[int]) -> dict:
    from sqlalchemy import select

    from meterdesk.store.queries import customer_from_row
    from meterdesk.store.schema import customers

    missing = sorted(ids.difference(by_id))
    for start in range(0, len(missing), 1000):
        for row in connection.execute(select(customers).where(customers.c.id.in_(missing[start : start + 1000]))):
            by_id[row.id] = customer_from_row(row)
    if not ids.issubset(by_id):
        raise RuntimeError(f"customers {sorted(ids.difference(by_id))[:5]} are not in the ledger")
    return by_id


def _units(by_id: dict, ledger: Ledger, connection, ids: set[int]) -> dict:
    from meterdesk.store.queries import unit_by_id

    for unit_id in ids.difference(by_id):
        by_id[unit_id] = unit_by_id(connection, unit_id, ledger.cache)
    return by_id


def _last_closed(connection, ids: list[int]) -> list[str | None]:
    """The last closed period of each of these customers that has one."""
    rows = connection.exec_driver_sql("SELECT customer_id, max(period) FROM invoices GROUP BY customer_id").all()
    wanted = set(ids)
    return [period for customer_id, period in rows if customer_id in wanted]


# PostgreSQL: the batch's keys and events as arrays (binary, so psycopg quotes nothing), numbered from 1,
# joined with the unique index.
_PG_KEYS = (
    "unnest(%b::bigint[], %b::text[], %b::bigint[], %b::bigint[], %b::bigint[]) "
    "WITH ORDINALITY AS k(customer_id, request_id, unit_id, quantity, occurred_at, i) "
    "JOIN usage_entries e ON e.customer_id = k.customer_id AND e.request_id = k.request_id"
)


def _existing(connection, batch: ColumnBatch) -> list[tuple[int, bool]] | int:
    """(index, same event) of every line of the batch whose request id is already recorded for its customer;
    the comparison (unit, amount, occurred_at: what makes a retry the same request) is done in SQL. Just
    the number of lines, when every one of them is such a duplicate (a file imported again)."""
    same = "e.unit_id = k.unit_id AND e.quantity = k.quantity AND e.occurred_at = k.occurred_at"
    # One pass over the join: how many lines are recorded, and how many of those as another event.
    counts = f"SELECT count(*), coalesce(sum(CASE WHEN {same} THEN 0 ELSE 1 END), 0) FROM "
    n = len(batch.request_ids)
    if connection.dialect.name == "postgresql":
        found, differing = connection.exec_driver_sql(
            counts + _PG_KEYS, (batch.customer_ids, batch.request_ids, batch.unit_ids, batch.quantities, batch.occurred)
        ).one()
    else:
        cursor = connection.connection.driver_connection.cursor()
        try:
            _fill_keys(cursor, batch)
            # CROSS JOIN keeps the batch the outer loop: one unique-index probe per line.
            found, differing = cursor.execute(
                counts + "meterdesk_import_keys k CROSS JOIN usage_entries e "
                "ON e.customer_id = k.customer_id AND e.request_id = k.request_id"
            ).fetchone()
            cursor.execute("DELETE FROM meterdesk_import_keys")
        finally:
            cursor.close()
    if found == 0:
        return []
    if found == n and differing == 0:
        return n
    # Some lines are new, or differ from what was recorded: which ones, line by line.
    return _existing_lines(connection, batch)


def _fill_keys(cursor, batch: ColumnBatch) -> None:
    """SQLite: the batch's keys and events in a temporary table, to be joined with the unique index."""
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS meterdesk_import_keys (i INTEGER PRIMARY KEY, customer_id INTEGER, "
        "request_id TEXT, unit_id INTEGER, quantity INTEGER, occurred_at INTEGER)"
    )
    cursor.execute("DELETE FROM meterdesk_import_keys")
    cursor.executemany(
        "INSERT INTO meterdesk_import_keys VALUES (?, ?, ?, ?, ?, ?)",
        zip(range(len(batch.request_ids)), batch.customer_ids, batch.request_ids, batch.unit_ids, batch.quantities, batch.occurred),
    )


def _existing_lines(connection, batch: ColumnBatch) -> list[tuple[int, bool]]:
    """(index, same event) of each line recorded before, line by line."""
    same = "e.unit_id = k.unit_id AND e.quantity = k.quantity AND e.occurred_at = k.occurred_at"
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(
            f"SELECT k.i - 1, {same} FROM {_PG_KEYS}",
            (batch.customer_ids, batch.request_ids, batch.unit_ids, batch.quantities, batch.occurred),
        ).all()
        return [(index, bool(equal)) for index, equal in rows]
    cursor = connection.connection.driver_connection.cursor()
    try:
        _fill_keys(cursor, batch)
        rows = cursor.execute(
            f"SELECT k.i, {same} FROM meterdesk_import_keys k CROSS JOIN usage_entries e "
            "ON e.customer_id = k.customer_id AND e.request_id = k.request_id"
        ).fetchall()
        cursor.execute("DELETE FROM meterdesk_import_keys")
    finally:
        cursor.close()
    return [(index, bool(equal)) for index, equal in rows]


def _conflict(connection, batch: ColumnBatch, index: int, customers, units) -> str:
    """The general path's words for a request id recorded before with a different event."""
    from meterdesk.domain.errors import Conflict
    from meterdesk.store.writer import duplicate_or_conflict

    customer_id, request_id = batch.customer_ids[index], batch.request_ids[index]
    row = connection.exec_driver_sql(
        "SELECT id, customer_id, request_id, unit_id, quantity, occurred_at, charged, period, late FROM usage_entries "
        + ("WHERE customer_id = %s AND request_id = %s" if connection.dialect.name == "postgresql" else "WHERE customer_id = ? AND request_id = ?"),
        (customer_id, request_id),
    ).one()
    unit = units[batch.unit_ids[index]]
    entry = NewEntry(customers[customer_id], unit, decode_quantity(batch.quantities[index], unit.unit.decimals),
                     batch.quantities[index], batch.occurred[index], request_id, None)
    try:
        duplicate_or_conflict(StoredEntry(*row[:8], bool(row[8])), entry)
    except Conflict as error:
        return str(error)
    raise AssertionError("the database called this line a different event; the comparison says it is the same")


def _prepare(writer: EntryWriter, batch: ColumnBatch, fresh, customers, units, period, name: str, days):
    """(count, slices, book_rollup): the rows (customer, unit, quantity, occurred_at, billed_at, period,
    request id, charged) of the fresh lines in file order, in slices priced as they are taken, and what
    books their rollup on the writer — the bookkeeping `prepare_many` does, in bulk."""
    starts, day_names = days
    if isinstance(fresh, range):
        customer_ids, unit_ids, quantities = batch.customer_ids, batch.unit_ids, batch.quantities
        times, request_ids = batch.occurred, batch.request_ids
    else:
        customer_ids = [batch.customer_ids[i] for i in fresh]
        unit_ids = [batch.unit_ids[i] for i in fresh]
        quantities = [batch.quantities[i] for i in fresh]
        times = [batch.occurred[i] for i in fresh]
        request_ids = [batch.request_ids[i] for i in fresh]
    count = len(request_ids)
    prepaid = {customer_id for customer_id in set(customer_ids) if customers[customer_id].prepaid}
    charger = _Charger(writer, prepaid, customer_ids, unit_ids, quantities, times, request_ids, customers, units, period) if prepaid else None

    def chunks() -> Iterator[list[tuple]]:
        """The rows, a slice at a time, each slice's prepaid charges priced just before it is handed on."""
        for start in range(0, count, CHUNK_ROWS):
            stop = min(count, start + CHUNK_ROWS)
            charged: list[int | None] = [None] * (stop - start)
            if charger is not None:
                charger.charge(start, stop, charged)
            yield list(zip(customer_ids[start:stop], unit_ids[start:stop], quantities[start:stop], times[start:stop],
                           times[start:stop], repeat(name, stop - start), request_ids[start:stop], charged))

    def book_rollup() -> None:
        rollup = writer.rollup
        peak_units = {unit_id for unit_id in set(unit_ids) if units[unit_id].unit.aggregation is Aggregation.MAX}
        if count and count >= ARRAY_ROLLUP_ROWS and max(quantities) * count < 1 << 63:  # every sum fits in 64 bits
            _book_rollup_arrays(rollup, customer_ids, unit_ids, quantities, times, name, days, peak_units)
            return
        day_of = map(day_names.__getitem__, map((-1).__add__, map(bisect_right, repeat(starts, count), times)))
        for key, quantity in zip(zip(customer_ids, repeat(name), unit_ids, day_of), quantities):
            counts = rollup.get(key)
            if counts is None:
                counts = rollup[key] = [0, 0, 0, 0, 0, 0]
            counts[0] += quantity
            counts[1] += 1
            if key[2] in peak_units and quantity > counts[5]:
                counts[5] = quantity

    return count, chunks(), book_rollup


ARRAY_ROLLUP_ROWS = 1000  # below this the plain loop is as quick as building the arrays


def _book_rollup_arrays(rollup: dict, customer_ids, unit_ids, quantities, times, name: str, days, peak_units) -> None:
    """`book_rollup`'s sums with numpy: the lines sorted by (customer, unit, day) and added up a group at a
    time in C, so Python touches each (customer, unit, day) once instead of each line (a 250k-line batch
    has about 40k). The caller checks that no sum can leave 64 bits, where numpy would wrap silently."""
    import numpy as np

    starts, day_names = days
    customer = np.array(customer_ids, dtype=np.int64)
    unit = np.array(unit_ids, dtype=np.int64)
    quantity = np.array(quantities, dtype=np.int64)
    day = np.searchsorted(np.array(starts, dtype=np.int64), np.array(times, dtype=np.int64), side="right") - 1
    order = np.lexsort((day, unit, customer))
    customer, unit, quantity, day = customer[order], unit[order], quantity[order], day[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (customer[1:] != customer[:-1]) | (unit[1:] != unit[:-1]) | (day[1:] != day[:-1])
    groups = np.flatnonzero(first)
    totals = np.add.reduceat(quantity, groups).tolist()
    peaks = np.maximum.reduceat(quantity, groups).tolist()
    entries = np.diff(np.append(groups, len(order))).tolist()
    for customer_id, unit_id, day_index, total, lines, peak in zip(
        customer[groups].tolist(), unit[groups].tolist(), day[groups].tolist(), totals, entries, peaks
    ):
        key = (customer_id, name, unit_id, day_names[day_index])
        counts = rollup.get(key)
        if counts is None:
            rollup[key] = [total, lines, 0, 0, 0, peak if unit_id in peak_units else 0]
            continue
        counts[0] += total
        counts[1] += lines
        if unit_id in peak_units and peak > counts[5]:
            counts[5] = peak


class _Charger:
    """Prices each prepaid line's charge in file order through the writer's running charges (the domain's
    one prepaid pricer, `RunningCharge`): price(total after) - price(total before) of its customer's unit in
    the period — with the lookups done once per customer and unit instead of once per line."""

    def __init__(self, writer, prepaid, customer_ids, unit_ids, quantities, times, request_ids, customers, units, period) -> None:
        # Each pair's first line: built from the last line back, each pair's entry ends at its first line
        # (all in C; a loop over the lines took a quarter of a second per million).
        n = len(customer_ids)
        lowest = dict(zip(zip(reversed(customer_ids), reversed(unit_ids)), range(n - 1, -1, -1)))
        first = dict(sorted(((pair, index) for pair, index in lowest.items() if pair[0] in prepaid), key=itemgetter(1)))
        writer.preload([
            NewEntry(customers[customer_id], units[unit_id], None, quantities[index], times[index], request_ids[index], None)
            for (customer_id, unit_id), index in first.items()
        ])
        self.writer, self.prepaid = writer, prepaid
        self.customer_ids, self.unit_ids, self.quantities = customer_ids, unit_ids, quantities
        # Everything read from the database is read now: on PostgreSQL the slices are priced while the
        # connection is busy with the COPY. pair: (running charge, its unit's aggregation)
        self.states: dict[tuple[int, int], tuple] = {
            pair: (writer.running_charge(customers[pair[0]], units[pair[1]], period), units[pair[1]].unit.aggregation)
            for pair in first
        }

    def charge(self, start: int, stop: int, charged: list) -> None:
        prepaid, states = self.prepaid, self.states
        deltas, quantities = self.writer.balance_deltas, self.quantities
        total_sum, total_count = Aggregation.SUM, Aggregation.COUNT
        for index, pair in enumerate(zip(self.customer_ids[start:stop], self.unit_ids[start:stop]), start):
            if pair[0] not in prepaid:
                continue
            running, aggregation = states[pair]
            before = running.total
            if aggregation is total_sum:
                after = before + quantities[index]
            elif aggregation is total_count:
                after = before + 1
            else:
                after = max(before, quantities[index])
            amount_charged = running.move_to(after)
            charged[index - start] = amount_charged
            if amount_charged:
                deltas[pair[0]] += amount_charged


CHUNK_ROWS = 10_000  # rows per slice: PostgreSQL inserts one while the next is priced


PLAIN_COLUMNS = "customer_id, unit_id, quantity, occurred_at, billed_at, period, request_id, charged"


CONSTANT_COLUMNS = "recorded_at, late, kind, corrects_id, source, actor, note"


def _insert(connection, count: int, chunks, now: int, actor: str, meanwhile) -> bool:
    """Insert the rows (PLAIN_COLUMNS) slice by slice, the columns every row of an import shares written
    once in the statement, and call `meanwhile()`; False when a request id turned out to be taken (the
    caller rolls back)."""
    if not count:
        meanwhile()
        return True
    if connection.dialect.name == "postgresql":
        return _copy(connection, chunks, now, actor, meanwhile)
    return _insert_sqlite(connection, count, chunks, now, actor, meanwhile)


def sqlite_insert_statement(now: int, actor: str) -> str:
    """SQLite: the fast lane's INSERT of one row of PLAIN_COLUMNS, the columns every row of an import shares
    written into the statement once (the benchmark's raw floor runs the same statement)."""
    literal = "'" + actor.replace("'", "''") + "'"
    return (
        f"INSERT INTO usage_entries ({PLAIN_COLUMNS}, {CONSTANT_COLUMNS}) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, {int(now)}, FALSE, 'usage', NULL, 'import', {literal}, NULL) "
        "ON CONFLICT (customer_id, request_id) DO NOTHING"
    )


def _insert_sqlite(connection, count: int, chunks, now: int, actor: str, meanwhile) -> bool:
    statement = sqlite_insert_statement(now, actor)
    # The batch's rows are inserted by customer, each customer's in file order (the order they were priced
    # in): both indexes that lead with the customer then take a customer's rows at one place in turn
    # instead of at a thousand places by turns. Inserting 1M priced rows took a sixth less time so.
    rows = [row for rows in chunks for row in rows]
    rows.sort(key=itemgetter(0))
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(statement, rows)
        inserted = cursor.rowcount
    finally:
        cursor.close()
    meanwhile()
    return inserted == count


def _upsert_rollup(connection, rollup: dict) -> None:
    """PostgreSQL: the batch's rollup rows COPYed into a temporary table, then added to usage_daily in one
    statement (passing them as arrays had psycopg quote every element in Python)."""
    if not rollup:
        return
    from meterdesk.store.writer import PEAK_UPDATE, ROLLUP_NAMES, ROLLUP_UPSERT

    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS meterdesk_rollup_batch (customer_id integer, period varchar(7), unit_id integer, "
            "day varchar(10), quantity bigint, entries integer, reversals integer, adjusted_quantity bigint, "
            "adjusted_entries integer, peak bigint) ON COMMIT DELETE ROWS"
        )
        text = "".join(
            f"{c}\t{p}\t{u}\t{d}\t{q}\t{e}\t{r}\t{aq}\t{ae}\t{pk}\n" for (c, p, u, d), (q, e, r, aq, ae, pk) in rollup.items()
        )
        with cursor.copy(f"COPY meterdesk_rollup_batch ({ROLLUP_NAMES}) FROM STDIN") as copy:
            copy.write(text)
        cursor.execute(
            f"INSERT INTO usage_daily ({ROLLUP_NAMES}) SELECT {ROLLUP_NAMES} FROM meterdesk_rollup_batch "
            f"{ROLLUP_UPSERT} greatest({PEAK_UPDATE})"
        )
        cursor.execute("TRUNCATE meterdesk_rollup_batch")


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy(connection, chunks, now: int, actor: str, meanwhile) -> bool:
    """COPY in text format, each line formatted once in Python (request ids are printable: only a
    backslash needs escaping). A thread of psycopg's sends the data while this one runs `meanwhile()`,
    so the server inserts and this process adds up the rollup at the same time."""
    from psycopg.copy import QueuedLibpqWriter
    from psycopg.errors import UniqueViolation

    tail = f"\t{int(now)}\tf\tusage\t\\N\timport\t{_copy_text(actor)}\t\\N\n"
    null = "\\N"
    raw = connection.connection.dbapi_connection
    try:
        with raw.cursor() as cursor:
            statement = f"COPY usage_entries ({PLAIN_COLUMNS}, {CONSTANT_COLUMNS}) FROM STDIN"
            with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
                for rows in chunks:  # the server inserts one slice while the next is priced and formatted
                    escape = _copy_text if any("\\" in row[6] for row in rows) else str
                    copy.write("".join(
                        f"{c}\t{u}\t{q}\t{o}\t{b}\t{p}\t{escape(r)}\t{null if m is None else m}{tail}"
                        for c, u, q, o, b, p, r, m in rows
                    ))
                meanwhile()
    except UniqueViolation:
        return False
    return True
