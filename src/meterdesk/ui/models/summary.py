"""A customer's period in tables: the per-unit summary lines and the invoice preview lines."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor

from meterdesk.services.billing import InvoiceLine
from meterdesk.services.summary import UnitSummary
from meterdesk.ui.formatting import money_text, quantity_text
from meterdesk.ui.models.base import RowTableModel


class SummaryColumn(IntEnum):
    UNIT = 0
    QUANTITY = 1
    INCLUDED = 2
    BILLABLE = 3
    AMOUNT = 4
    ENTRIES = 5
    CORRECTIONS = 6


class SummaryUnitsModel(RowTableModel[UnitSummary]):
    Column = SummaryColumn
    headers = {
        SummaryColumn.UNIT: "Unit",
        SummaryColumn.QUANTITY: "Quantity",
        SummaryColumn.INCLUDED: "Included",
        SummaryColumn.BILLABLE: "Billable",
        SummaryColumn.AMOUNT: "Amount",
        SummaryColumn.ENTRIES: "Entries",
        SummaryColumn.CORRECTIONS: "Corrections",
    }
    tooltips = {
        SummaryColumn.QUANTITY: "Aggregated over the period (sum, count or peak), corrections applied",
        SummaryColumn.INCLUDED: "Free allowance of the plan per period",
        SummaryColumn.BILLABLE: "Quantity above the allowance: what the charge prices",
    }
    numeric = frozenset(set(SummaryColumn) - {SummaryColumn.UNIT})

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.currency = "EUR"

    def set_summary(self, units, currency: str) -> None:
        self.currency = currency
        self.set_rows(units)

    def display(self, item: UnitSummary, column: int) -> str:
        match column:
            case SummaryColumn.UNIT:
                return f"{item.name} ({item.unit})"
            case SummaryColumn.QUANTITY:
                return quantity_text(item.quantity)
            case SummaryColumn.INCLUDED:
                return quantity_text(item.included)
            case SummaryColumn.BILLABLE:
                return quantity_text(item.billable)
            case SummaryColumn.AMOUNT:
                return money_text(item.amount, self.currency)
            case SummaryColumn.ENTRIES:
                return quantity_text(item.entries)
            case SummaryColumn.CORRECTIONS:
                return str(item.corrections) if item.corrections else ""
        return ""

    def sort_value(self, item: UnitSummary, column: int) -> Any:
        return (item.unit, item.quantity, item.included, item.billable, item.amount, item.entries, item.corrections)[column]


class InvoiceColumn(IntEnum):
    KIND = 0
    DESCRIPTION = 1
    QUANTITY = 2
    AMOUNT = 3


KIND_TEXT = {"base_fee": "Base fee", "usage": "Usage", "correction": "Late / corrections"}


class InvoiceLinesModel(RowTableModel[InvoiceLine]):
    Column = InvoiceColumn
    headers = {InvoiceColumn.KIND: "Line", InvoiceColumn.DESCRIPTION: "Description", InvoiceColumn.QUANTITY: "Quantity", InvoiceColumn.AMOUNT: "Amount"}
    numeric = frozenset({InvoiceColumn.QUANTITY, InvoiceColumn.AMOUNT})

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.currency = "EUR"

    def set_invoice(self, lines, currency: str) -> None:
        self.currency = currency
        self.set_rows(lines)

    def display(self, item: InvoiceLine, column: int) -> str:
        match column:
            case InvoiceColumn.KIND:
                return KIND_TEXT.get(item.kind, item.kind)
            case InvoiceColumn.DESCRIPTION:
                return item.description
            case InvoiceColumn.QUANTITY:
                return quantity_text(item.quantity)
            case InvoiceColumn.AMOUNT:
                return money_text(item.amount, self.currency)
        return ""

    def sort_value(self, item: InvoiceLine, column: int) -> Any:
        return (item.kind, item.description, item.quantity, item.amount)[column]

    def extra(self, item: InvoiceLine, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ToolTipRole and column == InvoiceColumn.DESCRIPTION:
            return item.description
        if role == Qt.ItemDataRole.ForegroundRole and item.kind == "correction":
            return QBrush(QColor("#8a5300"))
        return None
