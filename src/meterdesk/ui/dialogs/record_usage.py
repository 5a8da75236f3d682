"""Record usage by hand: validated as typed, recorded once per dialog whatever is clicked or retried."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from PySide6.QtCore import QDateTime, Qt, QTimeZone, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from meterdesk.domain.errors import MeterdeskError
from meterdesk.domain.periods import MAX_FUTURE_SKEW, format_timestamp
from meterdesk.domain.units import validate_usage_amount
from meterdesk.services.recording import MAX_NOTE_LENGTH, RecordResult, record_usage
from meterdesk.ui.desk import Desk
from meterdesk.ui.formatting import money_text, zone_label
from meterdesk.ui.messages import explain
from meterdesk.ui.widgets import CustomerPicker, error_label, utc_datetime


class RecordUsageDialog(QDialog):
    """One dialog = one usage event = one request id (generated once, shown, kept across retries)."""

    recorded = Signal(object)  # RecordResult

    def __init__(self, desk: Desk, parent: QWidget | None = None, *, customer: str | None = None, unit: str | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.request_id = f"gui-{uuid.uuid4()}"
        self.result: RecordResult | None = None
        self.submissions = 0
        self._in_flight = False
        zone = desk.ledger.timezone if desk.ledger else timezone.utc
        self._zone = zone
        self.setWindowTitle("Record usage")
        self.setMinimumWidth(520)

        self.customer = CustomerPicker(desk.catalog)
        self.unit = QComboBox()
        self.unit.setToolTip("The billable unit (metric) of this usage")
        self.amount = QLineEdit()
        self.amount.setPlaceholderText("e.g. 1500")
        self.amount.setToolTip("A positive amount, with at most as many decimals as the unit allows")
        self.now = QCheckBox("Now")
        self.now.setChecked(True)
        self.now.setToolTip("Untick to record usage that happened earlier")
        self.occurred = QDateTimeEdit()
        self.occurred.setDisplayFormat("yyyy-MM-dd HH:mm:ss")
        self.occurred.setCalendarPopup(True)
        self.occurred.setTimeZone(QTimeZone(zone_label(zone).encode()))
        self.occurred.setDateTime(QDateTime.currentDateTime())
        self.occurred.setEnabled(False)
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("Optional: why this was recorded by hand (ticket, phone call…)")
        self.note.setFixedHeight(64)
        request = QLabel(self.request_id)
        request.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        request.setToolTip("Recording twice with this id records once: a double click or a retry is safe")
        request.setStyleSheet("color: #666;")

        self.customer_error = error_label()
        self.amount_error = error_label()
        self.occurred_error = error_label()
        form = QFormLayout()
        form.addRow("&Customer", self.customer)
        form.addRow("", self.customer_error)
        form.addRow("&Unit", self.unit)
        form.addRow("&Amount", self.amount)
        form.addRow("", self.amount_error)
        when = QHBoxLayout()
        when.addWidget(self.now)
        when.addWidget(self.occurred, 1)
        when.addWidget(QLabel(zone_label(zone)))
        form.addRow("Occurred at", when)
        form.addRow("", self.occurred_error)
        form.addRow("&Note", self.note)
        form.addRow("Request id", request)

        self.outcome = QLabel()
        self.outcome.setWordWrap(True)
        self.outcome.setVisible(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("&Record")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.outcome)
        layout.addWidget(self.buttons)

        self.customer.changed.connect(self._customer_changed)
        self.unit.currentIndexChanged.connect(self.validate)
        self.amount.textChanged.connect(self.validate)
        self.now.toggled.connect(self._now_toggled)
        self.occurred.dateTimeChanged.connect(self.validate)
        if customer:
            self.customer.set_customer(customer)
        self._customer_changed()
        desk.catalog_changed.connect(self._catalog_changed)
        if unit:
            self.unit.setCurrentIndex(max(0, self.unit.findData(unit)))
        self.validate()

    def _catalog_changed(self, catalog) -> None:
        if self.result is None and not self._in_flight:
            self.customer.set_catalog(catalog)
            self._customer_changed()

    # -- validation as typed -----------------------------------------------------------------------
    def _customer_changed(self) -> None:
        current = self.unit.currentData()
        customer = self.desk.catalog.customer(self.customer.customer_id())
        plan = self.desk.catalog.plan(customer.plan) if customer and customer.plan else None
        charged = [c.unit for c in plan.plan.charges] if plan else []
        self.unit.blockSignals(True)
        self.unit.clear()
        for row in sorted(self.desk.catalog.units, key=lambda u: (u.code not in charged, u.code)):
            label = f"{row.unit.name} ({row.code})" + ("" if not plan or row.code in charged else " — not priced by the plan")
            self.unit.addItem(label, row.code)
        self.unit.setCurrentIndex(max(0, self.unit.findData(current)))
        self.unit.blockSignals(False)
        self.validate()

    def _now_toggled(self, checked: bool) -> None:
        self.occurred.setEnabled(not checked)
        if not checked:
            self.occurred.setDateTime(QDateTime.currentDateTime())
        self.validate()

    def occurred_at(self) -> str | None:
        if self.now.isChecked():
            return None
        return format_timestamp(utc_datetime(self.occurred.dateTime()))

    def validate(self) -> bool:
        """Check every field as the services would; OK is enabled only when all pass."""
        ok = True
        customer_id = self.customer.customer_id()
        if not customer_id:
            self.customer_error.setText("Choose a customer")
            ok = False
        elif self.desk.catalog.customer(customer_id) is None:
            self.customer_error.setText(f"Unknown customer {customer_id!r}")
            ok = False
        else:
            self.customer_error.setText("")
        unit = self.desk.catalog.unit(self.unit.currentData() or "")
        text = self.amount.text().strip()
        if unit is None:
            self.amount_error.setText("Define a unit first (Units page)")
            ok = False
        elif not text:
            self.amount_error.setText("")
            ok = False
        else:
            try:
                validate_usage_amount(unit.unit, text)
                self.amount_error.setText("")
            except MeterdeskError as error:
                self.amount_error.setText(getattr(error, "problem", str(error)))
                ok = False
        self.occurred_error.setText("")
        if not self.now.isChecked():
            chosen = utc_datetime(self.occurred.dateTime())
            if chosen > datetime.now(timezone.utc) + MAX_FUTURE_SKEW:
                self.occurred_error.setText("Lies in the future: usage is recorded when it has happened")
                ok = False
        for label in (self.customer_error, self.amount_error, self.occurred_error):
            label.setVisible(bool(label.text()))
        self.ok.setEnabled(ok and not self._in_flight and self.result is None)
        return ok

    # -- recording ---------------------------------------------------------------------------------
    def submit(self) -> None:
        """Record on a worker. Clicking again (or retrying after an error) reuses the same request id."""
        if self.result is not None:
            self.accept()
            return
        if self._in_flight or not self.validate():
            return
        self._in_flight = True
        self.submissions += 1
        self.ok.setEnabled(False)
        self.outcome.setVisible(True)
        self.outcome.setStyleSheet("color: #555;")
        self.outcome.setText("Recording…")
        customer, unit, amount = self.customer.customer_id(), self.unit.currentData(), self.amount.text().strip()
        occurred, note, actor, request_id = self.occurred_at(), self.note.toPlainText().strip() or None, self.desk.actor(), self.request_id
        if note and len(note) > MAX_NOTE_LENGTH:
            note = note[:MAX_NOTE_LENGTH]
        self.desk.run(
            lambda ledger, job: record_usage(
                ledger, customer, unit, amount, request_id, occurred_at=occurred, note=note, source="gui", actor=actor
            ),
            on_done=self._recorded,
            on_error=self._failed,
            description="recording usage",
            owner=self,
        )

    def _recorded(self, result: RecordResult) -> None:
        self._in_flight = False
        self.result = result
        customer = self.desk.catalog.customer(self.customer.customer_id())
        currency = customer.currency if customer else "EUR"
        lines = [f"{'Already recorded (duplicate of' if result.duplicate else 'Recorded as'} entry #{result.entry_id}{')' if result.duplicate else ''}, billed in {result.period}{' (late: its own period is closed)' if result.late else ''}."]
        if result.charged is not None:
            lines.append(f"Charged {money_text(result.charged, currency)} to the prepaid balance; balance now {money_text(result.balance, currency)}.")
            if result.over_limit:
                lines.append("⚠ The balance is past the credit limit: the product will be told over_limit.")
        self.outcome.setStyleSheet("color: #1e6b34;" if not result.over_limit else "color: #9b1c1c;")
        self.outcome.setText("\n".join(lines))
        for widget in (self.customer, self.unit, self.amount, self.now, self.occurred, self.note):
            widget.setEnabled(False)
        self.ok.setText("&Done")
        self.ok.setEnabled(True)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setVisible(False)
        self.recorded.emit(result)
        self.desk.notify_written("usage")

    def _failed(self, error: BaseException) -> None:
        self._in_flight = False
        message, hint = explain(error, "recording")
        self.outcome.setStyleSheet("color: #9b1c1c;")
        self.outcome.setText(f"{message}\n{hint}\nRetrying uses the same request id, so it can never record twice.")
        self.ok.setText("&Retry")
        self.validate()
