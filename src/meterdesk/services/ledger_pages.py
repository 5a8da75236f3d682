"""Windowed reads of the usage ledger for a table view: a row count up front, then fixed-size pages by keyset.

A window is taken at a snapshot (the highest entry id seen when it was opened); the ledger is append-only, so
the rows up to that id never change and pages can be cached. One query numbers the filtered rows in their
sort order and keeps the sort key of every page's first row (an *anchor*); a page is then a keyset read,
`WHERE (key, id) >= anchor ORDER BY key, id LIMIT n`, whatever its depth — no deep OFFSET. The order always
ends on the id, so it is deterministic. Entries written after the snapshot are read with `entries_after`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, func, literal, select, tuple_

from meterdesk.services.entries import EntryFilter, EntryRow, entries_query, entry_from_row
from meterdesk.store.engine import Ledger
from meterdesk.store.schema import customers, units, usage_entries

DEFAULT_PAGE_SIZE = 200
LOOKBACK = 500
"""How far below the highest id seen polling looks again. On PostgreSQL ids come from a sequence and a
transaction may commit after one that took a higher id; such a straggler is still found as long as fewer
than LOOKBACK ids were handed out meanwhile."""


class SortKey(StrEnum):
    """The columns the ledger can be sorted by, each a raw SQL value (never the formatted text)."""

    ID = "id"
    OCCURRED_AT = "occurred_at"
    RECORDED_AT = "recorded_at"
    CUSTOMER = "customer"
    UNIT = "unit"
    AMOUNT = "amount"
    PERIOD = "period"
    KIND = "kind"
    CORRECTS = "corrects"
    SOURCE = "source"
    ACTOR = "actor"
    REQUEST_ID = "request_id"
    NOTE = "note"
    CHARGED = "charged"


def _sort_expression(key: SortKey) -> ColumnElement | None:
    """The SQL value a sort key orders by; None for the id alone. Nullable columns are coalesced, because a
    NULL would make the keyset comparison unknown and drop rows."""
    e = usage_entries.c
    return {
        SortKey.ID: None,
        SortKey.OCCURRED_AT: e.occurred_at,
        SortKey.RECORDED_AT: e.recorded_at,
        SortKey.CUSTOMER: customers.c.external_id,
        SortKey.UNIT: units.c.code,
        # Within one unit the scaled integer orders exactly; amounts of different units do not compare anyway.
        SortKey.AMOUNT: e.quantity,
        SortKey.PERIOD: e.period,
        SortKey.KIND: e.kind,
        SortKey.CORRECTS: func.coalesce(e.corrects_id, 0),
        SortKey.SOURCE: e.source,
        SortKey.ACTOR: e.actor,
        SortKey.REQUEST_ID: e.request_id,
        SortKey.NOTE: func.coalesce(e.note, ""),
        SortKey.CHARGED: func.coalesce(e.charged, -(2**62)),
    }[key]


def _needs_join(key: SortKey) -> bool:
    return key in (SortKey.CUSTOMER, SortKey.UNIT)


@dataclass(frozen=True, slots=True)
class LedgerQuery:
    """What the view shows: a filter and one sort column (ties broken by the id, in the same direction)."""

    where: EntryFilter = field(default_factory=EntryFilter)
    sort: SortKey = SortKey.ID
    descending: bool = True

    @property
    def newest_first(self) -> bool:
        """Entries written later belong at the top (the default order): they can be prepended."""
        return self.sort is SortKey.ID and self.descending


@dataclass(frozen=True, slots=True)
class LedgerWindow:
    """A numbered snapshot of the filtered ledger: `count` rows, the anchor of each page."""

    query: LedgerQuery
    snapshot_id: int  # highest entry id the window covers (0: empty ledger)
    count: int
    page_size: int
    anchors: tuple[tuple, ...]  # per page: (key, id) or (id,)
    recent_ids: frozenset[int] = frozenset()  # matching ids within LOOKBACK of the snapshot (see entries_after)

    @property
    def pages(self) -> int:
        return len(self.anchors)


@dataclass(frozen=True, slots=True)
class LedgerPage:
    index: int
    rows: tuple[EntryRow, ...]
    corrected_by: dict[int, tuple[int | None, int | None]]  # original id -> (reversal id, replacement id)


def latest_entry_id(ledger: Ledger) -> int:
    """The highest entry id in the ledger (0 when empty): cheap, for polling for new entries."""
    with ledger.read() as connection:
        return connection.execute(select(func.max(usage_entries.c.id))).scalar() or 0


def _keyed(query: LedgerQuery) -> tuple[ColumnElement | None, Select]:
    expression = _sort_expression(query.sort)
    return expression, query.where.apply(select().select_from(_from_clause(query.sort)))


def _from_clause(key: SortKey):
    if not _needs_join(key):
        return usage_entries
    return usage_entries.join(customers, customers.c.id == usage_entries.c.customer_id).join(
        units, units.c.id == usage_entries.c.unit_id
    )


def _order(expression: ColumnElement | None, descending: bool) -> list:
    columns = ([expression] if expression is not None else []) + [usage_entries.c.id]
    return [column.desc() if descending else column.asc() for column in columns]


def _between_anchors(expression: ColumnElement | None, descending: bool, first: Sequence, after: Sequence | None):
    """Rows from this page's anchor up to (not including) the next page's: the page is an ordered key range."""
    if expression is None:
        key, low, high = usage_entries.c.id, literal(first[0]), None if after is None else literal(after[0])
    else:
        key = tuple_(expression, usage_entries.c.id)
        low = tuple_(literal(first[0]), literal(first[1]))
        high = None if after is None else tuple_(literal(after[0]), literal(after[1]))
    if descending:
        return key <= low if high is None else (key <= low) & (key > high)
    return key >= low if high is None else (key >= low) & (key < high)


def _page_filter(where: EntryFilter, query: Select) -> Select:
    """The filter, with customer and unit compared through an expression rather than their column.

    A page is a bounded key range; SQLite would otherwise pick the customer index and sort all of that
    customer's rows for every page (half a second at a million rows) instead of walking the range (a
    millisecond). `+ 0` keeps the comparison exact and hides the column from the index planner.
    """
    e = usage_entries.c
    if where.customer:
        customer_id = select(customers.c.id).where(customers.c.external_id == where.customer).scalar_subquery()
        query = query.where((e.customer_id + 0) == customer_id)
    if where.unit:
        unit_id = select(units.c.id).where(units.c.code == where.unit).scalar_subquery()
        query = query.where((e.unit_id + 0) == unit_id)
    return replace(where, customer=None, unit=None).apply(query)


def open_window(ledger: Ledger, query: LedgerQuery, *, page_size: int = DEFAULT_PAGE_SIZE, snapshot_id: int | None = None) -> LedgerWindow:
    """Count the rows of `query` up to the snapshot and find each page's anchor, in one read transaction."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    expression, base = _keyed(query)
    with ledger.read() as connection:
        if snapshot_id is None:
            snapshot_id = connection.execute(select(func.max(usage_entries.c.id))).scalar() or 0
        base = base.where(usage_entries.c.id <= snapshot_id)
        count = connection.execute(base.add_columns(func.count())).scalar_one()
        anchors: tuple[tuple, ...] = ()
        if count:
            number = func.row_number().over(order_by=_order(expression, query.descending)).label("position")
            keys = ([expression.label("sort_key")] if expression is not None else []) + [usage_entries.c.id.label("entry_id")]
            numbered = base.add_columns(*keys, number).subquery()
            selected = [numbered.c.sort_key] if expression is not None else []
            rows = connection.execute(
                select(*selected, numbered.c.entry_id)
                .where((numbered.c.position - 1) % page_size == 0)
                .order_by(numbered.c.position)
            ).all()
            anchors = tuple(tuple(row) for row in rows)
        recent = frozenset(
            connection.execute(
                query.where.apply(select(usage_entries.c.id).select_from(usage_entries)).where(
                    usage_entries.c.id > snapshot_id - LOOKBACK, usage_entries.c.id <= snapshot_id
                )
            ).scalars()
        )
    return LedgerWindow(query, snapshot_id, count, page_size, anchors, recent)


