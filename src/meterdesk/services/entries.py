"""Reading the ledger's entries: filters and paging done in SQL, newest first, ending on the id."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Select, func, or_, select

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.periods import Period
from meterdesk.services.shapes import exact_money, plain, timestamp
from meterdesk.domain.timeline import parse_instant
from meterdesk.store.codec import decode_money, decode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.schema import customers, units, usage_entries

KINDS = ("usage", "reversal")


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What part of the ledger to show; every field is optional. Instants are microseconds, end exclusive."""

    customer: str | None = None
    unit: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    period: str | None = None
    kind: str | None = None
    source: str | None = None
    text: str | None = None  # substring of the note or the request id
    chain: int | None = None  # this entry and the entries that correct it (its reversal and replacement)

    @classmethod
    def from_strings(cls, ledger: Ledger, *, customer=None, unit=None, start=None, end=None, period=None, kind=None, source=None, text=None) -> EntryFilter:
        if kind and kind not in KINDS:
            raise InvalidInput("kind", f"must be usage or reversal, not {kind!r}")
        if period:
            period = str(Period.parse(period))
        return cls(
            customer=customer or None,
            unit=unit or None,
            start_us=_instant(start, "from", ledger),
            end_us=_instant(end, "to", ledger),
            period=period or None,
            kind=kind or None,
            source=source or None,
            text=(text or "").strip() or None,
        )

    def apply(self, query: Select, *, time_index: bool = True, customer_index: bool = True) -> Select:
        """The filter's conditions on `query`. `time_index=False` compares occurred_at through `+ 0`, and
        `customer_index=False` the customer: the comparison stays exact and the column is hidden from the
        index planner, for queries that know a better way in (`list_statement`, a short range of ids)."""
        e = usage_entries
        occurred_at = e.c.occurred_at if time_index else e.c.occurred_at + 0
        customer_id = e.c.customer_id if customer_index else e.c.customer_id + 0
        if self.customer:
            query = query.where(customer_id == select(customers.c.id).where(customers.c.external_id == self.customer).scalar_subquery())
        if self.unit:
            query = query.where(e.c.unit_id == select(units.c.id).where(units.c.code == self.unit).scalar_subquery())
        if self.start_us is not None:
            query = query.where(occurred_at >= self.start_us)
        if self.end_us is not None:
            query = query.where(occurred_at < self.end_us)
        if self.period:
            query = query.where(e.c.period == self.period)
        if self.kind:
            query = query.where(e.c.kind == self.kind)
        if self.source:
            query = query.where(e.c.source == self.source)
        if self.text:
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(or_(e.c.note.like(pattern, escape="\\"), e.c.request_id.like(pattern, escape="\\")))
        if self.chain is not None:
            query = query.where(or_(e.c.id == self.chain, e.c.corrects_id == self.chain))
        return query


def _instant(value, field: str, ledger: Ledger) -> int | None:
    return None if value in (None, "") else parse_instant(value, field, ledger.timezone)


@dataclass(frozen=True, slots=True)
class EntryRow:
    id: int
    customer: str
    unit: str
    amount: Decimal  # signed: a reversal is negative
    occurred_at_us: int
    recorded_at_us: int
    billed_at_us: int
    period: str
    late: bool
    request_id: str
    kind: str
    corrects: int | None
    source: str
    actor: str
    note: str | None
    charged: Decimal | None

    @property
    def amount_text(self) -> str:
        return plain(abs(self.amount))

    @property
    def occurred_text(self) -> str:
        return timestamp(self.occurred_at_us)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "customer": self.customer,
            "unit": self.unit,
            "amount": plain(self.amount),
            "occurred_at": timestamp(self.occurred_at_us),
            "recorded_at": timestamp(self.recorded_at_us),
            "period": self.period,
            "request_id": self.request_id,
            "kind": self.kind,
            "corrects": self.corrects,
            "late": self.late,
            "source": self.source,
            "actor": self.actor,
            "note": self.note,
            "charged": None if self.charged is None else exact_money(self.charged),
        }


ENTRY_COLUMNS = (
    usage_entries.c.id,
    customers.c.external_id,
    units.c.code,
    units.c.decimals,
    usage_entries.c.quantity,
    usage_entries.c.occurred_at,
    usage_entries.c.recorded_at,
    usage_entries.c.billed_at,
    usage_entries.c.period,
    usage_entries.c.late,
    usage_entries.c.request_id,
    usage_entries.c.kind,
    usage_entries.c.corrects_id,
    usage_entries.c.source,
    usage_entries.c.actor,
    usage_entries.c.note,
    usage_entries.c.charged,
)


