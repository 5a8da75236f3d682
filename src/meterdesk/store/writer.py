"""The one place ledger entries are written: placement in a period, idempotency, rollups, prepaid charging.

Every path that adds usage entries (recording, importing, correcting) goes through `EntryWriter` inside a
write transaction that already holds the customer's lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
customer row FOR UPDATE). Under that lock the period totals a prepaid charge is priced from cannot move,
and the unique key on (customer, request id) is the backstop that keeps a racing duplicate out.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from meterdesk.domain.errors import Conflict
from meterdesk.domain.periods import Period
from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.pricing import RunningCharge
from meterdesk.domain.units import Aggregation, check_exact_total
from meterdesk.store.codec import decode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import (
    CUSTOMER_COLUMNS,
    CustomerRow,
    PlanVersionRow,
    UnitRow,
    EventContext,
    closed_periods,
    event_context,
    fetch,
    plan_version_by_id,
    run,
    run_many,
    last_closed_period,
    period_quantity,
    period_quantities,
    plan_version_in_force,
    subscriptions_of_many,
)
from meterdesk.store.schema import customer_balances, usage_daily, usage_entries

LOOKUP_CHUNK = 2000
MAX_REMEMBERED_PRICES = 100_000


class EntryValues(NamedTuple):
    """One usage_entries row as the writer inserts it (a tuple, so drivers take it as it is)."""

    customer_id: int
    unit_id: int
    quantity: int
    occurred_at: int
    recorded_at: int
    billed_at: int
    period: str
    late: bool
    request_id: str
    kind: str
    corrects_id: int | None
    source: str
    actor: str
    note: str | None
    charged: int | None


ENTRY_COLUMNS = EntryValues._fields


def dialect_insert(connection: Connection, table):
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """What the idempotency check compares a retry against."""

    id: int
    customer_id: int
    request_id: str
    unit_id: int
    quantity: int
    occurred_at: int
    charged: int | None
    period: str
    late: bool


class NewEntry(NamedTuple):
    """An entry to write, validated. A named tuple rather than a frozen dataclass: an import makes one per
    line, and a frozen dataclass takes several times longer to build."""

    customer: CustomerRow
    unit: UnitRow
    amount: Decimal
    quantity: int  # scaled by the unit's decimals
    occurred_at: int | None  # None: "now", and a retry matches whatever was stored
    request_id: str
    note: str | None
    kind: str = "usage"
    corrects_id: int | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    period: Period
    late: bool
    billed_at: int


def mismatch(stored: StoredEntry, entry: NewEntry) -> str | None:
    """Why a retry with this request id is not the same request, or None when it is."""
    if stored.unit_id != entry.unit.id:
        return "a different unit"
    if stored.quantity != entry.quantity:
        return "a different amount"
    if entry.occurred_at is not None and stored.occurred_at != entry.occurred_at:
        return "a different occurred_at"
    return None


def duplicate_or_conflict(stored: StoredEntry, entry: NewEntry) -> None:
    """Nothing when `entry` retries the stored one; an idempotency Conflict naming the difference otherwise."""
    reason = mismatch(stored, entry)
    if reason:
        raise Conflict(
            f"request_id: {entry.request_id!r} was already recorded for customer {entry.customer.external_id!r} "
            f"as entry {stored.id} with {reason}; use a new request id for a new event"
        )


class EntryWriter:
    """Writes entries inside one write transaction; caches what it learns for the transaction's length."""

    def __init__(self, connection: Connection, ledger: Ledger, now_us: int, source: str, actor: str) -> None:
        self.connection = connection
        self.ledger = ledger
        self.timeline = ledger.timeline
        self.now_us = now_us
        self.source = source
        self.actor = actor
        self._last_closed: dict[int, str | None] = {}
        self._closed: dict[int, set[str]] = {}
        self._charges: dict[tuple[int, str, int], object] = {}
        self._subscriptions: dict[int, list] = {}
        self._versions: dict[tuple[int, int], PlanVersionRow] = {}
        # The rounded price of each running total, kept by the ledger between transactions: the next event
        # of the customer and unit starts from it (a price is a pure function of the charge and quantity).
        self._prices: dict[tuple[int, int, str], tuple[int, int, object]] = ledger.cache.setdefault("prices", {})
        self._totals: dict[tuple[int, int, str], Decimal] = {}  # period totals as read, before any entry
        self._running: dict[tuple[int, int, str], RunningCharge] = {}  # prepaid totals as entries move them
        # The daily rollup rows the prepared entries add, (customer, period, unit, day) -> counts, applied by `flush`.
        self.rollup: dict[tuple[int, str, int, str], list[int]] = {}
        # Micro-units each customer's balance is charged by the prepared entries, applied by `flush`.
        self.balance_deltas: dict[int, int] = defaultdict(int)
        self._peaks_to_recount: set[tuple[int, str, int, str, int, int]] = set()
        self._range_totals: dict[tuple[int, int, str], int] = {}  # (customer, unit, period) -> scaled sum, see out_of_range

    # -- locking and lookups --------------------------------------------------------------------
    def begin_event(self, external_id: str, unit: UnitRow | None, occurred_at: int) -> EventContext:
        """Lock the customer of one event (PostgreSQL: FOR UPDATE) and learn in the same query what placing
        and pricing it needs — its last closed period, the plan version and the unit's total in the
        event's period — so that `prepare` asks the database nothing more in the common case."""
        period = self.timeline.period_of(occurred_at)
        start, _ = self.timeline.bounds(period)
        found = event_context(
            self.connection, external_id, unit, period, start, lock=self.connection.dialect.name == "postgresql"
        )
        customer = found.customer
        self._last_closed[customer.id] = found.last_closed
        if unit is not None and customer.prepaid and found.subscription is not None:
            name = self.timeline.name(period)
            if found.version_id is not None:
                version = plan_version_by_id(self.connection, found.version_id, self.ledger.cache)
                self._versions[(found.subscription.plan_id, start)] = version
                self._charges[(customer.id, name, unit.id)] = version.plan.charge_for(unit.code)
            aggregation = unit.unit.aggregation
            self._totals[(customer.id, unit.id, name)] = (
                Decimal(found.total) if aggregation is Aggregation.COUNT else decode_quantity(found.total, unit.unit.decimals)
            )
        return found

    def lock_customers_by_external_id(self, external_ids: Iterable[str]) -> dict[str, CustomerRow]:
        """The customers of these external ids, locked (PostgreSQL: FOR UPDATE, in id order, so writers of a
        batch never deadlock; SQLite already holds the write lock). Unknown ids are left out."""
        wanted = sorted(set(external_ids))
        if not wanted:
            return {}
        if self.connection.dialect.name == "postgresql":
            rows = fetch(self.connection, f"SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.external_id = ANY(?) ORDER BY c.id FOR UPDATE", (wanted,))
        else:
            rows = []
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                chunk = wanted[start : start + LOOKUP_CHUNK]
                rows += fetch(self.connection, f"SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.external_id IN ({', '.join('?' * len(chunk))})", chunk)
        return {row[1]: CustomerRow(*row[:8]) for row in rows}

    def balances_of(self, customer_ids: Iterable[int]) -> dict[int, int]:
        """The balances (micro-units) of these customers as they stand in this transaction."""
        ids = sorted(set(customer_ids))
        found: dict[int, int] = {}
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            found.update(fetch(self.connection, f"SELECT customer_id, balance FROM customer_balances WHERE customer_id IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    def lock_customers(self, customer_ids: Iterable[int]) -> None:
        """PostgreSQL: lock customers in id order (no deadlocks); SQLite already holds the write lock."""
        ids = sorted(set(customer_ids))
        if ids and self.connection.dialect.name == "postgresql":
            fetch(self.connection, "SELECT id FROM customers WHERE id = ANY(?) ORDER BY id FOR UPDATE", (ids,))

    def existing(self, pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], StoredEntry]:
        """The stored entries for (customer id, request id) pairs, found through the unique index."""
        pairs = list(set(pairs))
        if not pairs:
            return {}
        columns = (
            "e.id, e.customer_id, e.request_id, e.unit_id, e.quantity, e.occurred_at, e.charged, e.period, e.late"
        )
        if self.connection.dialect.name == "postgresql":
            rows = self.connection.exec_driver_sql(
                f"SELECT {columns} FROM unnest(%s::bigint[], %s::text[]) AS k(customer_id, request_id) "
                "JOIN usage_entries e ON e.customer_id = k.customer_id AND e.request_id = k.request_id",
                ([c for c, _ in pairs], [r for _, r in pairs]),
            )
        else:
            # A row-value IN list is not matched against the index by SQLite; a join with a temp table is.
            self.connection.exec_driver_sql(
                "CREATE TEMP TABLE IF NOT EXISTS meterdesk_batch_keys (customer_id INTEGER, request_id TEXT)"
            )
            self.connection.exec_driver_sql("DELETE FROM meterdesk_batch_keys")
            self.connection.exec_driver_sql("INSERT INTO meterdesk_batch_keys VALUES (?, ?)", pairs)
            rows = self.connection.exec_driver_sql(
                f"SELECT {columns} FROM meterdesk_batch_keys k CROSS JOIN usage_entries e "
                "ON e.customer_id = k.customer_id AND e.request_id = k.request_id"
            )
        return {(row[1], row[2]): StoredEntry(*row[:8], bool(row[8])) for row in rows}

    def placement(self, customer: CustomerRow, occurred_at: int) -> Placement:
        """The period an entry is billed in: its own while open, else the customer's next open one (late)."""
        period = self.timeline.period_of(occurred_at)
        if customer.id not in self._last_closed:
            self._last_closed[customer.id] = last_closed_period(self.connection, customer.id)
        last_closed = self._last_closed[customer.id]
        if last_closed is None or str(period) > last_closed:
            return Placement(period, False, occurred_at)
        if customer.id not in self._closed:
            self._closed[customer.id] = closed_periods(self.connection, customer.id)
        closed = self._closed[customer.id]
        billed = period
        while str(billed) in closed:
            billed = billed.next()
        if billed == period:
            return Placement(period, False, occurred_at)
        return Placement(billed, True, self.timeline.clamp(self.now_us, billed))

    def preload(self, entries: list[NewEntry]) -> None:
        """Fetch in a few queries what a batch of entries will ask about customer by customer: the last
        closed period of each customer, and for prepaid customers their subscriptions and the period
        totals their charges are priced from."""
        customer_ids: set[int] = set()
        prepaid: dict[tuple[int, int], UnitRow] = {}
        periods: set[str] = set()
        timeline, now = self.timeline, self.now_us
        for entry in entries:
            customer = entry.customer
            customer_ids.add(customer.id)
            if customer.prepaid:
                prepaid[(customer.id, entry.unit.id)] = entry.unit
                periods.add(timeline.name(timeline.period_of(entry.occurred_at if entry.occurred_at is not None else now)))
        ids = sorted(customer_ids)
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            self._last_closed.update(dict.fromkeys(chunk))
            self._last_closed.update(
                fetch(
                    self.connection,
                    f"SELECT customer_id, max(period) FROM invoices WHERE customer_id IN ({', '.join('?' * len(chunk))}) GROUP BY customer_id",
                    chunk,
                )
            )
        if not prepaid:
            return
        prepaid_ids = sorted({customer_id for customer_id, _ in prepaid})
        self._subscriptions.update(dict.fromkeys(prepaid_ids, []))
        self._subscriptions.update(subscriptions_of_many(self.connection, prepaid_ids))
        names = sorted(periods)
        found: dict[tuple[int, int, str], tuple[int, int, int]] = {}
        for start in range(0, len(prepaid_ids), LOOKUP_CHUNK):
            chunk = prepaid_ids[start : start + LOOKUP_CHUNK]
            for customer_id, unit_id, period, quantity, count, peak in fetch(
                self.connection,
                "SELECT customer_id, unit_id, period, sum(quantity), sum(entries), max(peak) FROM usage_daily "
                f"WHERE period IN ({', '.join('?' * len(names))}) AND customer_id IN ({', '.join('?' * len(chunk))}) "
                "GROUP BY customer_id, unit_id, period",
                (*names, *chunk),
            ):
                found[(customer_id, unit_id, period)] = (int(quantity), int(count), int(peak))
        totals = self._totals
        for (customer_id, unit_id), unit in prepaid.items():
            aggregation = unit.unit.aggregation
            for period in names:
                key = (customer_id, unit_id, period)
                if key not in totals:
                    quantity, count, peak = found.get(key, (0, 0, 0))
                    if aggregation is Aggregation.COUNT:
                        totals[key] = Decimal(count)
                    else:
                        totals[key] = decode_quantity(peak if aggregation is Aggregation.MAX else quantity, unit.unit.decimals)

    def _charge(self, customer: CustomerRow, period: Period, unit: UnitRow):
        key = (customer.id, self.timeline.name(period), unit.id)
        if key not in self._charges:
            if customer.id not in self._subscriptions:
                self._subscriptions[customer.id] = subscriptions_of_many(self.connection, [customer.id]).get(customer.id, [])
            overlapping = [s for s in self._subscriptions[customer.id] if s.overlaps(period)]
            charge = None
            if overlapping:
                start, _ = self.timeline.bounds(period)
                # Plans change between transactions, never inside one: one lookup per plan and period.
                version_key = (overlapping[-1].plan_id, start)
                version = self._versions.get(version_key)
                if version is None:
                    version = self._versions[version_key] = plan_version_in_force(
                        self.connection, overlapping[-1].plan_id, start, self.ledger.cache
                    )
                charge = version.plan.charge_for(unit.code)
            self._charges[key] = charge
        return self._charges[key]

    def _total(self, customer: CustomerRow, unit: UnitRow, period: Period) -> Decimal:
        key = (customer.id, unit.id, self.timeline.name(period))
        running = self._running.get(key)
        if running is not None:
            return Decimal(running.total).scaleb(-running.scale) if running.scale else Decimal(running.total)
        if key not in self._totals:
            self._totals[key] = period_quantity(self.connection, customer.id, unit, period)
        return self._totals[key]

    # -- prepaid charging ----------------------------------------------------------------------
    def running_charge(self, customer: CustomerRow, unit: UnitRow, period: Period) -> RunningCharge:
        """The domain's prepaid pricer for a customer's unit in a period, at its total so far in this
        transaction; every entry of the transaction moves the same one."""
        key = (customer.id, unit.id, self.timeline.name(period))
        running = self._running.get(key)
        if running is None:
            charge = self._charge(customer, period, unit)
            scale = 0 if unit.unit.aggregation is Aggregation.COUNT else unit.unit.decimals
            total = int(self._total(customer, unit, period).scaleb(scale))
            known = self._prices.get(key)
            price = known[1] if known and known[0] == total and known[2] is charge else None
            running = self._running[key] = RunningCharge(charge, scale, total, price)
        return running

    def prepaid_charge(self, customer: CustomerRow, unit: UnitRow, period: Period, after: Decimal) -> int:
        """price(after) - price(before) of the unit's charge, in micro-units; moves the running total."""
        running = self.running_charge(customer, unit, period)
        return running.move_to(int(after.scaleb(running.scale)))

    def _remember_prices(self) -> None:
        """Leave each running total's price where the next transaction looks for it."""
        prices = self._prices
        if len(prices) + len(self._running) >= MAX_REMEMBERED_PRICES:
            prices.clear()
        for key, running in self._running.items():
            if running.charge is not None:
                prices[key] = (running.total, running.price, running.charge)

    def total_after(self, entry: NewEntry, period: Period) -> Decimal:
        before = self._total(entry.customer, entry.unit, period)
        aggregation = entry.unit.unit.aggregation
        if aggregation is Aggregation.COUNT:
            return before + (1 if entry.kind == "usage" else -1)
        if aggregation is Aggregation.MAX:
            if entry.kind == "usage":
                return max(before, entry.amount)
            # The reversed original no longer counts: the peak of what remains.
            return self._max_without(entry.customer, entry.unit, period, entry.corrects_id)
        return before + (entry.amount if entry.kind == "usage" else -entry.amount)

    def _max_without(self, customer: CustomerRow, unit: UnitRow, period: Period, excluded_id: int | None) -> Decimal:
        query = (
            select(usage_entries.c.quantity)
            .where(
                usage_entries.c.customer_id == customer.id,
                usage_entries.c.period == str(period),
                usage_entries.c.unit_id == unit.id,
                usage_entries.c.kind == "usage",
                usage_entries.c.id != (excluded_id or 0),
            )
        )
        reversed_ids = set(
            self.connection.execute(
                select(usage_entries.c.corrects_id).where(
                    usage_entries.c.customer_id == customer.id,
                    usage_entries.c.unit_id == unit.id,
                    usage_entries.c.kind == "reversal",
                )
            ).scalars()
        )
        rows = self.connection.execute(query.add_columns(usage_entries.c.id)).all()
        values = [row.quantity for row in rows if row.id not in reversed_ids]
        return decode_quantity(max(values, default=0), unit.unit.decimals)

    # -- writing -------------------------------------------------------------------------------
    def prepare(self, entry: NewEntry) -> EntryValues:
        """Place, price and turn one entry into a row; bookkeeping is applied by `flush`."""
        return EntryValues._make(self.prepare_many((entry,))[0])

    def prepare_many(self, entries: Iterable[NewEntry]) -> list[tuple]:
        """`prepare` for each entry, in order (prepaid charges depend on it), as plain tuples in
        ENTRY_COLUMNS order.

        An import spends most of its Python time here, so the common case — usage in an open period —
        is inlined: the period's bounds and local days are looked up once per period, not per entry.
        """
        rows: list[tuple] = []
        append = rows.append
        now, source, actor = self.now_us, self.source, self.actor
        timeline, last_closed, rollup, deltas = self.timeline, self._last_closed, self.rollup, self.balance_deltas
        peak_unit = Aggregation.MAX
        span_start = span_end = 0
        period = name = None
        starts: tuple[int, ...] = ()
        days: tuple[str, ...] = ()
        for entry in entries:
            customer, unit, _, quantity, occurred, request_id, note, kind, corrects_id = entry
            customer_id, unit_id = customer.id, unit.id
            if occurred is None:
                occurred = now
            if not span_start <= occurred < span_end:
                period = timeline.period_of(occurred)
                span_start, span_end = timeline.bounds(period)
                name = timeline.name(period)
                starts, days = timeline.days(period)
            closed_until = last_closed[customer_id] if customer_id in last_closed else self._last_closed_of(customer_id)
            if closed_until is None or name > closed_until:
                billed_period, billed_name, late, billed_at = period, name, False, occurred
                day = days[bisect_right(starts, occurred) - 1]
            else:
                placement = self.placement(customer, occurred)
                billed_period, late, billed_at = placement.period, placement.late, placement.billed_at
                billed_name = timeline.name(billed_period)
                day = timeline.day_of(billed_at, billed_period)
            charged = None
            if customer.prepaid:
                charged = self.prepaid_charge(customer, unit, billed_period, self.total_after(entry, billed_period))
                if charged:
                    deltas[customer_id] += charged
            usage = kind == "usage"
            if not usage:
                quantity = -quantity
            key = (customer_id, billed_name, unit_id, day)
            counts = rollup.get(key)
            if counts is None:
                counts = rollup[key] = [0, 0, 0, 0, 0, 0]
            counts[0] += quantity
            counts[1] += 1 if usage else -1
            if not usage:
                counts[2] += 1
            if late or corrects_id is not None:
                counts[3] += quantity
                counts[4] += 1 if usage else -1
            if unit.unit.aggregation is peak_unit:
                if usage:
                    counts[5] = max(counts[5], quantity)
                else:
                    self._peaks_to_recount.add(self._day_of_entry(corrects_id))
            append((customer_id, unit_id, quantity, occurred, now, billed_at, billed_name, late, request_id, kind,
                    corrects_id, source, actor, note, charged))
        return rows

    def _last_closed_of(self, customer_id: int) -> str | None:
        found = self._last_closed[customer_id] = last_closed_period(self.connection, customer_id)
        return found

    def _day_of_entry(self, entry_id: int | None) -> tuple[int, str, int, str, int, int]:
        """(customer, period, unit, day, day start, day end) of the rollup row an entry was counted in."""
        customer_id, period_name, unit_id, billed_at = self.connection.execute(
            select(usage_entries.c.customer_id, usage_entries.c.period, usage_entries.c.unit_id, usage_entries.c.billed_at)
            .where(usage_entries.c.id == entry_id)
        ).one()
        starts, days = self.timeline.days(Period.parse(period_name))
        index = bisect_right(starts, billed_at) - 1
        _, end = self.timeline.bounds(Period.parse(period_name))
        day_end = starts[index + 1] if index + 1 < len(starts) else end
        return customer_id, period_name, unit_id, days[index], starts[index], day_end

    def insert_one(self, row: EntryValues) -> int | None:
        """Insert one entry; None when its request id is already taken (a racing duplicate)."""
        found = fetch(self.connection, INSERT_ONE, row)
        return found[0][0] if found else None

    def insert_many(self, rows: list[EntryValues], *, in_order: bool = False) -> None:
        """Bulk insert of entries already checked under the lock: COPY on PostgreSQL, executemany on SQLite.

        Going straight to the driver skips SQLAlchemy's per-row parameter processing, the largest cost of
        an import after parsing. A duplicate that slipped in anyway still hits the unique key and fails
        the whole batch, which the caller retries. `in_order`: the ids follow the rows' order (a batch of
        the usage API, whose entries are numbered as they were sent) instead of the faster index order.
        """
        if not rows:
            return
        if not in_order:
            rows.sort(key=_customer_and_request_id)  # see insert_new
        names = ", ".join(ENTRY_COLUMNS)
        if self.connection.dialect.name == "postgresql":
            self._copy(rows)
        else:
            run_many(self.connection, f"INSERT INTO usage_entries ({names}) VALUES ({', '.join('?' * len(ENTRY_COLUMNS))})", rows)

    def _copy(self, rows: list[tuple]) -> None:
        raw = self.connection.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY usage_entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def insert_new(self, rows: list[tuple]) -> bool:
        """Bulk insert of entries believed new, the unique key on (customer, request id) the only check;
        False when it found one taken (nothing is usable then: the caller rolls the transaction back).

        Rows go in ordered by customer and request id: both customer-keyed indexes are then written
        page by page instead of at random, the largest part of an insert's cost. They all share one
        recorded_at, so their order among themselves says nothing.
        """
        if not rows:
            return True
        rows.sort(key=_customer_and_request_id)
        names = ", ".join(ENTRY_COLUMNS)
        if self.connection.dialect.name == "postgresql":
            from psycopg.errors import UniqueViolation

            try:
                self._copy(rows)
            except UniqueViolation:
                return False
            return True
        cursor = self.connection.connection.driver_connection.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO usage_entries ({names}) VALUES ({', '.join('?' * len(ENTRY_COLUMNS))}) "
                "ON CONFLICT (customer_id, request_id) DO NOTHING",
                rows,
            )
            return cursor.rowcount == len(rows)
        finally:
            cursor.close()

    def flush(self, *, balances: bool = True) -> dict[int, int]:
        """Apply the rollup and balance changes of the prepared rows; returns the new balances (micro)
        of the customers charged, unless `balances` is False (a bulk import does not need them)."""
        postgres = self.connection.dialect.name == "postgresql"
        if self.rollup:
            rows = [(*key, *counts) for key, counts in self.rollup.items()]
            if postgres:
                # One statement for the whole batch; its keys are distinct, as ON CONFLICT DO UPDATE needs.
                self.connection.exec_driver_sql(
                    f"INSERT INTO usage_daily ({ROLLUP_NAMES}) SELECT * FROM unnest("
                    "%s::integer[], %s::varchar[], %s::integer[], %s::varchar[], %s::bigint[], %s::integer[], "
                    f"%s::integer[], %s::bigint[], %s::integer[], %s::bigint[]) {ROLLUP_UPSERT} greatest({PEAK_UPDATE})",
                    tuple(list(column) for column in zip(*rows)),
                )
            else:
                statement = f"INSERT INTO usage_daily ({ROLLUP_NAMES}) VALUES ({', '.join('?' * 10)}) {ROLLUP_UPSERT} max({PEAK_UPDATE})"
                if len(rows) == 1:
                    run(self.connection, statement, rows[0])
                else:
                    run_many(self.connection, statement, rows)
            self.rollup.clear()
        for recount in sorted(self._peaks_to_recount):
            self._recount_peak(*recount)
        self._peaks_to_recount.clear()
        self._remember_prices()
        found: dict[int, int] = {}
        deltas = sorted(self.balance_deltas.items())
        self.balance_deltas.clear()
        if not deltas:
            return found
        change = "UPDATE customer_balances SET charged = charged + ?, balance = balance - ? WHERE customer_id = ?"
        if len(deltas) == 1 and balances:
            customer_id, delta = deltas[0]
            found[customer_id] = fetch(self.connection, change + " RETURNING balance", (delta, delta, customer_id))[0][0]
            return found
        run_many(self.connection, change, [(delta, delta, customer_id) for customer_id, delta in deltas])
        if balances:
            found.update(
                self.connection.execute(
                    select(customer_balances.c.customer_id, customer_balances.c.balance).where(
                        customer_balances.c.customer_id.in_([customer_id for customer_id, _ in deltas])
                    )
                ).all()
            )
        return found

    def _recount_peak(self, customer_id: int, period_name: str, unit_id: int, day: str, start: int, end: int) -> None:
        """A reversal took an entry out of a `max` unit's day: its peak is what still counts that day."""
        original, reversal = usage_entries.alias("original"), usage_entries.alias("reversal")
        peak = select(func.coalesce(func.max(original.c.quantity), 0)).where(
            original.c.customer_id == customer_id,
            original.c.period == period_name,
            original.c.unit_id == unit_id,
            original.c.billed_at >= start,
            original.c.billed_at < end,
            original.c.kind == "usage",
            ~select(reversal.c.id).where(reversal.c.corrects_id == original.c.id, reversal.c.kind == "reversal").exists(),
        ).scalar_subquery()
        self.connection.execute(
            usage_daily.update()
            .where(
                usage_daily.c.period == period_name,
                usage_daily.c.customer_id == customer_id,
                usage_daily.c.unit_id == unit_id,
                usage_daily.c.day == day,
            )
            .values(peak=peak)
        )

    # -- exact range (SPEC 2 "Exact range") ---------------------------------------------------------
    def out_of_range(self, entries: Iterable[NewEntry]) -> list[InvalidInput | None]:
        """For each entry in order: None when its billed period's total of scaled quantities (customer and
        unit; the rollup's day totals are parts of it) still fits the exact range after it, else the error.
        A refused entry does not count for the ones after it, so the caller writes exactly the others.
        One query for all the totals not known yet in this transaction."""
        entries = list(entries)
        keys = []
        timeline, now = self.timeline, self.now_us
        for entry in entries:
            occurred = entry.occurred_at if entry.occurred_at is not None else now
            keys.append((entry.customer.id, entry.unit.id, timeline.name(self.placement(entry.customer, occurred).period)))
        totals = self._range_totals
        missing = set(keys).difference(totals)
        if missing:
            found = period_quantities(self.connection, missing)
            totals.update((key, found.get(key, 0)) for key in missing)
        errors: list[InvalidInput | None] = []
        for entry, key in zip(entries, keys):
            after = totals[key] + (entry.quantity if entry.kind == "usage" else -entry.quantity)
            try:
                check_exact_total(entry.unit.unit, after)
            except InvalidInput as error:
                errors.append(error)
                continue
            totals[key] = after
            errors.append(None)
        return errors

    def check_range(self, entries: Iterable[NewEntry]) -> None:
        """InvalidInput when any of the entries would leave the exact range (see `out_of_range`)."""
        for error in self.out_of_range(entries):
            if error is not None:
                raise error

    def balance(self, customer_id: int) -> int:
        return self.connection.execute(
            select(customer_balances.c.balance).where(customer_balances.c.customer_id == customer_id)
        ).scalar_one()