def read_page(ledger: Ledger, window: LedgerWindow, index: int) -> LedgerPage:
    """Page `index` of a window: up to `page_size` entries from its anchor on, and how each was corrected."""
    if not 0 <= index < window.pages:
        raise IndexError(f"page {index} is outside the window's {window.pages} pages")
    query = window.query
    expression = _sort_expression(query.sort)
    after = window.anchors[index + 1] if index + 1 < window.pages else None
    statement = _page_filter(query.where, entries_query())
    if expression is not None or (after is None and not query.descending):
        # An id range within the snapshot needs no second bound; SQLite would walk from the wrong one.
        statement = statement.where(usage_entries.c.id <= window.snapshot_id)
    statement = (
        statement.where(_between_anchors(expression, query.descending, window.anchors[index], after))
        .order_by(*_order(expression, query.descending))
        .limit(window.page_size)
    )
    with ledger.read() as connection:
        rows = tuple(entry_from_row(row) for row in connection.execute(statement))
        corrected = corrections_of(connection, [row.id for row in rows if row.kind == "usage"])
    return LedgerPage(index, rows, corrected)


def corrections_of(connection, entry_ids: Sequence[int]) -> dict[int, tuple[int | None, int | None]]:
    """For each of these entries that was corrected: (reversal id, replacement id)."""
    if not entry_ids:
        return {}
    e = usage_entries.c
    return _correction_pairs(connection.execute(select(e.corrects_id, e.id, e.kind).where(e.corrects_id.in_(list(entry_ids)))))


