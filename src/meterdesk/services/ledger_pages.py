"""Windowed reads of the usage ledger for a table view: a row count up front, then fixed-size pages by keyset.

A window is taken at a snapshot (the highest entry id seen when it was opened); the ledger is append-only, so
the rows up to that id never change and pages can be cached. One query numbers the filtered rows in their
sort order and keeps the sort key of every page's first row (an *anchor*); a page is then a keyset read,
`WHERE (key, id) >= anchor ORDER BY key, id LIMIT n`, whatever its depth — no deep OFFSET. The order always
ends on the id, so it is deterministic. Entries written after the snapshot are read with `entries_after`.

Numbering millions of rows takes seconds, so a window opens in two steps. `open_window(settled=False)` takes
only what is cheap: the count from the daily rollup when the filter is one of its keys (customer, unit,
period, kind). The whole ledger in id order is cheaper still: its count is estimated from the lowest and the
highest id and every anchor follows by arithmetic, which is exact when the ids have no gaps (SQLite never
leaves any). Whatever is still missing or estimated, `settle_window` finds later on a worker (the estimate
is checked against the rollup); meanwhile the pages within a few of either end are read by a short OFFSET
from that end (`readable`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, func, literal, select, tuple_

from meterdesk.services.entries import EntryFilter, EntryRow, entries_query, entry_from_row, time_range_ids
from meterdesk.store.engine import Ledger
from meterdesk.store.schema import customers, units, usage_daily, usage_entries

DEFAULT_PAGE_SIZE = 200
LOOKBACK = 500
"""How far below the highest id seen polling looks again. On PostgreSQL ids come from a sequence and a
transaction may commit after one that took a higher id; such a straggler is still found as long as fewer
than LOOKBACK ids were handed out meanwhile."""
NEAR_END_PAGES = 10
"""Before a window is settled, pages this close to its top (or, with an exact count, to its bottom) are read by
OFFSET from that end: a first screenful and a jump to the last row need no anchors."""


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


class IdSteps(Sequence):
    """The anchors of an id-ordered window over ids without gaps: page i starts at `first + i * step`."""

    __slots__ = ("first", "step", "length")

    def __init__(self, first: int, step: int, length: int) -> None:
        self.first, self.step, self.length = first, step, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):  # noqa: ANN001 - an int or a slice, as Sequence has it
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self.length)))
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(index)
        return (self.first + index * self.step,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"IdSteps(first={self.first}, step={self.step}, length={self.length})"


@dataclass(frozen=True, slots=True)
class LedgerWindow:
    """A numbered snapshot of the filtered ledger: `count` rows, the anchor of each page.

    Unsettled (see `open_window`), `count` may be provisional (`exact` False: the rows of the first page, a
    lower bound) and `anchors` None; `settle_window` gives the same window with both found."""

    query: LedgerQuery
    snapshot_id: int  # highest entry id the window covers (0: empty ledger)
    count: int
    page_size: int
    anchors: Sequence[tuple] | None  # per page: (key, id) or (id,); None until settled
    recent_ids: frozenset[int] = frozenset()  # matching ids within LOOKBACK of the snapshot (see entries_after)
    exact: bool = True  # `count` is the exact number of rows; else a lower bound, or with anchors an estimate
    # The ids of a filter's time range, lowest and highest (entries.time_range_ids); None: no such bound.
    id_range: tuple[int, int] | None = None

    @property
    def estimated(self) -> bool:
        """Count and anchors assume ids without gaps (see `open_window`); `settle_window` checks them."""
        return not self.exact and self.anchors is not None

    @property
    def pages(self) -> int:
        if self.anchors is not None:
            return len(self.anchors)
        if not self.exact:
            return max(1, -(-self.count // self.page_size))  # the first page can always be read
        return -(-self.count // self.page_size)

    @property
    def settled(self) -> bool:
        """Every page can be read: the count is exact and each page has an anchor or is near an end."""
        return self.exact and (self.anchors is not None or self.pages <= 2 * NEAR_END_PAGES)

    def readable(self, index: int) -> bool:
        """Page `index` can be read now: by its anchor, or by a short OFFSET from the nearer end."""
        if not 0 <= index < self.pages:
            return False
        if self.anchors is not None or index < NEAR_END_PAGES:
            return True
        return self.exact and self.pages - index <= NEAR_END_PAGES


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
    return expression, _among_reversals(query.where, query.where.apply(select().select_from(_from_clause(query.sort))))


def _from_clause(key: SortKey):
    if not _needs_join(key):
        return usage_entries
    return usage_entries.join(customers, customers.c.id == usage_entries.c.customer_id).join(
        units, units.c.id == usage_entries.c.unit_id
    )


def _order(expression: ColumnElement | None, descending: bool, *, walk_ids: bool = True) -> list:
    """The sort order, ending on the id. `walk_ids=False` orders by `id + 0`, the same order, so that a
    planner does not walk the primary key for it (PostgreSQL would, for a customer's few rows)."""
    columns = ([expression] if expression is not None else []) + [usage_entries.c.id if walk_ids else usage_entries.c.id + 0]
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


def _page_filter(window: LedgerWindow, query: Select) -> Select:
    """The filter of a page read, written so that each planner walks the fewest rows.

    A page is a bounded key range. A customer with a large share of the entries is compared through
    `+ 0`, which keeps the comparison exact and hides the column from the index planner: SQLite would
    otherwise take the customer index and sort all of that customer's rows for every page (half a second
    at a million rows) instead of walking the range (a millisecond). A customer with a small share is the
    other way round: walking ten million ids for its few thousand rows takes a second, its index a
    millisecond. The unit is always compared through `+ 0` (no index leads with it). Reversals are read
    by their ids from the partial index on corrections (`_among_reversals`).
    """
    where = window.query.where
    e = usage_entries.c
    if where.customer:
        customer_id = select(customers.c.id).where(customers.c.external_id == where.customer).scalar_subquery()
        query = query.where(((e.customer_id + 0) if _customer_is_common(window) else e.customer_id) == customer_id)
    if where.unit:
        unit_id = select(units.c.id).where(units.c.code == where.unit).scalar_subquery()
        query = query.where((e.unit_id + 0) == unit_id)
    return _within_time_range(window, _among_reversals(where, replace(where, customer=None, unit=None).apply(query)))


def _within_time_range(window: LedgerWindow, query: Select) -> Select:
    """The ids of the filter's time range, when the window knows them (see entries.time_range_ids)."""
    return query if window.id_range is None else query.where(usage_entries.c.id.between(*window.id_range))


def _among_reversals(where: EntryFilter, query: Select) -> Select:
    """For the reversals filter: the ids of the reversals, from the partial index on corrections (every
    reversal corrects an entry). Left to itself, SQLite walks the ids of the whole ledger looking for them."""
    if where.kind != "reversal":
        return query
    corrections = usage_entries.alias("corrections")
    reversals = select(corrections.c.id).where(corrections.c.corrects_id.is_not(None), corrections.c.kind == "reversal")
    return query.where(usage_entries.c.id.in_(reversals))


def _walks_ids(window: LedgerWindow) -> bool:
    """A page is read by walking the ids in order, unless it is one of a customer with a small share."""
    return not window.query.where.customer or _customer_is_common(window)


def _customer_is_common(window: LedgerWindow) -> bool:
    """Walking ids costs about a row per `share` rows of the ledger for each row of a page; the customer's
    index costs a tenth of a row for each of its rows. Without an exact count, walk (as for a big customer)."""
    if not window.exact:
        return True
    return window.count * window.count >= 10 * window.page_size * max(window.snapshot_id, 1)


def _rollup_count(where: EntryFilter) -> ColumnElement | None:
    """The number of entries matching `where` from the daily rollup, when the filter is one of its keys.

    The rollup is written in the same transaction as the entries: per customer, period, unit and day,
    `entries` is usage entries minus reversals and `reversals` the reversals. Summing some hundred
    thousand rollup rows is far cheaper than counting ten million entries."""
    if any(value is not None for value in (where.start_us, where.end_us, where.source, where.text, where.chain)):
        return None
    d = usage_daily.c
    counted = {None: d.entries + 2 * d.reversals, "usage": d.entries + d.reversals, "reversal": d.reversals}[where.kind]
    statement = select(func.coalesce(func.sum(counted), 0))
    if where.customer:
        statement = statement.where(d.customer_id == select(customers.c.id).where(customers.c.external_id == where.customer).scalar_subquery())
    if where.unit:
        statement = statement.where(d.unit_id == select(units.c.id).where(units.c.code == where.unit).scalar_subquery())
    if where.period:
        statement = statement.where(d.period == where.period)
    return statement.scalar_subquery()


def open_window(
    ledger: Ledger,
    query: LedgerQuery,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    snapshot_id: int | None = None,
    settled: bool = True,
) -> LedgerWindow:
    """The window of `query` up to the snapshot (the highest id now, unless given).

    `settled=False` reads only what is cheap (milliseconds at ten million entries): the snapshot, the exact
    count when the rollup has it, and the anchors when they follow from the ids. What is missing —
    `exact` False (the count is then the rows of the first page) or `anchors` None — `settle_window` finds.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    e = usage_entries.c
    where = query.where
    with ledger.read() as connection:
        count: int | None = None
        lowest = None
        by_ids = _without_filter(where) and query.sort is SortKey.ID
        if snapshot_id is None:
            # One statement, so one snapshot on PostgreSQL too: the rollup then counts exactly the entries
            # up to the highest id it sees (the ledger is append-only; later ids are not visible to it).
            # Each its own subquery: SQLite answers a lone max() or min() from the end of the B-tree, but
            # both in one SELECT from the table would scan it.
            rollup = None if by_ids and not settled else _rollup_count(where)
            columns = [select(func.max(e.id)).scalar_subquery(), select(func.min(e.id)).scalar_subquery()]
            row = connection.execute(select(*columns, *([rollup] if rollup is not None else []))).one()
            snapshot_id, lowest = row[0] or 0, row[1] or 0
            if rollup is not None:
                count = int(row[2] or 0) if snapshot_id else 0
        anchors: Sequence[tuple] | None = None
        exact = count is not None
        if by_ids and lowest is not None and snapshot_id and count in (None, snapshot_id - lowest + 1):
            # Every id from the lowest to the snapshot is there (known, or assumed until settled): page i
            # starts i pages from the end.
            count = snapshot_id - lowest + 1
            pages = -(-count // page_size)
            anchors = IdSteps(snapshot_id, -page_size, pages) if query.descending else IdSteps(lowest, page_size, pages)
        window = LedgerWindow(query, snapshot_id, count if count is not None else 0, page_size, anchors,
                              _recent_ids(connection, query, snapshot_id), exact=exact,
                              id_range=time_range_ids(connection, where, up_to=snapshot_id))
        if settled and not window.settled:
            window = _settle(connection, window)
    return window


def open_with_first_page(ledger: Ledger, query: LedgerQuery, *, page_size: int = DEFAULT_PAGE_SIZE) -> tuple[LedgerWindow, LedgerPage]:
    """An unsettled window and its first page, for a first screenful as soon as possible. Without a cheap
    count, the first page is the count so far: exact when it is not full, a lower bound otherwise."""
    window = open_window(ledger, query, page_size=page_size, settled=False)
    if window.pages == 0:
        return window, LedgerPage(0, (), {})
    first = read_page(ledger, window, 0)
    if not window.exact and not window.estimated:
        window = replace(window, count=len(first.rows), exact=len(first.rows) < page_size)
    return window, first


def _without_filter(where: EntryFilter) -> bool:
    return where == EntryFilter()


def _by_ids(where: EntryFilter, query: Select) -> Select:
    """The filter on a query of a short id range (the newest entries), which reads that range and nothing
    else: given a month, SQLite would otherwise read all of it from the occurred_at index first (0.8 s at
    ten million entries, on every poll of a filtered ledger page)."""
    return where.apply(query, time_index=False, customer_index=False)


def _recent_ids(connection, query: LedgerQuery, snapshot_id: int) -> frozenset[int]:
    """The ids of the filter's entries among the last LOOKBACK up to the snapshot."""
    return frozenset(
        connection.execute(
            _by_ids(query.where, select(usage_entries.c.id).select_from(usage_entries)).where(
                usage_entries.c.id > snapshot_id - LOOKBACK, usage_entries.c.id <= snapshot_id
            )
        ).scalars()
    )


def settle_window(ledger: Ledger, window: LedgerWindow) -> LedgerWindow:
    """The same window (same snapshot) with its exact count and every page's anchor: one numbering of the
    filtered rows, seconds at millions of rows, so on a worker after the first rows are on screen."""
    if window.settled:
        return window
    with ledger.read() as connection:
        if window.estimated:
            # The rollup counts every entry now; the ones above the snapshot are a short id range. One
            # statement, one snapshot. When they agree with the ids, the estimate was the count.
            e = usage_entries.c
            newer = select(func.count()).select_from(usage_entries).where(e.id > window.snapshot_id).scalar_subquery()
            now, above = connection.execute(select(_rollup_count(window.query.where), newer)).one()
            if int(now or 0) - above == window.count:
                return replace(window, exact=True)
            window = replace(window, anchors=None)
        return _settle(connection, window)


def _settle(connection, window: LedgerWindow) -> LedgerWindow:
    query, page_size = window.query, window.page_size
    expression, base = _keyed(query)
    base = _within_time_range(window, base.where(usage_entries.c.id <= window.snapshot_id))
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
    return replace(window, count=count, anchors=anchors, exact=True)


def read_page(ledger: Ledger, window: LedgerWindow, index: int) -> LedgerPage:
    """Page `index` of a window: up to `page_size` entries from its anchor on, and how each was corrected.
    An unsettled window reads only the pages near its ends (`window.readable`)."""
    if not 0 <= index < window.pages:
        raise IndexError(f"page {index} is outside the window's {window.pages} pages")
    if not window.readable(index):
        raise LookupError(f"page {index} of an unsettled window: settle it first")
    statement, reverse = _page_statement(window, index), False
    if window.anchors is None and index >= NEAR_END_PAGES:
        statement, reverse = _page_from_the_end(window, index), True
    with ledger.read() as connection:
        rows = tuple(entry_from_row(row) for row in connection.execute(statement))
        corrected = corrections_of(connection, [row.id for row in rows if row.kind == "usage"])
    return LedgerPage(index, rows[::-1] if reverse else rows, corrected)


def _page_statement(window: LedgerWindow, index: int) -> Select:
    """Page `index` by its anchor, or without anchors by OFFSET from the top."""
    query = window.query
    expression = _sort_expression(query.sort)
    order = _order(expression, query.descending, walk_ids=_walks_ids(window))
    if window.anchors is None:
        return _rows_of(window, lambda statement: statement.where(usage_entries.c.id <= window.snapshot_id)
                        .order_by(*order).limit(window.page_size).offset(index * window.page_size), order)
    after = window.anchors[index + 1] if index + 1 < window.pages else None

    def page(statement: Select) -> Select:
        if expression is not None or (after is None and not query.descending):
            # An id range within the snapshot needs no second bound; SQLite would walk from the wrong one.
            statement = statement.where(usage_entries.c.id <= window.snapshot_id)
        statement = statement.where(_between_anchors(expression, query.descending, window.anchors[index], after))
        return statement.order_by(*order).limit(window.page_size)

    return _rows_of(window, page, order)


def _page_from_the_end(window: LedgerWindow, index: int) -> Select:
    """Page `index` of a window with an exact count but no anchors, read backwards from its last row."""
    query = window.query
    first = index * window.page_size
    size = min(window.page_size, window.count - first)
    order = _order(_sort_expression(query.sort), not query.descending, walk_ids=_walks_ids(window))
    return _rows_of(window, lambda statement: statement.where(usage_entries.c.id <= window.snapshot_id)
                    .order_by(*order).limit(size).offset(window.count - first - size), order)


def _rows_of(window: LedgerWindow, page: Callable[[Select], Select], order: list) -> Select:
    """The entries of a page: `page` adds the range, order and limit to a filtered statement. A small
    customer's page picks its ids from the customer's index first and reads only those rows; sorting all of
    the customer's rows whole would read each of them (thousands of random reads at ten million entries)."""
    if _walks_ids(window):
        return page(_page_filter(window, entries_query()))
    ids = page(_page_filter(window, select(usage_entries.c.id).select_from(_from_clause(window.query.sort))))
    return entries_query().where(usage_entries.c.id.in_(ids)).order_by(*order)


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
        seen = connection.execute(_by_ids(query.where, select(e.c.id).select_from(e)).where(window)).scalars()
        new_ids = frozenset(seen) - known
        rows: tuple[EntryRow, ...] = ()
        if new_ids and len(new_ids) <= limit:
            statement = _by_ids(query.where, entries_query()).where(window, e.c.id.in_(sorted(new_ids))).order_by(e.c.id.desc())
            rows = tuple(entry_from_row(row) for row in connection.execute(statement))
        corrected = _correction_pairs(
            connection.execute(
                select(e.c.corrects_id, e.c.id, e.c.kind).where(e.c.id > after_id, e.c.id <= latest, e.c.corrects_id.is_not(None))
            )
        )
    return NewEntries(rows, new_ids, latest, corrected)