def _customer_and_request_id(row: tuple) -> tuple[int, str]:
    return row[0], row[8]


INSERT_ONE = (
    f"INSERT INTO usage_entries ({', '.join(ENTRY_COLUMNS)}) VALUES ({', '.join('?' * len(ENTRY_COLUMNS))}) "
    "ON CONFLICT (customer_id, request_id) DO NOTHING RETURNING id"
)
ROLLUP_NAMES = "customer_id, period, unit_id, day, quantity, entries, reversals, adjusted_quantity, adjusted_entries, peak"
# Followed by the dialect's two-argument max (SQLite max, PostgreSQL greatest) of PEAK_UPDATE.
ROLLUP_UPSERT = (
    "ON CONFLICT (period, customer_id, unit_id, day) DO UPDATE SET "
    "quantity = usage_daily.quantity + excluded.quantity, entries = usage_daily.entries + excluded.entries, "
    "reversals = usage_daily.reversals + excluded.reversals, "
    "adjusted_quantity = usage_daily.adjusted_quantity + excluded.adjusted_quantity, "
    "adjusted_entries = usage_daily.adjusted_entries + excluded.adjusted_entries, peak ="
)
PEAK_UPDATE = "usage_daily.peak, excluded.peak"


def over_limit(customer: CustomerRow, balance: int) -> bool:
    return balance < -customer.credit_limit


def refusals(ledger: Ledger) -> tuple[type[BaseException], ...]:
    """The errors by which the database refuses rows (a unique key taken by a racing writer, a value out of a
    column's range), as SQLAlchemy and, on the writer's driver-level statements, the driver raise them."""
    from sqlalchemy.exc import DataError, IntegrityError

    dbapi = ledger.engine.dialect.loaded_dbapi
    return (IntegrityError, DataError, dbapi.IntegrityError, dbapi.DataError)
