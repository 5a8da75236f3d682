"""The custom item data roles of meterdesk's models: one place, so views and models agree on them."""

from __future__ import annotations

from enum import IntEnum

from PySide6.QtCore import Qt


class Role(IntEnum):
    """Roles beyond Qt's own. `SortRole` carries the raw value (a Decimal, an int, a str), never the text."""

    SortRole = Qt.ItemDataRole.UserRole + 1
    RowObjectRole = Qt.ItemDataRole.UserRole + 2  # the frozen row behind the index (EntryRow, CustomerOverview, ...)
    EntryIdRole = Qt.ItemDataRole.UserRole + 3
    CorrectedByRole = Qt.ItemDataRole.UserRole + 4  # (reversal id, replacement id) of a corrected entry
    LoadedRole = Qt.ItemDataRole.UserRole + 5  # False while a windowed row still waits for its page
    ErrorRole = Qt.ItemDataRole.UserRole + 6  # validation message of an editable cell, or None
    FlagRole = Qt.ItemDataRole.UserRole + 7  # "negative" / "over_limit" for balances, else None
