"""Units and plans as tables, and the editable tier table of the plan editor."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from meterdesk.services.catalog import PlanInfo, UnitRow
from meterdesk.ui.formatting import money_text
from meterdesk.ui.models.base import RIGHT, Index, RowTableModel
from meterdesk.ui.roles import Role


class UnitColumn(IntEnum):
    CODE = 0
    NAME = 1
    DECIMALS = 2
    AGGREGATION = 3


AGGREGATION_TEXT = {
    "sum": "sum — total of the amounts",
    "count": "count — number of entries",
    "max": "max — peak of the period",
}


class UnitsModel(RowTableModel[UnitRow]):
    Column = UnitColumn
    headers = {UnitColumn.CODE: "Code", UnitColumn.NAME: "Name", UnitColumn.DECIMALS: "Decimals", UnitColumn.AGGREGATION: "Aggregation over a period"}
    numeric = frozenset({UnitColumn.DECIMALS})

    def display(self, item: UnitRow, column: int) -> str:
        unit = item.unit
        return {
            UnitColumn.CODE: unit.code,
            UnitColumn.NAME: unit.name,
            UnitColumn.DECIMALS: str(unit.decimals),
            UnitColumn.AGGREGATION: AGGREGATION_TEXT.get(str(unit.aggregation), str(unit.aggregation)),
        }[UnitColumn(column)]

    def sort_value(self, item: UnitRow, column: int) -> Any:
        unit = item.unit
        return {UnitColumn.CODE: unit.code, UnitColumn.NAME: unit.name.casefold(), UnitColumn.DECIMALS: unit.decimals, UnitColumn.AGGREGATION: str(unit.aggregation)}[UnitColumn(column)]


class PlanColumn(IntEnum):
    CODE = 0
    NAME = 1
    CURRENCY = 2
    BASE_FEE = 3
    CHARGES = 4
    VERSION = 5


class PlansModel(RowTableModel[PlanInfo]):
    Column = PlanColumn
    headers = {PlanColumn.CODE: "Code", PlanColumn.NAME: "Name", PlanColumn.CURRENCY: "Currency", PlanColumn.BASE_FEE: "Base fee", PlanColumn.CHARGES: "Charges", PlanColumn.VERSION: "Version"}
    numeric = frozenset({PlanColumn.BASE_FEE, PlanColumn.VERSION})

    def display(self, item: PlanInfo, column: int) -> str:
        plan = item.plan
        match column:
            case PlanColumn.CODE:
                return plan.code
            case PlanColumn.NAME:
                return plan.name
            case PlanColumn.CURRENCY:
                return plan.currency
            case PlanColumn.BASE_FEE:
                return money_text(plan.base_fee, plan.currency)
            case PlanColumn.CHARGES:
                return ", ".join(f"{c.unit} ({c.model})" for c in plan.charges) or "—"
            case PlanColumn.VERSION:
                return f"v{item.version}" + (" · in use" if item.in_use else "")
        return ""

    def sort_value(self, item: PlanInfo, column: int) -> Any:
        plan = item.plan
        return {
            PlanColumn.CODE: plan.code,
            PlanColumn.NAME: plan.name.casefold(),
            PlanColumn.CURRENCY: plan.currency,
            PlanColumn.BASE_FEE: plan.base_fee,
            PlanColumn.CHARGES: len(plan.charges),
            PlanColumn.VERSION: item.version,
        }[PlanColumn(column)]

    def extra(self, item: PlanInfo, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ToolTipRole and column == PlanColumn.CHARGES:
            return "\n".join(f"{c.unit}: {c.model}" + (f", {c.included} included" if c.included else "") for c in item.plan.charges) or None
        if role == Qt.ItemDataRole.ToolTipRole and column == PlanColumn.VERSION and item.in_use:
            return "Invoices or prepaid charges used this plan: saving it makes a new version for the next period"
        return None


class TierColumn(IntEnum):
    UP_TO = 0
    UNIT_PRICE = 1
    FLAT_FEE = 2


@dataclass
class TierDraft:
    """A tier as typed: text, validated by the domain when the plan is built."""

    up_to: str = ""
    unit_price: str = "0"
    flat_fee: str = ""


class TierTableModel(QAbstractTableModel):
    """The editable tiers of a graduated or volume charge; an empty "up to" means open-ended (the last tier)."""

    Column = TierColumn
    edited = Signal()
    headers = {TierColumn.UP_TO: "Up to (inclusive)", TierColumn.UNIT_PRICE: "Unit price", TierColumn.FLAT_FEE: "Flat fee"}

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._tiers: list[TierDraft] = []
        self._errors: dict[tuple[int, int], str] = {}

    def tiers(self) -> list[TierDraft]:
        return [TierDraft(t.up_to, t.unit_price, t.flat_fee) for t in self._tiers]

    def set_tiers(self, tiers: list[TierDraft]) -> None:
        self.beginResetModel()
        self._tiers = [TierDraft(t.up_to, t.unit_price, t.flat_fee) for t in tiers]
        self._errors = {}
        self.endResetModel()

    def as_dicts(self) -> list[dict]:
        result = []
        for tier in self._tiers:
            entry: dict[str, str | None] = {"up_to": tier.up_to.strip() or None, "unit_price": tier.unit_price.strip() or "0"}
            if tier.flat_fee.strip():
                entry["flat_fee"] = tier.flat_fee.strip()
            result.append(entry)
        return result

    def set_error(self, row: int | None, column: int | None, message: str | None) -> None:
        """Mark one cell as the one the domain refused (or clear every mark with row None)."""
        old = set(self._errors)
        self._errors = {} if row is None or message is None else {(row, column if column is not None else 0): message}
        for r, c in old | set(self._errors):
            if 0 <= r < len(self._tiers):
                cell = self.index(r, c)
                self.dataChanged.emit(cell, cell)

    def add_tier(self) -> None:
        row = len(self._tiers)
        self.beginInsertRows(QModelIndex(), row, row)
        self._tiers.append(TierDraft())
        self.endInsertRows()
        self.edited.emit()

    def remove_tier(self, row: int) -> None:
        if 0 <= row < len(self._tiers):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._tiers[row]
            self.endRemoveRows()
            self.edited.emit()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._tiers)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(TierColumn)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def _value(self, row: int, column: int) -> str:
        tier = self._tiers[row]
        return (tier.up_to, tier.unit_price, tier.flat_fee)[column]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._tiers):
            return None
        row, column = index.row(), index.column()
        value = self._value(row, column)
        if role == Qt.ItemDataRole.DisplayRole:
            if column == TierColumn.UP_TO and not value.strip():
                return "∞ (open-ended)"  # only the last tier may be; the domain says so for any other
            return value
        if role == Qt.ItemDataRole.EditRole:
            return value
        if role == Role.SortRole:
            return value
        if role == Role.ErrorRole:
            return self._errors.get((row, column))
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return RIGHT
        if role == Qt.ItemDataRole.BackgroundRole and (row, column) in self._errors:
            return QBrush(QColor("#fbd5d2"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._errors.get((row, column)) or (
                "Leave empty on the last tier: it is open-ended" if column == TierColumn.UP_TO else None
            )
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not 0 <= index.row() < len(self._tiers):
            return False
        text = "" if value is None else str(value).strip()
        tier = self._tiers[index.row()]
        match index.column():
            case TierColumn.UP_TO:
                tier.up_to = "" if text.startswith("∞") else text
            case TierColumn.UNIT_PRICE:
                tier.unit_price = text
            case TierColumn.FLAT_FEE:
                tier.flat_fee = text
            case _:
                return False
        self.dataChanged.emit(index, index)
        self.edited.emit()
        return True

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.headers.get(section)
        return f"Tier {section + 1}" if 0 <= section < len(self._tiers) else None
