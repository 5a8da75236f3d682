"""The customers list: plan, settlement mode, the current period's usage amount and the prepaid balance."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtCore import Qt

from meterdesk.services.overview import CustomerOverview
from meterdesk.ui.formatting import exact_money_text, money_text
from meterdesk.ui.models.base import RowTableModel
from meterdesk.ui.roles import Role

NEGATIVE = QColor("#a65f00")
OVER_LIMIT = QColor("#b3261e")


class CustomerColumn(IntEnum):
    ID = 0
    NAME = 1
    PLAN = 2
    MODE = 3
    USAGE = 4
    BALANCE = 5
    EMAIL = 6


class CustomersModel(RowTableModel[CustomerOverview]):
    Column = CustomerColumn
    headers = {
        CustomerColumn.ID: "ID",
        CustomerColumn.NAME: "Name",
        CustomerColumn.PLAN: "Plan",
        CustomerColumn.MODE: "Billing",
        CustomerColumn.USAGE: "Usage this period",
        CustomerColumn.BALANCE: "Prepaid balance",
        CustomerColumn.EMAIL: "E-mail",
    }
    tooltips = {
        CustomerColumn.ID: "The customer id your product reports usage with",
        CustomerColumn.MODE: "Invoiced at period close, or prepaid from a credit balance",
        CustomerColumn.USAGE: "Usage charges of the current billing period so far (base fee not included)",
        CustomerColumn.BALANCE: "Credits granted minus usage charged; flagged when negative or past the credit limit",
    }
    numeric = frozenset({CustomerColumn.USAGE, CustomerColumn.BALANCE})

    def display(self, item: CustomerOverview, column: int) -> str:
        match column:
            case CustomerColumn.ID:
                return item.id
            case CustomerColumn.NAME:
                return item.name
            case CustomerColumn.PLAN:
                return item.plan or "—"
            case CustomerColumn.MODE:
                return "Prepaid" if item.prepaid else "Invoice"
            case CustomerColumn.USAGE:
                return money_text(item.usage_amount, item.currency)
            case CustomerColumn.BALANCE:
                if item.balance is None:
                    return ""
                text = money_text(item.balance, item.currency)
                return f"⚠ {text}" if item.over_limit or item.negative else text
            case CustomerColumn.EMAIL:
                return item.email or ""
        return ""

    def sort_value(self, item: CustomerOverview, column: int) -> Any:
        match column:
            case CustomerColumn.ID:
                return item.id
            case CustomerColumn.NAME:
                return item.name.casefold()
            case CustomerColumn.PLAN:
                return item.plan or ""
            case CustomerColumn.MODE:
                return item.mode
            case CustomerColumn.USAGE:
                return item.usage_amount
            case CustomerColumn.BALANCE:
                return item.balance
            case CustomerColumn.EMAIL:
                return item.email or ""
        return None

    def extra(self, item: CustomerOverview, column: int, role: int) -> Any:
        if role == Role.FlagRole and column == CustomerColumn.BALANCE:
            return "over_limit" if item.over_limit else "negative" if item.negative else None
        if column != CustomerColumn.BALANCE or item.balance is None:
            return None
        if role == Qt.ItemDataRole.ForegroundRole and (item.over_limit or item.negative):
            return QBrush(OVER_LIMIT if item.over_limit else NEGATIVE)
        if role == Qt.ItemDataRole.FontRole and item.over_limit:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            text = f"Exact balance {exact_money_text(item.balance, item.currency)}; credit limit {money_text(item.credit_limit, item.currency)}"
            if item.over_limit:
                text += "\nOver the credit limit: recording usage reports over_limit, the product may stop serving."
            elif item.negative:
                text += "\nNegative, within the credit limit. Consider granting credits."
            return text
        return None

    def index_of(self, customer_id: str) -> int:
        return next((row for row, item in enumerate(self._rows) if item.id == customer_id), -1)
