"""Regression: PySide6-Essentials 6.12.0 on Python 3.11 corrupts None's refcount when Qt calls a Python override
that returns None (pyproject pins <6.12 there). A million data() calls through Qt with roles the model does not
serve would drive the count to zero and crash the interpreter."""

from __future__ import annotations

import sys

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt

CALLS = 1_000_000


class _Model(QAbstractTableModel):
    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else 4

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else 2

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{index.row()},{index.column()}"
        return None  # every other role: the override returns None to C++


def test_data_returning_none_through_qt_keeps_none_alive(qtbot):
    model = _Model()
    index = model.index(1, 1)
    roles = [Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.UserRole + 7, Qt.ItemDataRole.FontRole]
    before = sys.getrefcount(None)
    for number in range(CALLS // len(roles)):
        for role in roles:
            # QModelIndex.data() is C++ calling the Python override, exactly as a view does when painting.
            if index.data(role) is not None:
                raise AssertionError("an unserved role must come back as None")
    after = sys.getrefcount(None)
    # On a broken binding the count falls by about one per call; here it may move a little either way.
    assert after > before - 1000, (before, after)
    assert index.data(Qt.ItemDataRole.DisplayRole) == "1,1"
