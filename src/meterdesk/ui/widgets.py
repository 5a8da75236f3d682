"""Small widgets the pages and dialogs share: the customer picker, field error labels, table set-up."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from PySide6.QtCore import QDateTime, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QCompleter, QHeaderView, QLabel, QTableView, QWidget

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_datetime(value: QDateTime) -> datetime:
    """A QDateTime as an aware UTC datetime, through integer milliseconds (no float on the way)."""
    return _EPOCH + timedelta(milliseconds=value.toMSecsSinceEpoch())


def error_label() -> QLabel:
    """The red line under a field that says what is wrong with it."""
    label = QLabel()
    label.setObjectName("FieldError")
    label.setStyleSheet("color: #b3261e;")
    label.setWordWrap(True)
    label.setVisible(False)
    return label


def setup_table(view: QTableView, *, stretch_last: bool = True) -> None:
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 10)
    view.horizontalHeader().setStretchLastSection(stretch_last)
    view.horizontalHeader().setHighlightSections(False)
    view.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)


class CustomerPicker(QComboBox):
    """An editable combo of customers ("acme — Acme Analytics"), searchable by id or name as you type."""

    changed = Signal()

    def __init__(self, catalog, parent: QWidget | None = None, *, allow_any: bool = False) -> None:
        super().__init__(parent)
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setToolTip("Type a customer id or name")
        self._allow_any = allow_any
        self._items = QStandardItemModel(self)
        self.setModel(self._items)
        completer = QCompleter(self._items, self)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.setCompleter(completer)
        self.lineEdit().setPlaceholderText("All customers" if allow_any else "Customer id or name")
        self.set_catalog(catalog)
        self.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.editTextChanged.connect(lambda _t: self.changed.emit())

    def set_catalog(self, catalog) -> None:
        current = self.customer_id()
        self.blockSignals(True)
        self._items.clear()
        if self._allow_any:
            item = QStandardItem("")
            item.setData("", Qt.ItemDataRole.UserRole)
            self._items.appendRow(item)
        for customer in catalog.customers:
            item = QStandardItem(f"{customer.id} — {customer.name}")
            item.setData(customer.id, Qt.ItemDataRole.UserRole)
            self._items.appendRow(item)
        self.blockSignals(False)
        self.set_customer(current)

    def set_customer(self, customer_id: str | None) -> None:
        for row in range(self._items.rowCount()):
            if self._items.item(row).data(Qt.ItemDataRole.UserRole) == (customer_id or ""):
                self.setCurrentIndex(row)
                return
        self.setEditText(customer_id or "")

    def customer_id(self) -> str:
        """The chosen customer's id: the item's, or the typed text up to " — "."""
        text = self.currentText().strip()
        for row in range(self._items.rowCount()):
            item = self._items.item(row)
            if item.text() == text:
                return item.data(Qt.ItemDataRole.UserRole) or ""
        return text.split(" — ", 1)[0].strip()
