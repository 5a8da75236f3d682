"""A read-only table over a list of frozen rows: each model names its columns and how a cell looks."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any, ClassVar, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt

from meterdesk.ui.roles import Role

T = TypeVar("T")
Index = QModelIndex | QPersistentModelIndex

RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter


class RowTableModel(QAbstractTableModel, Generic[T]):
    """Subclasses set `Column` (an IntEnum), `headers`, and implement `display` and `sort_value`."""

    Column: ClassVar[type[IntEnum]]
    headers: ClassVar[dict[int, str]]
    tooltips: ClassVar[dict[int, str]] = {}
    numeric: ClassVar[frozenset[int]] = frozenset()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[T] = []

    # -- content ------------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[T]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[T]:
        return list(self._rows)

    def row_at(self, row: int) -> T | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    # -- what subclasses describe --------------------------------------------------------------
    def display(self, item: T, column: int) -> str:
        raise NotImplementedError

    def sort_value(self, item: T, column: int) -> Any:
        raise NotImplementedError

    def extra(self, item: T, column: int, role: int) -> Any:
        """Other roles (colours, fonts, tooltips) for one cell; None when the role is not served."""
        return None

    # -- QAbstractTableModel -------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.Column)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        item = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.display(item, column)
        if role == Role.SortRole:
            return self.sort_value(item, column)
        if role == Role.RowObjectRole:
            return item
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return RIGHT if column in self.numeric else LEFT
        return self.extra(item, column, role)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.Column):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltips.get(section)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return RIGHT if section in self.numeric else LEFT
        return None


class RawSortProxy(QSortFilterProxyModel):
    """Sorts by `Role.SortRole` compared as Python values (Decimal, int, str), and searches every column."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(Role.SortRole)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)

    def lessThan(self, left: Index, right: Index) -> bool:
        a = left.data(Role.SortRole)
        b = right.data(Role.SortRole)
        if a is None or b is None:
            return a is None and b is not None
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)
