"""Settings: which database, who is at the desk, and the billing time zone of a new ledger."""

from __future__ import annotations

import os
import zoneinfo

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from meterdesk.domain.errors import MeterdeskError
from meterdesk.domain.periods import load_timezone
from meterdesk.services.ledgers import describe_url, resolve_url
from meterdesk.services.overview import LedgerProbe, probe_ledger
from meterdesk.ui.desk import Desk
from meterdesk.ui.messages import explain
from meterdesk.ui.widgets import error_label


class SettingsDialog(QDialog):
    """Edits AppSettings; the URL is tested on a worker before it can be saved."""

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        settings = desk.settings
        self.setWindowTitle("Settings")
        self.setMinimumWidth(620)
        self.probe: LedgerProbe | None = None
        self._tested_url: str | None = None
        self.database_changed = False  # set on saving: whether the database URL differs from before

        self.url = QLineEdit(settings.database_url)
        self.url.setPlaceholderText(f"empty: {describe_url(resolve_url(None))}")
        self.url.setToolTip("postgresql+psycopg://user:password@host/dbname for a shared ledger, or a SQLite file path")
        self.test = QPushButton("&Test connection")
        self.test.clicked.connect(self.test_connection)
        url_row = QHBoxLayout()
        url_row.addWidget(self.url, 1)
        url_row.addWidget(self.test)
        self.url_status = QLabel()
        self.url_status.setWordWrap(True)
        self.staff = QLineEdit(settings.staff_name)
        self.staff.setPlaceholderText(desk.settings.actor())
        self.staff.setToolTip("Recorded as the actor on every entry, correction and change you make")
        self.timezone = QComboBox()
        self.timezone.setEditable(True)
        self.timezone.addItems(sorted(zoneinfo.available_timezones()))
        self.timezone.setCurrentText(settings.new_ledger_timezone or os.environ.get("METERDESK_TIMEZONE", "UTC"))
        self.timezone.setToolTip("Billing periods are calendar months in this time zone. It is fixed when a ledger is created.")
        self.timezone_note = QLabel()
        self.timezone_note.setWordWrap(True)
        self.timezone_note.setStyleSheet("color: #555;")
        self.timezone_error = error_label()
        current = desk.ledger
        open_now = QLabel(f"{current.name} — billing time zone {getattr(current.timezone, 'key', current.timezone)}" if current else "none")
        open_now.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Open ledger", open_now)
        form.addRow("Database URL", url_row)
        form.addRow("", self.url_status)
        form.addRow("&Staff name", self.staff)
        form.addRow("Billing &time zone", self.timezone)
        form.addRow("", self.timezone_note)
        form.addRow("", self.timezone_error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.accept_settings)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.url.textChanged.connect(self._url_edited)
        self.timezone.currentTextChanged.connect(self._validate)
        self.staff.textChanged.connect(self._validate)
        self._url_edited()
        self.test_connection()

    def url_changed(self) -> bool:
        return self.url.text().strip() != self.desk.settings.database_url

    def _url_edited(self) -> None:
        self.probe = None
        self._tested_url = None
        self.url_status.setText("Not tested yet." if self.url_changed() else "")
        self.timezone.setEnabled(False)
        self.timezone_note.setText("Test the connection to see whether the ledger exists.")
        self._validate()

    def test_connection(self) -> None:
        url = self.url.text().strip() or None
        self.url_status.setStyleSheet("color: #555;")
        self.url_status.setText("Connecting…")
        self.test.setEnabled(False)
        self.desk.runner.submit(
            lambda job: probe_ledger(url),
            on_done=lambda probe, typed=url: self._probed(typed, probe),
            on_error=lambda error, typed=url: self._probe_failed(typed, error),
            key=f"probe-{id(self)}",
            description="testing the database connection",
            owner=self,
        )

    def _probed(self, typed: str | None, probe: LedgerProbe) -> None:
        self.test.setEnabled(True)
        if typed != (self.url.text().strip() or None):
            return
        self.probe = probe
        self._tested_url = typed or ""
        self.url_status.setStyleSheet("color: #1e6b34;")
        if probe.exists:
            self.url_status.setText(f"✔ Connected: {probe.name}, an existing ledger.")
            self.timezone.setCurrentText(probe.timezone or "UTC")
            self.timezone.setEnabled(False)
            self.timezone_note.setText(f"This ledger bills in {probe.timezone}; an existing ledger's time zone cannot change.")
        else:
            self.url_status.setText(f"✔ Reachable: {probe.name}. No ledger there yet: it will be created when you save.")
            self.timezone.setEnabled(True)
            self.timezone_note.setText("A new ledger: choose the time zone its billing periods (calendar months) follow.")
        self._validate()

    def _probe_failed(self, typed: str | None, error: BaseException) -> None:
        self.test.setEnabled(True)
        if typed != (self.url.text().strip() or None):
            return
        self.probe = None
        message, hint = explain(error)
        self.url_status.setStyleSheet("color: #9b1c1c;")
        self.url_status.setText(f"✖ {message}\nCheck the host, port, database name and password.")
        self._validate()

    def _validate(self) -> bool:
        ok = True
        if self.timezone.isEnabled():
            try:
                load_timezone(self.timezone.currentText())
                self.timezone_error.setVisible(False)
            except MeterdeskError as error:
                self.timezone_error.setText(getattr(error, "problem", str(error)))
                self.timezone_error.setVisible(True)
                ok = False
        if self.url_changed() and self.probe is None:
            ok = False  # a new URL must be reachable before it is saved
        self.save.setEnabled(ok)
        return ok

    def accept_settings(self) -> None:
        if not self._validate():
            return
        settings = self.desk.settings
        self.database_changed = self.url_changed()
        settings.staff_name = self.staff.text()
        if self.probe is not None and not self.probe.exists:
            settings.new_ledger_timezone = self.timezone.currentText().strip()
        settings.database_url = self.url.text().strip()
        settings.sync()
        self.accept()
