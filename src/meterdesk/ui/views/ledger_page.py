"""The usage ledger page: filters over a windowed table of every entry, newest first, live."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QDate, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from meterdesk.domain.errors import MeterdeskError
from meterdesk.services.entries import EntryFilter, EntryRow
from meterdesk.services.ledger_pages import LedgerQuery
from meterdesk.ui.desk import Desk
from meterdesk.ui.formatting import quantity_text
from meterdesk.ui.models.ledger import COLUMN_OF_SORT, LedgerColumn, LedgerTableModel
from meterdesk.ui.widgets import CustomerPicker, setup_table

COLUMN_WIDTHS = {
    LedgerColumn.ID: 80,
    LedgerColumn.OCCURRED: 165,
    LedgerColumn.CUSTOMER: 110,
    LedgerColumn.UNIT: 95,
    LedgerColumn.AMOUNT: 100,
    LedgerColumn.KIND: 120,
    LedgerColumn.CORRECTS: 130,
    LedgerColumn.PERIOD: 75,
    LedgerColumn.SOURCE: 60,
    LedgerColumn.ACTOR: 120,
    LedgerColumn.REQUEST_ID: 170,
    LedgerColumn.NOTE: 220,
    LedgerColumn.CHARGED: 120,
    LedgerColumn.RECORDED: 165,
}


class LedgerView(QWidget):
    """Filter bar + table. With `fixed_customer` it shows one customer's entries (customer detail)."""

    correct_requested = Signal(object)  # EntryRow
    record_requested = Signal(str)  # customer id ('' = none chosen)
    count_changed = Signal(int)

    def __init__(self, desk: Desk, parent: QWidget | None = None, *, fixed_customer: bool = False) -> None:
        super().__init__(parent)
        self.desk = desk
        self.fixed_customer = fixed_customer
        self._customer = ""
        self.status = QLabel()
        self.status.setStyleSheet("color: #555;")
        self.model = LedgerTableModel(desk.runner, desk.ledger_provider, parent=self)
        self.model.failed.connect(lambda error: desk.failed.emit(error, "reading the ledger"))
        self.model.window_opened.connect(self._window_opened)
        self.model.window_settled.connect(self._window_opened)
        self.model.entries_arrived.connect(self._arrived)
        self.model.loading_changed.connect(lambda _loading: self._update_status())
        self.model.modelAboutToBeReset.connect(self._remember_scroll)
        self.model.modelReset.connect(self._restore_scroll)
        self._scroll: tuple[LedgerQuery, int] | None = None

        self.customer = CustomerPicker(desk.catalog, allow_any=True)
        self.customer.setMinimumWidth(200)
        self.unit = QComboBox()
        self.period = QComboBox()
        self.use_dates = QCheckBox("Dates")
        self.use_dates.setToolTip("Filter by when the usage occurred (days in the billing time zone)")
        self.date_from = QDateEdit(QDate.currentDate().addDays(-7))
        self.date_to = QDateEdit(QDate.currentDate())
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
        self.kind = QComboBox()
        for text, value in (("All kinds", ""), ("Usage", "usage"), ("Reversals", "reversal")):
            self.kind.addItem(text, value)
        self.source = QComboBox()
        for text, value in (("All sources", ""), ("API", "api"), ("Command line", "cli"), ("Import", "import"), ("Desk (GUI)", "gui")):
            self.source.addItem(text, value)
        self.text = QLineEdit()
        self.text.setPlaceholderText("Search note or request id  (Ctrl+F)")
        self.text.setClearButtonEnabled(True)
        self.text.setMinimumWidth(220)
        self._chain: int | None = None  # "entry #n and its corrections", set from the context menu
        self.chain_button = QPushButton()
        self.chain_button.setToolTip("Showing one entry and the entries that correct it; click to show every entry again")
        self.chain_button.clicked.connect(self.clear_filters)
        self.chain_button.setVisible(False)
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.clicked.connect(self.clear_filters)
        self.filter_error = QLabel()
        self.filter_error.setStyleSheet("color: #b3261e;")
        self.filter_error.setVisible(False)

        bar = QHBoxLayout()
        bar.setSpacing(6)
        if not fixed_customer:
            bar.addWidget(self.customer)
        bar.addWidget(self.unit)
        bar.addWidget(self.period)
        bar.addWidget(self.use_dates)
        bar.addWidget(self.date_from)
        bar.addWidget(QLabel("–"))
        bar.addWidget(self.date_to)
        bar.addWidget(self.kind)
        bar.addWidget(self.source)
        bar.addWidget(self.text, 1)
        bar.addWidget(self.chain_button)
        bar.addWidget(self.clear_button)

        self.table = QTableView()
        setup_table(self.table)
        self.table.setModel(self.model)
        # The indicator first: enabling sorting sorts by it, and that is the model's order already.
        self.table.horizontalHeader().setSortIndicator(LedgerColumn.ID, Qt.SortOrder.DescendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        for column, width in COLUMN_WIDTHS.items():
            self.table.setColumnWidth(column, width)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(lambda index: self.request_correction())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.filter_error)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(self.apply_filters)
        for signal in (self.customer.changed, self.unit.currentIndexChanged, self.period.currentIndexChanged, self.kind.currentIndexChanged,
                       self.source.currentIndexChanged, self.text.textChanged, self.date_from.dateChanged, self.date_to.dateChanged):
            signal.connect(self._filters_edited)
        self.use_dates.toggled.connect(self._dates_toggled)
        desk.catalog_changed.connect(self._catalog_changed)
        desk.ledger_changed.connect(self._ledger_changed)
        desk.entries_appeared.connect(lambda _latest: self.model.poll())
        self._fill_units_and_periods(desk.catalog)  # the customer picker was made with this catalog
        if desk.ledger is not None:
            self.apply_filters()  # a page made on an open ledger shows it at once

    # -- filters -------------------------------------------------------------------------------------
    def _catalog_changed(self, catalog) -> None:
        self.customer.set_catalog(catalog)
        self._fill_units_and_periods(catalog)

    def _fill_units_and_periods(self, catalog) -> None:
        self._fill(self.unit, [("All units", "")] + [(f"{u.unit.name} ({u.code})", u.code) for u in catalog.units])
        periods = sorted({self._current_period()} | self._recent_periods(), reverse=True)
        self._fill(self.period, [("All periods", "")] + [(p, p) for p in periods])

    def _current_period(self) -> str:
        from meterdesk.services.context import now_us

        ledger = self.desk.ledger
        return str(ledger.timeline.period_of(now_us())) if ledger else QDate.currentDate().toString("yyyy-MM")

    def _recent_periods(self) -> set[str]:
        date = QDate.currentDate()
        return {date.addMonths(-n).toString("yyyy-MM") for n in range(0, 13)}

    @staticmethod
    def _fill(combo: QComboBox, items: list[tuple[str, str]]) -> None:
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for text, value in items:
            combo.addItem(text, value)
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.blockSignals(False)

    def _dates_toggled(self, on: bool) -> None:
        self.date_from.setEnabled(on)
        self.date_to.setEnabled(on)
        self._filters_edited()

    def _filters_edited(self, *_args) -> None:
        self._debounce.start()

    def set_customer(self, customer_id: str) -> None:
        self._customer = customer_id
        if not self.fixed_customer:
            self.customer.set_customer(customer_id)
        self.apply_filters()

    def set_period(self, period: str) -> None:
        index = self.period.findData(period)
        if index < 0:
            self.period.addItem(period, period)
            index = self.period.findData(period)
        self.period.blockSignals(True)
        self.period.setCurrentIndex(index)
        self.period.blockSignals(False)
        self.apply_filters()

    def clear_filters(self) -> None:
        self._reset_filter_widgets()
        self._set_chain(None)
        self.apply_filters()

    def _reset_filter_widgets(self) -> None:
        for combo in (self.unit, self.period, self.kind, self.source):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        if not self.fixed_customer:
            self.customer.set_customer("")
        self.use_dates.setChecked(False)
        self.text.clear()

    def current_filter(self) -> EntryFilter:
        """The filter as typed; InvalidInput names the field when something cannot be used."""
        ledger = self.desk.ledger
        customer = self._customer if self.fixed_customer else self.customer.customer_id()
        start = end = None
        if self.use_dates.isChecked():
            start = self.date_from.date().toString("yyyy-MM-dd")
            end = self.date_to.date().addDays(1).toString("yyyy-MM-dd")  # "to" is inclusive on screen
        typed = EntryFilter.from_strings(
            ledger, customer=customer or None, unit=self.unit.currentData() or None, start=start, end=end,
            period=self.period.currentData() or None, kind=self.kind.currentData() or None,
            source=self.source.currentData() or None, text=self.text.text(),
        )
        return typed if self._chain is None else replace(typed, chain=self._chain)

    def apply_filters(self) -> None:
        self._debounce.stop()
        if self.desk.ledger is None or (self.fixed_customer and not self._customer):
            return
        try:
            where = self.current_filter()
        except MeterdeskError as error:
            self.filter_error.setText(str(error))
            self.filter_error.setVisible(True)
            return
        self.filter_error.setVisible(False)
        query = self.model.query
        self.model.set_query(LedgerQuery(where, query.sort, query.descending))
        self._update_status()

    def focus_filter(self) -> None:
        self.text.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.text.selectAll()

    # -- table -------------------------------------------------------------------------------------
    def _ledger_changed(self, ledger) -> None:
        self.model.clear()
        if ledger is not None and (not self.fixed_customer or self._customer):
            self.apply_filters()

    def refresh(self) -> None:
        self.model.refresh()

    def _remember_scroll(self) -> None:
        # Only a window that was on screen has a place to keep; restoring "the top" after a first open
        # would undo a scroll made while the rows were arriving.
        self._scroll = (self.model.query, self.table.verticalScrollBar().value()) if self.model.window is not None else None

    def _restore_scroll(self) -> None:
        # A reopened window of the same query (new entries in a non-default order) keeps its place.
        if self._scroll and self._scroll[0] == self.model.query:
            value = self._scroll[1]
            QTimer.singleShot(0, lambda: self.table.verticalScrollBar().setValue(value))
        query = self.model.query
        self.table.horizontalHeader().blockSignals(True)
        self.table.horizontalHeader().setSortIndicator(
            COLUMN_OF_SORT[query.sort], Qt.SortOrder.DescendingOrder if query.descending else Qt.SortOrder.AscendingOrder
        )
        self.table.horizontalHeader().blockSignals(False)

    def _window_opened(self, count: int) -> None:
        self.count_changed.emit(count)
        self._update_status()

    def _arrived(self, count: int) -> None:
        self._update_status(f"{quantity_text(count)} new {'entry' if count == 1 else 'entries'} just arrived")

    def _update_status(self, note: str = "") -> None:
        rows = self.model.rowCount()
        query = self.model.query
        parts = [f"{'at least ' if self.model.counting else ''}{quantity_text(rows)} {'entry' if rows == 1 else 'entries'}"]
        parts.append("newest first" if query.newest_first else f"sorted by {query.sort.value.replace('_', ' ')}{' (descending)' if query.descending else ''}")
        parts.append("live: new entries appear by themselves")
        if self.model.loading:
            parts.insert(0, "Loading…")
        elif self.model.counting:
            parts.insert(0, "Counting…")
        if note:
            parts.append(note)
        self.status.setText("  ·  ".join(parts))

    def selected_entry(self) -> EntryRow | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        index = rows[0] if rows else self.table.currentIndex()
        return self.model.entry_at(index.row()) if index.isValid() else None

    def request_correction(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.correct_requested.emit(entry)

    def _context_menu(self, position) -> None:
        entry = self.selected_entry()
        menu = QMenu(self)
        correct = QAction("Correct this entry…", menu)
        correct.setShortcut(QKeySequence("Ctrl+E"))
        correct.setEnabled(entry is not None and entry.kind == "usage" and self.model.corrected_by(entry.id) is None)
        correct.triggered.connect(self.request_correction)
        menu.addAction(correct)
        if entry is not None and entry.corrects:
            show = QAction(f"Show entry #{entry.corrects} and its corrections", menu)
            show.triggered.connect(lambda: self.show_chain(entry.corrects))
            menu.addAction(show)
        record = QAction("Record usage for this customer…", menu)
        record.triggered.connect(lambda: self.record_requested.emit(entry.customer if entry else ""))
        menu.addAction(record)
        copy = QAction("Copy request id", menu)
        copy.setEnabled(entry is not None)
        copy.triggered.connect(lambda: self._copy(entry.request_id if entry else ""))
        menu.addAction(copy)
        menu.exec(self.table.viewport().mapToGlobal(position))

    def show_chain(self, original_id: int) -> None:
        """Entry `original_id` with its reversal and replacement (other filters typed later narrow them)."""
        self._reset_filter_widgets()
        self._set_chain(original_id)
        self.apply_filters()

    def _set_chain(self, original_id: int | None) -> None:
        self._chain = original_id
        self.chain_button.setText(f"Entry #{original_id} and its corrections  ✕" if original_id is not None else "")
        self.chain_button.setVisible(original_id is not None)

    @staticmethod
    def _copy(text: str) -> None:
        from PySide6.QtGui import QGuiApplication

        QGuiApplication.clipboard().setText(text)

