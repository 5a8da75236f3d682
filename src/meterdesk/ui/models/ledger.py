"""The usage ledger as a windowed table model: the row count up front, pages loaded on workers as they are seen.

`data()` never touches the database. A row whose page is not cached shows a placeholder and asks for the
page; a worker reads it (a keyset read, see services/ledger_pages.py) and `dataChanged` repaints it. A small
LRU cache keeps the pages near the viewport. A window opens with its first page and whatever else is cheap;
when its count or its page anchors still have to be found, a second worker settles it while the first rows
are already on screen (rows are added at the bottom when the count grows). Entries written by anyone after
the window was opened are found by polling the highest id every couple of seconds; in the default
newest-first order they are inserted at the top, in any other order the window is reopened.
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from meterdesk.services.entries import EntryRow
from meterdesk.services.ledger_pages import (
    DEFAULT_PAGE_SIZE,
    LOOKBACK,
    LedgerPage,
    LedgerQuery,
    LedgerWindow,
    NewEntries,
    SortKey,
    entries_after,
    open_with_first_page,
    read_page,
    settle_window,
)
from meterdesk.services.ledgers import Ledger
from meterdesk.ui.formatting import exact_money_text, local_time_text, quantity_text, utc_text, zone_label
from meterdesk.ui.models.base import LEFT, RIGHT, Index
from meterdesk.ui.roles import Role
from meterdesk.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

PLACEHOLDER = "loading…"
REVERSAL_COLOUR = QColor("#b3261e")
REPLACEMENT_COLOUR = QColor("#1d6b3a")
CORRECTED_COLOUR = QColor("#8c8c8c")
PENDING_COLOUR = QColor("#9e9e9e")
HEAD_LIMIT = 5000  # new rows kept above the window before it is reopened


class LedgerColumn(IntEnum):
    ID = 0
    OCCURRED = 1
    CUSTOMER = 2
    UNIT = 3
    AMOUNT = 4
    KIND = 5
    CORRECTS = 6
    PERIOD = 7
    SOURCE = 8
    ACTOR = 9
    REQUEST_ID = 10
    NOTE = 11
    CHARGED = 12
    RECORDED = 13


SORT_KEYS = {
    LedgerColumn.ID: SortKey.ID,
    LedgerColumn.OCCURRED: SortKey.OCCURRED_AT,
    LedgerColumn.CUSTOMER: SortKey.CUSTOMER,
    LedgerColumn.UNIT: SortKey.UNIT,
    LedgerColumn.AMOUNT: SortKey.AMOUNT,
    LedgerColumn.KIND: SortKey.KIND,
    LedgerColumn.CORRECTS: SortKey.CORRECTS,
    LedgerColumn.PERIOD: SortKey.PERIOD,
    LedgerColumn.SOURCE: SortKey.SOURCE,
    LedgerColumn.ACTOR: SortKey.ACTOR,
    LedgerColumn.REQUEST_ID: SortKey.REQUEST_ID,
    LedgerColumn.NOTE: SortKey.NOTE,
    LedgerColumn.CHARGED: SortKey.CHARGED,
    LedgerColumn.RECORDED: SortKey.RECORDED_AT,
}
COLUMN_OF_SORT = {key: column for column, key in SORT_KEYS.items()}

HEADERS = {
    LedgerColumn.ID: "Entry",
    LedgerColumn.OCCURRED: "Occurred",
    LedgerColumn.CUSTOMER: "Customer",
    LedgerColumn.UNIT: "Unit",
    LedgerColumn.AMOUNT: "Amount",
    LedgerColumn.KIND: "Kind",
    LedgerColumn.CORRECTS: "Corrects",
    LedgerColumn.PERIOD: "Period",
    LedgerColumn.SOURCE: "Source",
    LedgerColumn.ACTOR: "By",
    LedgerColumn.REQUEST_ID: "Request id",
    LedgerColumn.NOTE: "Note / reason",
    LedgerColumn.CHARGED: "Charged (prepaid)",
    LedgerColumn.RECORDED: "Recorded",
}
NUMERIC = {LedgerColumn.ID, LedgerColumn.AMOUNT, LedgerColumn.CHARGED}
COLUMNS = len(LedgerColumn)  # data() runs thousands of times a paint: len() of an enum is not free
DISPLAY = int(Qt.ItemDataRole.DisplayRole)
FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
FONT = int(Qt.ItemDataRole.FontRole)
ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
SERVED_ROLES = frozenset(
    {DISPLAY, FOREGROUND, FONT, ALIGNMENT, TOOLTIP}
    | {int(role) for role in (Role.SortRole, Role.RowObjectRole, Role.EntryIdRole, Role.LoadedRole, Role.CorrectedByRole)}
)
TEXTS_KEPT = 20_000  # formatted rows kept (about the cached pages' worth)


def _open(ledger: Ledger, query: LedgerQuery, page_size: int) -> tuple[LedgerWindow, LedgerPage]:
    """The window and its first page; on the way, the number formats are loaded here rather than by the
    first paint (Babel reads its locale data on first use: a quarter of a second)."""
    quantity_text(Decimal("1234.5"))
    return open_with_first_page(ledger, query, page_size=page_size)


class LedgerTableModel(QAbstractTableModel):
    """Windowed, read-only view of the ledger for one query (filter + sort)."""

    Column = LedgerColumn
    window_opened = Signal(int)  # rows in the new window
    window_settled = Signal(int)  # the exact rows of the window, once its count and anchors are found
    loading_changed = Signal(bool)
    entries_arrived = Signal(int)  # new matching entries found by polling
    failed = Signal(object)  # an exception from a worker; the view decides how to show it

    def __init__(
        self,
        runner: TaskRunner,
        ledger_provider: Callable[[], Ledger | None],
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        cache_pages: int = 40,
        poll_ms: int = 2000,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._ledger_provider = ledger_provider
        self._page_size = page_size
        self._cache_pages = cache_pages
        self._query = LedgerQuery()
        self._generation = 0
        self._window: LedgerWindow | None = None
        self._head: list[EntryRow] = []
        self._pages: OrderedDict[int, LedgerPage] = OrderedDict()
        self._in_flight: set[int] = set()
        self._wanted: OrderedDict[int, None] = OrderedDict()
        self._corrected: dict[int, tuple[int | None, int | None]] = {}
        self._texts: dict[int, tuple[str, ...]] = {}  # entry id -> its cells as shown (a paint asks each many times)
        self._latest_id = 0
        self._known: set[int] = set()  # ids near the top the model already shows (for late commits)
        self._polling = False
        self._poll_broken = False
        self._opening = False
        self._zone = None
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(poll_ms)
        self._poll_timer.timeout.connect(self.poll)
        self.page_loads = 0  # pages read from the database (tests check that the ledger is not read whole)

    # -- what is shown ---------------------------------------------------------------------------
    @property
    def query(self) -> LedgerQuery:
        return self._query

    @property
    def window(self) -> LedgerWindow | None:
        return self._window

    @property
    def loading(self) -> bool:
        return self._opening

    @property
    def counting(self) -> bool:
        """The window is open but its count is still a lower bound (the first page). An estimate from the
        ids is not shown as counting: it is the count unless the ids have gaps, and it settles in a moment."""
        return self._window is not None and not self._window.exact and not self._window.estimated

    def set_query(self, query: LedgerQuery) -> None:
        """Show `query`; the window shown (or being opened) stays when it is that query already."""
        if query == self._query and (self._window is not None or self._opening):
            return
        self._query = query
        self.refresh()

    def set_poll_interval(self, msecs: int) -> None:
        self._poll_timer.setInterval(msecs)

    def start_polling(self) -> None:
        self._poll_timer.start()

    def stop_polling(self) -> None:
        self._poll_timer.stop()

    def refresh(self) -> None:
        """Reopen the window for the current query on a worker; the rows shown stay until it is ready."""
        ledger = self._ledger_provider()
        if ledger is None:
            return
        self._generation += 1
        generation = self._generation
        query, page_size = self._query, self._page_size
        self._set_opening(True)
        self._runner.submit(
            lambda job: _open(ledger, query, page_size),
            on_done=lambda opened: self._window_opened(generation, ledger, *opened),
            on_error=lambda error: self._failed(generation, error),
            key=f"ledger-window-{id(self)}",
            description="reading the usage ledger",
            owner=self,
        )

    def clear(self) -> None:
        self._generation += 1
        self._set_opening(False)  # a window on its way is dropped with its generation
        self.beginResetModel()
        self._window = None
        self._reset_cache()
        self.endResetModel()

    def _reset_cache(self) -> None:
        self._head = []
        self._pages.clear()
        self._in_flight.clear()
        self._wanted.clear()
        self._corrected.clear()
        self._texts.clear()

    def _set_opening(self, value: bool) -> None:
        if self._opening != value:
            self._opening = value
            self.loading_changed.emit(value)

    def _window_opened(self, generation: int, ledger: Ledger, window: LedgerWindow, first: LedgerPage) -> None:
        if generation != self._generation:
            return
        self.beginResetModel()
        self._window = window
        self._zone = ledger.timezone
        self._reset_cache()
        if first.rows:
            self._pages[first.index] = first
            self._corrected.update(first.corrected_by)
        self._latest_id = window.snapshot_id
        self._known = set(window.recent_ids)
        self.endResetModel()
        self._set_opening(False)
        self.window_opened.emit(window.count)
        if not window.settled:
            self._runner.submit(
                lambda job: settle_window(ledger, window),
                on_done=lambda settled: self._window_settled(generation, settled),
                on_error=lambda error: self._failed(generation, error),
                key=f"ledger-settle-{id(self)}",
                description="counting the usage ledger",
                owner=self,
            )

    def _update_corrected(self, corrected: dict[int, tuple[int | None, int | None]]) -> None:
        self._corrected.update(corrected)
        for original in corrected:
            self._texts.pop(original, None)  # its kind and "corrected by" cells change

    def _window_settled(self, generation: int, window: LedgerWindow) -> None:
        """The same snapshot, now with its exact count and anchors: rows join or leave at the bottom."""
        old = self._window
        if generation != self._generation or old is None or old.snapshot_id != window.snapshot_id:
            return
        if old.count != window.count and (old.exact or old.estimated):
            # The ids had gaps (PostgreSQL), or an entry below the snapshot committed in between: the rows
            # read so far may sit at other positions.
            self._pages.clear()
            self._in_flight.clear()
        first_old, first_new = len(self._head) + old.count, len(self._head) + window.count
        if first_new > first_old:
            self.beginInsertRows(QModelIndex(), first_old, first_new - 1)
            self._window = window
            self.endInsertRows()
        elif first_new < first_old:
            self.beginRemoveRows(QModelIndex(), first_new, first_old - 1)
            self._window = window
            self.endRemoveRows()
        else:
            self._window = window
        if not self._pages and self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, COLUMNS - 1))
        self.window_settled.emit(window.count)
        self._pump()

    def _failed(self, generation: int, error: BaseException) -> None:
        if generation == self._generation:
            self._set_opening(False)
            self._polling = False
            self.failed.emit(error)

    # -- rows ------------------------------------------------------------------------------------
    def entry_at(self, row: int) -> EntryRow | None:
        """The entry of a row if its page is loaded (None while it is still being read)."""
        if row < 0:
            return None
        if row < len(self._head):
            return self._head[row]
        if self._window is None:
            return None
        position = row - len(self._head)
        page = self._pages.get(position // self._page_size)
        if page is None:
            return None
        offset = position % self._page_size
        return page.rows[offset] if offset < len(page.rows) else None

    def row_of(self, entry_id: int) -> int:
        """The row of a loaded entry, or -1."""
        for row, entry in enumerate(self._head):
            if entry.id == entry_id:
                return row
        for number, page in self._pages.items():
            for offset, entry in enumerate(page.rows):
                if entry.id == entry_id:
                    return len(self._head) + number * self._page_size + offset
        return -1

    def corrected_by(self, entry_id: int) -> tuple[int | None, int | None] | None:
        return self._corrected.get(entry_id)

    def _request_page(self, number: int) -> None:
        if number in self._pages or number in self._in_flight or self._window is None:
            return
        self._wanted[number] = None
        self._wanted.move_to_end(number)
        while len(self._wanted) > 6:  # the clerk scrolled past these: not worth reading any more
            self._wanted.popitem(last=False)
        self._pump()

    def _pump(self) -> None:
        ledger = self._ledger_provider()
        if ledger is None or self._window is None:
            return
        for number in reversed(list(self._wanted)):  # the most recently seen page first
            if len(self._in_flight) >= 2:
                break
            if number in self._pages or number >= self._window.pages:
                del self._wanted[number]
                continue
            if not self._window.readable(number):
                continue  # deep in a window that is not settled yet: read once its anchors are there
            del self._wanted[number]
            self._in_flight.add(number)
            generation, window = self._generation, self._window
            self._runner.submit(
                lambda job, n=number: read_page(ledger, window, n),
                on_done=lambda page, g=generation: self._page_read(g, page),
                on_error=lambda error, g=generation, n=number: self._page_failed(g, n, error),
                description="reading a page of the ledger",
                owner=self,
            )

    def _page_read(self, generation: int, page: LedgerPage) -> None:
        if generation != self._generation:
            return
        self.page_loads += 1
        self._in_flight.discard(page.index)
        self._pages[page.index] = page
        self._pages.move_to_end(page.index)
        while len(self._pages) > self._cache_pages:
            self._pages.popitem(last=False)
        self._update_corrected(page.corrected_by)
        first = len(self._head) + page.index * self._page_size
        last = min(first + self._page_size, self.rowCount()) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, COLUMNS - 1))
        self._pump()

    def _page_failed(self, generation: int, number: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        self._in_flight.discard(number)
        self.failed.emit(error)

    # -- new entries -------------------------------------------------------------------------------
    def poll(self) -> None:
        """Look for entries written since the window was opened (by anyone); cheap when there are none."""
        ledger = self._ledger_provider()
        if ledger is None or self._window is None or self._polling or self._opening:
            return
        self._polling = True
        generation, query, after = self._generation, self._query, self._latest_id
        known = frozenset(i for i in self._known if i > after - LOOKBACK)
        self._runner.submit(
            lambda job: entries_after(ledger, query, after, known=known, limit=HEAD_LIMIT),
            on_done=lambda found: self._arrived(generation, found),
            on_error=lambda error: self._poll_failed(generation, error),
            description="looking for new ledger entries",
            owner=self,
        )

    def _poll_failed(self, generation: int, error: BaseException) -> None:
        self._polling = False
        if generation == self._generation and not self._poll_broken:
            self._poll_broken = True  # reported once; polling goes on quietly until the database is back
            self.failed.emit(error)

    def _arrived(self, generation: int, found: NewEntries) -> None:
        self._polling = False
        self._poll_broken = False
        if generation != self._generation or self._window is None:
            return
        self._latest_id = max(self._latest_id, found.latest_id)
        if found.corrected:
            self._update_corrected(found.corrected)
            for original in found.corrected:
                row = self.row_of(original)
                if row >= 0:
                    self.dataChanged.emit(self.index(row, 0), self.index(row, COLUMNS - 1))
        if not found.ids:
            return
        self._known = {i for i in self._known | found.ids if i > self._latest_id - 2 * LOOKBACK}
        fits = len(self._head) + len(found.rows) <= HEAD_LIMIT
        above_window = bool(found.rows) and min(found.ids) > self._window.snapshot_id
        if self._query.newest_first and above_window and fits:
            # Newest first: each new entry goes where its id belongs (a straggler may land below newer ones).
            for entry in sorted(found.rows, key=lambda e: e.id):
                row = bisect.bisect_left([-e.id for e in self._head], -entry.id)
                self.beginInsertRows(QModelIndex(), row, row)
                self._head.insert(row, entry)
                self.endInsertRows()
        else:
            self.refresh()
        self.entries_arrived.emit(found.matching)

    # -- QAbstractTableModel -------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if parent.isValid() or self._window is None:
            return 0
        return len(self._head) + self._window.count

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else COLUMNS

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < COLUMNS:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            if section in (LedgerColumn.OCCURRED, LedgerColumn.RECORDED) and self._zone is not None:
                return f"{HEADERS[LedgerColumn(section)]} ({zone_label(self._zone)})"
            return HEADERS[LedgerColumn(section)]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return RIGHT if section in NUMERIC else LEFT
        if role == Qt.ItemDataRole.ToolTipRole:
            return {
                LedgerColumn.CORRECTS: "Reversals and replacements name the entry they correct",
                LedgerColumn.PERIOD: "The billing period the entry is billed in (* late: its own period was closed)",
                LedgerColumn.CHARGED: "What the entry charged a prepaid balance",
            }.get(LedgerColumn(section))
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # A paint asks every visible cell for several roles: the common answers come first and cheaply.
        if role not in SERVED_ROLES:
            return None
        row, column = index.row(), index.column()  # -1 for an invalid index
        if not 0 <= column < COLUMNS or self._window is None or not 0 <= row < len(self._head) + self._window.count:
            return None
        entry = self.entry_at(row)
        if entry is None:
            return self._placeholder(row, column, role)
        if role == DISPLAY:
            texts = self._texts.get(entry.id)
            if texts is None:
                if len(self._texts) >= TEXTS_KEPT:
                    self._texts.clear()
                texts = self._texts[entry.id] = tuple(self._display(entry, c) for c in range(COLUMNS))
            return texts[column]
        if role == ALIGNMENT:
            return RIGHT if column in NUMERIC else LEFT
        if role == FOREGROUND or role == FONT:
            if entry.kind == "usage" and entry.corrects is None and entry.id not in self._corrected:
                return None  # a plain entry: the view's own colours
        if role == Role.SortRole:
            return self._raw(entry, column)
        if role == Role.RowObjectRole:
            return entry
        if role == Role.EntryIdRole:
            return entry.id
        if role == Role.LoadedRole:
            return True
        if role == Role.CorrectedByRole:
            return self._corrected.get(entry.id)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return RIGHT if column in NUMERIC else LEFT
        if role == Qt.ItemDataRole.ForegroundRole:
            if entry.kind == "reversal":
                return QBrush(REVERSAL_COLOUR)
            if entry.id in self._corrected:
                return QBrush(CORRECTED_COLOUR)
            if entry.corrects is not None:
                return QBrush(REPLACEMENT_COLOUR)
            return None
        if role == Qt.ItemDataRole.FontRole:
            if entry.id in self._corrected and entry.kind == "usage":
                font = QFont()
                font.setStrikeOut(column == LedgerColumn.AMOUNT)
                font.setItalic(True)
                return font
            if entry.kind == "reversal":
                font = QFont()
                font.setItalic(True)
                return font
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(entry, column)
        return None

    def _placeholder(self, row: int, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if self._window is not None:
                self._request_page((row - len(self._head)) // self._page_size)
            return PLACEHOLDER if column == LedgerColumn.ID else ""
        if role == Role.LoadedRole:
            return False
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(PENDING_COLOUR)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return RIGHT if column in NUMERIC else LEFT
        return None

    def _display(self, entry: EntryRow, column: int) -> str:
        match column:
            case LedgerColumn.ID:
                return str(entry.id)
            case LedgerColumn.OCCURRED:
                return local_time_text(entry.occurred_at_us, self._zone) if self._zone else utc_text(entry.occurred_at_us)
            case LedgerColumn.CUSTOMER:
                return entry.customer
            case LedgerColumn.UNIT:
                return entry.unit
            case LedgerColumn.AMOUNT:
                return ("−" if entry.amount < 0 else "") + quantity_text(abs(entry.amount))
            case LedgerColumn.KIND:
                if entry.kind == "reversal":
                    return "reversal"
                if entry.corrects is not None:
                    return "replacement"
                if entry.id in self._corrected:
                    return "usage (corrected)"
                return "usage"
            case LedgerColumn.CORRECTS:
                if entry.corrects is not None:
                    return f"{'↩ reverses' if entry.kind == 'reversal' else '→ replaces'} #{entry.corrects}"
                pair = self._corrected.get(entry.id)
                if pair:
                    reversal, replacement = pair
                    return f"corrected by #{replacement}" if replacement else f"cancelled by #{reversal}"
                return ""
            case LedgerColumn.PERIOD:
                return entry.period + (" *" if entry.late else "")
            case LedgerColumn.SOURCE:
                return entry.source
            case LedgerColumn.ACTOR:
                return entry.actor
            case LedgerColumn.REQUEST_ID:
                return entry.request_id
            case LedgerColumn.NOTE:
                return (entry.note or "").replace("\n", " ")
            case LedgerColumn.CHARGED:
                return "" if entry.charged is None else quantity_text(entry.charged.normalize())
            case LedgerColumn.RECORDED:
                return local_time_text(entry.recorded_at_us, self._zone) if self._zone else utc_text(entry.recorded_at_us)
        return ""

    def _raw(self, entry: EntryRow, column: int) -> Any:
        return {
            LedgerColumn.ID: entry.id,
            LedgerColumn.OCCURRED: entry.occurred_at_us,
            LedgerColumn.CUSTOMER: entry.customer,
            LedgerColumn.UNIT: entry.unit,
            LedgerColumn.AMOUNT: entry.amount,
            LedgerColumn.KIND: entry.kind,
            LedgerColumn.CORRECTS: entry.corrects or 0,
            LedgerColumn.PERIOD: entry.period,
            LedgerColumn.SOURCE: entry.source,
            LedgerColumn.ACTOR: entry.actor,
            LedgerColumn.REQUEST_ID: entry.request_id,
            LedgerColumn.NOTE: entry.note or "",
            LedgerColumn.CHARGED: entry.charged,
            LedgerColumn.RECORDED: entry.recorded_at_us,
        }[LedgerColumn(column)]

    def _tooltip(self, entry: EntryRow, column: int) -> str | None:
        if column in (LedgerColumn.OCCURRED, LedgerColumn.RECORDED):
            instant = entry.occurred_at_us if column == LedgerColumn.OCCURRED else entry.recorded_at_us
            return utc_text(instant)
        if column == LedgerColumn.PERIOD and entry.late:
            return f"Late: occurred {utc_text(entry.occurred_at_us)} in a closed period, billed in {entry.period}"
        if column == LedgerColumn.CHARGED and entry.charged is not None:
            return f"Charged to the prepaid balance: {exact_money_text(entry.charged, '')}".rstrip()
        if column == LedgerColumn.NOTE and entry.note:
            return entry.note
        if entry.kind == "reversal":
            return f"Reversal of entry #{entry.corrects}: cancels its amount. Reason: {entry.note or '—'}"
        if entry.corrects is not None:
            return f"Replacement for entry #{entry.corrects}. Reason: {entry.note or '—'}"
        pair = self._corrected.get(entry.id)
        if pair:
            return f"Corrected: reversed by #{pair[0]}" + (f", replaced by #{pair[1]}" if pair[1] else " (new amount 0)")
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        key = SORT_KEYS.get(LedgerColumn(column)) if 0 <= column < len(LedgerColumn) else None
        if key is None:
            return
        descending = order == Qt.SortOrder.DescendingOrder
        if key == self._query.sort and descending == self._query.descending:
            return  # the order shown (or being opened) already; a view enabling sorting asks for it once
        self.set_query(LedgerQuery(self._query.where, key, descending))
