"""The customers page: find a customer, see its plan, this period's usage and its balance, act on it."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QTableView, QVBoxLayout, QWidget

from meterdesk.services.overview import CustomerOverview
from meterdesk.ui.desk import Catalog, Desk
from meterdesk.ui.models.base import RawSortProxy
from meterdesk.ui.models.customers import CustomerColumn, CustomersModel
from meterdesk.ui.roles import Role
from meterdesk.ui.widgets import setup_table


class CustomersPage(QWidget):
    open_requested = Signal(str)  # customer id: show its detail
    record_requested = Signal(str)
    add_requested = Signal()
    edit_requested = Signal(object)  # CustomerOverview
    assign_requested = Signal(object)
    grant_requested = Signal(object)

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.model = CustomersModel(self)
        self.proxy = RawSortProxy(self)
        self.proxy.setSourceModel(self.model)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by id, name, plan or e-mail  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.search.textChanged.connect(lambda _t: self._update_status())
        self.search.returnPressed.connect(self._open_first_match)
        buttons = QHBoxLayout()
        buttons.addWidget(self.search, 1)
        self.actions: dict[str, QPushButton] = {}
        for name, text, tip, needs_selection in (
            ("open", "Open", "Show the summary, invoice and entries of the selected customer (Enter)", True),
            ("record", "Record usage…", "Record usage for the selected customer (Ctrl+R)", False),
            ("grant", "Grant credits…", "Top up the prepaid balance of the selected customer (Ctrl+G)", True),
            ("assign", "Assign plan…", "Move the selected customer to another plan", True),
            ("edit", "Edit…", "Change name, e-mail or credit limit", True),
            ("add", "Add customer…", "Add a customer on a plan (Ctrl+N)", False),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setProperty("needs_selection", needs_selection)
            button.clicked.connect(lambda _c=False, n=name: self._act(n))
            buttons.addWidget(button)
            self.actions[name] = button

        self.table = QTableView()
        setup_table(self.table)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(CustomerColumn.ID, Qt.SortOrder.AscendingOrder)
        for column, width in {CustomerColumn.ID: 120, CustomerColumn.NAME: 220, CustomerColumn.PLAN: 110, CustomerColumn.MODE: 90,
                              CustomerColumn.USAGE: 160, CustomerColumn.BALANCE: 160}.items():
            self.table.setColumnWidth(column, width)
        self.table.doubleClicked.connect(lambda index: self._act("open"))
        self.table.activated.connect(lambda index: self._act("open"))
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.status = QLabel()
        self.status.setStyleSheet("color: #555;")
        self.empty = QLabel("No customers yet. Add one with “Add customer…”, or try the demo: meterdesk --demo")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #777; padding: 30px;")
        self.empty.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.status)
        desk.catalog_changed.connect(self.show_catalog)
        self.show_catalog(desk.catalog)

    def show_catalog(self, catalog: Catalog) -> None:
        selected = self.selected()
        self.model.set_rows(catalog.customers)
        if selected is not None:
            self.select(selected.id)
        self.empty.setVisible(self.desk.ledger is not None and not catalog.customers)
        self._update_status()
        self._update_buttons()

    def _update_status(self) -> None:
        rows = self.model.rows()
        shown = self.proxy.rowCount()
        attention = [c for c in rows if c.negative or c.over_limit]
        text = f"{shown} of {len(rows)} customers" if shown != len(rows) else f"{len(rows)} customers"
        if rows:
            text += f"  ·  usage this period ({rows[0].period}) so far"
        if attention:
            over = sum(1 for c in attention if c.over_limit)
            text += f"  ·  ⚠ {len(attention)} prepaid balance{'s' if len(attention) != 1 else ''} negative" + (f", {over} over the credit limit" if over else "")
        self.status.setText(text)

    def _update_buttons(self) -> None:
        customer = self.selected()
        for name, button in self.actions.items():
            enabled = customer is not None or not button.property("needs_selection")
            if name == "grant":
                enabled = customer is not None and customer.prepaid
            button.setEnabled(enabled and self.desk.ledger is not None)

    def selected(self) -> CustomerOverview | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return index.siblingAtColumn(0).data(Role.RowObjectRole)

    def select(self, customer_id: str) -> None:
        row = self.model.index_of(customer_id)
        if row < 0:
            return
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if index.isValid():
            self.table.setCurrentIndex(index)
            self.table.selectRow(index.row())

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def _open_first_match(self) -> None:
        if self.proxy.rowCount():
            self.table.setCurrentIndex(self.proxy.index(0, 0))
            self._act("open")

    def _act(self, name: str) -> None:
        customer = self.selected()
        if name == "add":
            self.add_requested.emit()
        elif name == "record":
            self.record_requested.emit(customer.id if customer else "")
        elif customer is None:
            return
        elif name == "open":
            self.open_requested.emit(customer.id)
        elif name == "edit":
            self.edit_requested.emit(customer)
        elif name == "assign":
            self.assign_requested.emit(customer)
        elif name == "grant":
            self.grant_requested.emit(customer)

    def index_for(self, customer_id: str) -> QModelIndex:
        row = self.model.index_of(customer_id)
        return self.proxy.mapFromSource(self.model.index(row, 0)) if row >= 0 else QModelIndex()
