"""API keys of the usage API: the list (name, scopes, created by and at, last used, revoked), Create and Revoke.

Everything goes through services/apikeys.py on the desk's workers. A new key's secret is shown once, in a
dialog with a Copy button; it is never stored (only its hash is) and never shown again.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from meterdesk.services.apikeys import SCOPES, ApiKeyInfo, CreatedKey, create_api_key, list_api_keys, revoke_api_key, validate_key_name
from meterdesk.ui.desk import Desk
from meterdesk.ui.dialogs.forms import FormDialog
from meterdesk.ui.formatting import local_time_text
from meterdesk.ui.messages import Level, MessageBar
from meterdesk.ui.models.base import RawSortProxy, RowTableModel
from meterdesk.ui.widgets import setup_table

SCOPE_HELP = {
    "usage:write": "record usage (POST /v1/usage, /v1/usage/batch)",
    "usage:read": "read summaries, entries and balances",
}


class KeyColumn(IntEnum):
    NAME = 0
    SCOPES = 1
    CREATED_AT = 2
    CREATED_BY = 3
    LAST_USED = 4
    STATUS = 5


class ApiKeysModel(RowTableModel[ApiKeyInfo]):
    Column = KeyColumn
    headers = {
        KeyColumn.NAME: "Name", KeyColumn.SCOPES: "Scopes", KeyColumn.CREATED_AT: "Created",
        KeyColumn.CREATED_BY: "Created by", KeyColumn.LAST_USED: "Last used", KeyColumn.STATUS: "Status",
    }
    tooltips = {
        KeyColumn.NAME: "The key's name is the actor of every entry it records (api:NAME)",
        KeyColumn.LAST_USED: "Updated at most once a minute",
    }

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.zone = None

    def _time(self, instant_us: int | None) -> str:
        if instant_us is None:
            return ""
        return local_time_text(instant_us, self.zone) if self.zone is not None else str(instant_us)

    def display(self, item: ApiKeyInfo, column: int) -> str:
        row = item.row
        match column:
            case KeyColumn.NAME:
                return row.name
            case KeyColumn.SCOPES:
                return ", ".join(row.scopes)
            case KeyColumn.CREATED_AT:
                return self._time(row.created_at)
            case KeyColumn.CREATED_BY:
                return row.created_by
            case KeyColumn.LAST_USED:
                return self._time(row.last_used_at) or "never"
            case KeyColumn.STATUS:
                return f"revoked {self._time(row.revoked_at)} by {row.revoked_by}" if item.revoked else "active"
        return ""

    def sort_value(self, item: ApiKeyInfo, column: int) -> Any:
        row = item.row
        return {
            KeyColumn.NAME: row.name.casefold(), KeyColumn.SCOPES: " ".join(row.scopes), KeyColumn.CREATED_AT: row.created_at,
            KeyColumn.CREATED_BY: row.created_by.casefold(), KeyColumn.LAST_USED: row.last_used_at or 0,
            KeyColumn.STATUS: row.revoked_at or 0,
        }[KeyColumn(column)]

    def extra(self, item: ApiKeyInfo, column: int, role: int) -> Any:
        if item.revoked and role == Qt.ItemDataRole.ForegroundRole:
            return QColor("#8a8a8a")
        if column == KeyColumn.STATUS and role == Qt.ItemDataRole.ForegroundRole:
            return QColor("#1b7a34")
        return None


class CreateKeyDialog(FormDialog):
    """Name and scopes of a new key; on success `done` carries the CreatedKey (with its secret)."""

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(desk, "Create API key", "&Create key", parent)
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. my-backend")
        self.add_field("name", "Name", self.name, lambda: self.problem_of(lambda: validate_key_name(self.name.text().strip())),
                       tip="Letters, digits, '_', '.' or '-'; the key's entries are recorded as api:NAME. Names are never reused.")
        scopes = QWidget()
        scope_layout = QVBoxLayout(scopes)
        scope_layout.setContentsMargins(0, 0, 0, 0)
        self.scope_boxes: dict[str, QCheckBox] = {}
        for scope in SCOPES:
            box = QCheckBox(f"{scope} — {SCOPE_HELP.get(scope, '')}")
            box.setChecked(True)
            box.toggled.connect(lambda _on: self.validate())
            scope_layout.addWidget(box)
            self.scope_boxes[scope] = box
        self.add_field("scope", "Scopes", scopes, lambda: None if self.scopes() else "Choose at least one scope")
        self.name.textChanged.connect(lambda _t: self.validate())
        self.validate()

    def scopes(self) -> tuple[str, ...]:
        return tuple(scope for scope, box in self.scope_boxes.items() if box.isChecked())

    def validate(self) -> bool:
        ok = super().validate()
        if not self.name.text().strip():  # an empty field is not an error yet, just not ready
            self.errors["name"].setVisible(False)
        return ok

    def work(self):
        name, scopes, actor = self.name.text().strip(), self.scopes(), self.desk.actor()
        return lambda ledger, job: create_api_key(ledger, name, scopes, actor=actor)


class KeyShownDialog(QDialog):
    """The new key's secret, shown this once, with a Copy button."""

    def __init__(self, created: CreatedKey, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"API key {created.info.name}")
        self.setMinimumWidth(640)
        heading = QLabel(f"<b>The key for {created.info.name}</b> ({', '.join(created.info.scopes)})")
        warning = QLabel("Copy it now: this is the only time it is shown. meterdesk keeps only a hash of it; "
                         "if it is lost, revoke this key and create a new one.")
        warning.setWordWrap(True)
        warning.setStyleSheet("color: #8a5300;")
        self.secret = QLineEdit(created.key)
        self.secret.setReadOnly(True)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.secret.setFont(mono)
        self.secret.setCursorPosition(0)
        self.copy_button = QPushButton("&Copy")
        self.copy_button.setToolTip("Copy the key to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        row = QHBoxLayout()
        row.addWidget(self.secret, 1)
        row.addWidget(self.copy_button)
        usage = QLabel("Send it as <code>Authorization: Bearer &lt;key&gt;</code>.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(warning)
        layout.addLayout(row)
        layout.addWidget(usage)
        layout.addWidget(buttons)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.secret.text())
        self.copy_button.setText("Copied")

    def done(self, result: int) -> None:
        self.secret.clear()  # the secret leaves the dialog with it
        super().done(result)


def confirm_revoke(parent: QWidget, name: str) -> bool:
    """Ask before revoking; the tests patch this."""
    answer = QMessageBox.question(
        parent, "Revoke API key",
        f"Revoke the API key {name!r}? Every request made with it is refused from the next one on, in every "
        "server. This cannot be undone; the name is not reused.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Yes


class ApiKeysPage(QWidget):
    """The keys of the open ledger; Create shows the new secret once, Revoke asks first."""

    key_created = Signal(object)  # CreatedKey
    key_revoked = Signal(object)  # ApiKeyInfo

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.model = ApiKeysModel(self)
        self.proxy = RawSortProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        setup_table(self.table)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(KeyColumn.NAME, Qt.SortOrder.AscendingOrder)
        for column, width in ((KeyColumn.NAME, 180), (KeyColumn.SCOPES, 190), (KeyColumn.CREATED_AT, 160),
                              (KeyColumn.CREATED_BY, 170), (KeyColumn.LAST_USED, 160)):
            self.table.setColumnWidth(column, width)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.create_button = QPushButton("Create key…")
        self.create_button.setToolTip("Create a key for a program that reports usage over HTTP")
        self.create_button.clicked.connect(self.create_key)
        self.revoke_button = QPushButton("Revoke…")
        self.revoke_button.setToolTip("Refuse every further request made with the selected key")
        self.revoke_button.clicked.connect(self.revoke_selected)
        intro = QLabel("Keys let your servers record usage and read summaries over HTTP (meterdesk serve). "
                       "A key's secret is shown once when it is created and stored only as a hash.")
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #555;")
        self.messages = MessageBar()
        top = QHBoxLayout()
        top.addWidget(intro, 1)
        top.addWidget(self.create_button)
        top.addWidget(self.revoke_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.messages)
        layout.addWidget(self.table, 1)
        self.shown_key: KeyShownDialog | None = None
        self._select_next: str | None = None  # the key just created, selected once the list is read again
        desk.ledger_changed.connect(lambda _ledger: self.refresh())
        self._update_buttons()
        self.refresh()

    # -- reading -----------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # "last used" moves while the desk is open: read again when shown
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        ledger = self.desk.ledger
        if ledger is None:
            self.model.set_rows([])
            self._update_buttons()
            return
        self.desk.run(lambda ledger, job: list_api_keys(ledger), on_done=lambda keys: self._listed(ledger, keys),
                      key="apikeys", description="reading the API keys", owner=self)

    def _listed(self, ledger, keys: list[ApiKeyInfo]) -> None:
        if ledger is not self.desk.ledger:
            return
        selected = self.selected()
        wanted, self._select_next = self._select_next or (selected.name if selected else None), None
        self.model.zone = ledger.timezone
        self.model.set_rows(keys)
        if wanted is not None:
            self.select(wanted)
        self._update_buttons()

    def selected(self) -> ApiKeyInfo | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.row_at(self.proxy.mapToSource(rows[0]).row())

    def select(self, name: str) -> None:
        for row in range(self.proxy.rowCount()):
            info = self.model.row_at(self.proxy.mapToSource(self.proxy.index(row, 0)).row())
            if info is not None and info.name == name:
                self.table.selectRow(row)
                return

    def _update_buttons(self) -> None:
        open_ledger = self.desk.ledger is not None
        self.create_button.setEnabled(open_ledger)
        selected = self.selected()
        self.revoke_button.setEnabled(open_ledger and selected is not None and not selected.revoked)

    # -- writing -----------------------------------------------------------------------------------
    def create_key(self) -> CreateKeyDialog | None:
        if self.desk.ledger is None:
            return None
        dialog = CreateKeyDialog(self.desk, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.done.connect(self._created)
        dialog.open()
        return dialog

    def _created(self, created: CreatedKey) -> None:
        self.shown_key = KeyShownDialog(created, self)
        self.shown_key.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.shown_key.open()
        self.messages.show_message(Level.SUCCESS, f"API key {created.info.name} created ({', '.join(created.info.scopes)})")
        self.key_created.emit(created)
        self._select_next = created.info.name
        self.refresh()

    def revoke_selected(self) -> None:
        info = self.selected()
        if info is None or info.revoked or self.desk.ledger is None:
            return
        if not confirm_revoke(self, info.name):
            return
        name, actor = info.name, self.desk.actor()
        self.revoke_button.setEnabled(False)
        self.desk.run(
            lambda ledger, job: revoke_api_key(ledger, name, actor=actor),
            on_done=self._revoked, on_error=self._revoke_failed, description=f"revoking the API key {name}", owner=self,
        )

    def _revoked(self, info: ApiKeyInfo) -> None:
        self.messages.show_message(Level.SUCCESS, f"API key {info.name} revoked: requests made with it are refused from now on")
        self.key_revoked.emit(info)
        self.refresh()

    def _revoke_failed(self, error: BaseException) -> None:
        self.messages.show_error(error, "revoking the API key")
        self.refresh()