def _correction_pairs(rows) -> dict[int, tuple[int | None, int | None]]:
    """(original id, entry id, kind) rows of reversals and replacements -> original -> (reversal, replacement)."""
    found: dict[int, list[int | None]] = {}
    for original, entry_id, kind in rows:
        pair = found.setdefault(original, [None, None])
        pair[0 if kind == "reversal" else 1] = entry_id
    return {original: (pair[0], pair[1]) for original, pair in found.items()}


@dataclass(frozen=True, slots=True)
class NewEntries:
    """Matching entries the caller did not know yet (newest first), and how far the ledger reached."""

    rows: tuple[EntryRow, ...]  # empty when more than `limit` are new: reopen the window instead
    ids: frozenset[int]  # every new matching id
    latest_id: int
    corrected: dict[int, tuple[int | None, int | None]]  # originals (any, not only matching) corrected by them

    @property
    def matching(self) -> int:
        return len(self.ids)


def entries_after(
    ledger: Ledger, query: LedgerQuery, after_id: int, *, known: frozenset[int] = frozenset(), limit: int = 2000
) -> NewEntries:
    """Entries matching the query that the caller has not seen: ids above `after_id`, and stragglers up to
    LOOKBACK below it that committed late (`known` lists the ids of that range the caller already shows)."""
    e = usage_entries
    with ledger.read() as connection:
        latest = max(connection.execute(select(func.max(e.c.id))).scalar() or 0, after_id)
        window = (e.c.id > after_id - LOOKBACK) & (e.c.id <= latest)
        seen = connection.execute(query.where.apply(select(e.c.id).select_from(e)).where(window)).scalars()
        new_ids = frozenset(seen) - known
        rows: tuple[EntryRow, ...] = ()
        if new_ids and len(new_ids) <= limit:
            statement = query.where.apply(entries_query()).where(window, e.c.id.in_(sorted(new_ids))).order_by(e.c.id.desc())
            rows = tuple(entry_from_row(row) for row in connection.execute(statement))
        corrected = _correction_pairs(
            connection.execute(
                select(e.c.corrects_id, e.c.id, e.c.kind).where(e.c.id > after_id, e.c.id <= latest, e.c.corrects_id.is_not(None))
            )
        )
    return NewEntries(rows, new_ids, latest, corrected)