def entries_query() -> Select:
    return (
        select(*ENTRY_COLUMNS)
        .select_from(usage_entries)
        .join(customers, customers.c.id == usage_entries.c.customer_id)
        .join(units, units.c.id == usage_entries.c.unit_id)
    )


def entry_from_row(row) -> EntryRow:
    return EntryRow(
        id=row[0],
        customer=row[1],
        unit=row[2],
        amount=decode_quantity(row[4], row[3]),
        occurred_at_us=row[5],
        recorded_at_us=row[6],
        billed_at_us=row[7],
        period=row[8],
        late=bool(row[9]),
        request_id=row[10],
        kind=row[11],
        corrects=row[12],
        source=row[13],
        actor=row[14],
        note=row[15],
        charged=None if row[16] is None else decode_money(row[16]),
    )


def list_entries(ledger: Ledger, where: EntryFilter | None = None, *, limit: int = 100, before_id: int | None = None) -> list[EntryRow]:
    """Entries newest first (by id), keyset-paged: pass the last id seen as `before_id` for the next page."""
    with ledger.read() as connection:
        statement = list_statement(connection, where or EntryFilter(), limit, before_id)
        return [entry_from_row(row) for row in connection.execute(statement)]


def list_statement(connection, where: EntryFilter, limit: int, before_id: int | None) -> Select:
    """The query of `list_entries`, its time range read between the range's ids when they are known."""
    ids = time_range_ids(connection, where)
    # A time range of more than TIME_RANGE_IDS_CAP entries is a large part of the ledger. Left to itself,
    # SQLite reads all of it from the occurred_at index and sorts it by id (30 s for a month of ten million
    # entries, 17 s for half of it); walking its rowids down takes 0.3 and 0.9 s. PostgreSQL's plans with
    # the index are the better ones there (the same walk through its heap took 42 s).
    query = where.apply(entries_query(), time_index=ids is not None or connection.dialect.name != "sqlite")
    if ids is not None:
        query = query.where(usage_entries.c.id.between(*ids))
    if before_id is not None:
        query = query.where(usage_entries.c.id < before_id)
    return query.order_by(usage_entries.c.id.desc()).limit(limit)


TIME_RANGE_IDS_CAP = 2_000_000
"""Up to this many entries in a time range, `time_range_ids` bounds their ids: a read of the occurred_at index,
about 0.1 s for a day of a ten-million-entry month and at most about 1 s on PostgreSQL. A range with more
entries is a large part of the ledger, and a page walking the ids finds its rows soon enough."""


def time_range_ids(connection, where: EntryFilter, *, up_to: int | None = None) -> tuple[int, int] | None:
    """The lowest and highest id of the entries that occurred in the filter's time range (from the
    occurred_at index), when it has one and it holds at most TIME_RANGE_IDS_CAP entries; (1, 0) for none.

    A page newest first walks the ids down from the top and keeps the rows that match. For a day at the
    start of a ten-million-entry month that walk passes nine million later rows first (24 s on SQLite, 91 s
    on PostgreSQL); between these bounds it starts at the day's own rows. Entries are recorded roughly in
    the order they occur, so the bounds are tight; when they are not, they are still correct, only wider."""
    if where.start_us is None and where.end_us is None:
        return None
    e = usage_entries.c
    time_range = EntryFilter(start_us=where.start_us, end_us=where.end_us)
    inner = time_range.apply(select(e.id.label("id")).select_from(usage_entries))
    if up_to is not None:
        inner = inner.where(e.id <= up_to)
    found = inner.limit(TIME_RANGE_IDS_CAP + 1).subquery()
    count, lowest, highest = connection.execute(select(func.count(), func.min(found.c.id), func.max(found.c.id))).one()
    if count > TIME_RANGE_IDS_CAP:
        return None
    return (1, 0) if not count else (lowest, highest)


def count_entries(ledger: Ledger, where: EntryFilter | None = None) -> int:
    query = (where or EntryFilter()).apply(select(func.count()).select_from(usage_entries))
    with ledger.read() as connection:
        return connection.execute(query).scalar_one()
