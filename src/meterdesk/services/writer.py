"""The one place ledger entries are written: placement in a period, idempotency, rollups, prepaid charging.

Every path that adds usage entries (recording, importing, correcting) goes through `EntryWriter` inside a
write transaction that already holds the customer's lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
customer row FOR UPDATE). Under that lock the period totals a prepaid charge is priced from cannot move,
and the unique key on (customer, request id) is the backstop that keeps a racing duplicate out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from meterdesk.domain.errors import Conflict
from meterdesk.domain.periods import Period
from meterdesk.domain.pricing import incremental_charge
from meterdesk.domain.units import Aggregation
from meterdesk.store.codec import decode_quantity, encode_money
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import (
    CustomerRow,
    UnitRow,
    closed_periods,
    last_closed_period,
    period_quantity,
    plan_for_period,
)
from meterdesk.store.schema import customer_balances, customers, usage_daily, usage_entries
from meterdesk.services.timeline import Timeline

LOOKUP_CHUNK = 2000


def timeline_of(ledger: Ledger) -> Timeline:
    timeline = ledger.cache.get("timeline")
    if timeline is None:
        timeline = ledger.cache["timeline"] = Timeline(ledger.timezone)
    return timeline


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


@dataclass(frozen=True, slots=True)
class NewEntry:
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


class EntryWriter:
    """Writes entries inside one write transaction; caches what it learns for the transaction's length."""

    def __init__(self, connection: Connection, ledger: Ledger, now_us: int, source: str, actor: str) -> None:
        self.connection = connection
        self.ledger = ledger
        self.timeline = timeline_of(ledger)
        self.now_us = now_us
        self.source = source
        self.actor = actor
        self._last_closed: dict[int, str | None] = {}
        self._closed: dict[int, set[str]] = {}
        self._charges: dict[tuple[int, str, int], object] = {}
        self._totals: dict[tuple[int, int, str], Decimal] = {}
        self._rollup: dict[tuple[int, str, int, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        self._balance_deltas: dict[int, int] = defaultdict(int)

    # -- locking and lookups --------------------------------------------------------------------
    def lock_customers(self, customer_ids: Iterable[int]) -> None:
        """PostgreSQL: lock customers in id order (no deadlocks); SQLite already holds the write lock."""
        ids = sorted(set(customer_ids))
        if ids and self.connection.dialect.name == "postgresql":
            for start in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[start : start + LOOKUP_CHUNK]
                self.connection.execute(
                    select(customers.c.id).where(customers.c.id.in_(chunk)).order_by(customers.c.id).with_for_update()
                ).all()

    def existing(self, pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], StoredEntry]:
        pairs = list(set(pairs))
        found: dict[tuple[int, str], StoredEntry] = {}
        columns = (
            usage_entries.c.id,
            usage_entries.c.customer_id,
            usage_entries.c.request_id,
            usage_entries.c.unit_id,
            usage_entries.c.quantity,
            usage_entries.c.occurred_at,
            usage_entries.c.charged,
            usage_entries.c.period,
            usage_entries.c.late,
        )
        for start in range(0, len(pairs), LOOKUP_CHUNK):
            chunk = pairs[start : start + LOOKUP_CHUNK]
            if len(chunk) == 1:
                condition = (usage_entries.c.customer_id == chunk[0][0]) & (usage_entries.c.request_id == chunk[0][1])
            else:
                condition = tuple_(usage_entries.c.customer_id, usage_entries.c.request_id).in_(chunk)
            for row in self.connection.execute(select(*columns).where(condition)):
                found[(row.customer_id, row.request_id)] = StoredEntry(*row)
        return found

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

    def _charge(self, customer: CustomerRow, period: Period, unit: UnitRow):
        key = (customer.id, str(period), unit.id)
        if key not in self._charges:
            start, _ = self.timeline.bounds(period)
            _, version = plan_for_period(self.connection, customer.id, period, start, self.ledger.cache)
            self._charges[key] = version.plan.charge_for(unit.code) if version else None
        return self._charges[key]

    def _total(self, customer: CustomerRow, unit: UnitRow, period: Period) -> Decimal:
        key = (customer.id, unit.id, str(period))
        if key not in self._totals:
            self._totals[key] = period_quantity(self.connection, customer.id, unit, period)
        return self._totals[key]

    # -- prepaid charging ----------------------------------------------------------------------
    def prepaid_charge(self, customer: CustomerRow, unit: UnitRow, period: Period, after: Decimal) -> int:
        """price(after) - price(before) of the unit's charge, in micro-units; moves the running total."""
        before = self._total(customer, unit, period)
        self._totals[(customer.id, unit.id, str(period))] = after
        charge = self._charge(customer, period, unit)
        if charge is None:
            return 0
        return encode_money(incremental_charge(charge, before, after))

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
    def row_for(self, entry: NewEntry, placement: Placement, charged: int | None) -> dict:
        occurred_at = entry.occurred_at if entry.occurred_at is not None else self.now_us
        billed_at = placement.billed_at
        sign = 1 if entry.kind == "usage" else -1
        day = self.timeline.day_of(billed_at, placement.period)
        counts = self._rollup[(entry.customer.id, str(placement.period), entry.unit.id, day)]
        counts[0] += sign * entry.quantity
        counts[1] += sign
        counts[2] += entry.kind == "reversal"
        if placement.late or entry.corrects_id is not None:
            counts[3] += sign * entry.quantity
            counts[4] += sign
        if charged:
            self._balance_deltas[entry.customer.id] += charged
        return {
            "customer_id": entry.customer.id,
            "unit_id": entry.unit.id,
            "quantity": sign * entry.quantity,
            "occurred_at": occurred_at,
            "recorded_at": self.now_us,
            "billed_at": billed_at,
            "period": str(placement.period),
            "late": placement.late,
            "request_id": entry.request_id,
            "kind": entry.kind,
            "corrects_id": entry.corrects_id,
            "source": self.source,
            "actor": self.actor,
            "note": entry.note,
            "charged": charged,
        }

    def prepare(self, entry: NewEntry) -> dict:
        """Place, price and turn one entry into a row; bookkeeping is applied by `flush`."""
        placement = self.placement(entry.customer, entry.occurred_at if entry.occurred_at is not None else self.now_us)
        charged = None
        if entry.customer.prepaid:
            charged = self.prepaid_charge(entry.customer, entry.unit, placement.period, self.total_after(entry, placement.period))
        return self.row_for(entry, placement, charged)

    def insert_one(self, row: dict) -> int | None:
        """Insert one entry; None when its request id is already taken (a racing duplicate)."""
        statement = (
            dialect_insert(self.connection, usage_entries)
            .values(row)
            .on_conflict_do_nothing(index_elements=["customer_id", "request_id"])
            .returning(usage_entries.c.id)
        )
        return self.connection.execute(statement).scalar()

    def insert_many(self, rows: list[dict]) -> None:
        if not rows:
            return
        result = self.connection.execute(usage_entries.insert(), rows)
        if result.rowcount not in (-1, len(rows)):
            raise Conflict("the ledger changed while importing; run the import again (nothing was double counted)")

    def flush(self) -> dict[int, int]:
        """Apply the rollup and balance changes of the prepared rows; returns new balances (micro)."""
        if self._rollup:
            statement = dialect_insert(self.connection, usage_daily)
            statement = statement.on_conflict_do_update(
                index_elements=["customer_id", "period", "unit_id", "day"],
                set_={
                    "quantity": usage_daily.c.quantity + statement.excluded.quantity,
                    "entries": usage_daily.c.entries + statement.excluded.entries,
                    "reversals": usage_daily.c.reversals + statement.excluded.reversals,
                    "adjusted_quantity": usage_daily.c.adjusted_quantity + statement.excluded.adjusted_quantity,
                    "adjusted_entries": usage_daily.c.adjusted_entries + statement.excluded.adjusted_entries,
                },
            )
            self.connection.execute(
                statement,
                [
                    {
                        "customer_id": c, "period": p, "unit_id": u, "day": d, "quantity": q, "entries": n,
                        "reversals": r, "adjusted_quantity": aq, "adjusted_entries": an,
                    }
                    for (c, p, u, d), (q, n, r, aq, an) in self._rollup.items()
                ],
            )
            self._rollup.clear()
        balances: dict[int, int] = {}
        for customer_id, delta in self._balance_deltas.items():
            balances[customer_id] = self.connection.execute(
                update(customer_balances)
                .where(customer_balances.c.customer_id == customer_id)
                .values(
                    charged=customer_balances.c.charged + delta,
                    balance=customer_balances.c.balance - delta,
                )
                .returning(customer_balances.c.balance)
            ).scalar_one()
        self._balance_deltas.clear()
        return balances

    def balance(self, customer_id: int) -> int:
        return self.connection.execute(
            select(customer_balances.c.balance).where(customer_balances.c.customer_id == customer_id)
        ).scalar_one()


def over_limit(customer: CustomerRow, balance: int) -> bool:
    return balance < -customer.credit_limit


