"""Correct a ledger entry: new amount, a required reason, and a preview of the period before confirming."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from meterdesk.domain.errors import MeterdeskError
from meterdesk.domain.units import validate_correction_amount
from meterdesk.services.corrections import CorrectionResult, correct_entry
from meterdesk.services.entries import EntryRow
from meterdesk.services.overview import CorrectionPreview, preview_correction
from meterdesk.ui.desk import Desk
from meterdesk.ui.formatting import local_time_text, money_text, quantity_text
from meterdesk.ui.messages import explain
from meterdesk.ui.widgets import error_label


def _signed(value, text) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "±") + text(abs(value))


class CorrectEntryDialog(QDialog):
    """Writes a reversal and (unless the new amount is 0) a replacement, both carrying the reason."""

    corrected = Signal(object)  # CorrectionResult

    def __init__(self, desk: Desk, entry: EntryRow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.entry = entry
        self.preview: CorrectionPreview | None = None
        self.result: CorrectionResult | None = None
        self._in_flight = False
        self.setWindowTitle(f"Correct entry #{entry.id}")
        self.setMinimumWidth(560)
        zone = desk.ledger.timezone if desk.ledger else None

        original = QLabel(
            f"<b>#{entry.id}</b> · {entry.customer} · {entry.unit} · <b>{quantity_text(abs(entry.amount))}</b>"
            f" · occurred {local_time_text(entry.occurred_at_us, zone) if zone else entry.occurred_text}"
            f" · billed in {entry.period}{' (late)' if entry.late else ''}"
        )
        original.setTextFormat(Qt.TextFormat.RichText)
        original.setWordWrap(True)
        self.amount = QLineEdit()
        self.amount.setPlaceholderText(f"the right amount, e.g. {quantity_text(abs(entry.amount))}; 0 cancels the entry")
        self.reason = QPlainTextEdit()
        self.reason.setPlaceholderText("Required: why is this entry wrong? (kept on the reversal and the replacement)")
        self.reason.setFixedHeight(70)
        self.amount_error = error_label()
        self.reason_error = error_label()
        form = QFormLayout()
        form.addRow("Entry", original)
        form.addRow("&New amount", self.amount)
        form.addRow("", self.amount_error)
        form.addRow("&Reason", self.reason)
        form.addRow("", self.reason_error)

        self.preview_box = QLabel("Type the new amount to see what changes.")
        self.preview_box.setWordWrap(True)
        self.preview_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.preview_box.setMargin(10)
        self.preview_box.setTextFormat(Qt.TextFormat.RichText)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("&Correct entry")
        self.ok.setEnabled(False)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("<b>What changes</b>"))
        layout.addWidget(self.preview_box)
        layout.addWidget(self.buttons)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self._request_preview)
        self.amount.textChanged.connect(self._amount_changed)
        self.reason.textChanged.connect(self.validate)

    def _amount_changed(self) -> None:
        self.preview = None
        if self.validate_amount():
            self.preview_box.setText("Computing the preview…")
            self._debounce.start()
        self.validate()

    def validate_amount(self) -> bool:
        text = self.amount.text().strip()
        unit = self.desk.catalog.unit(self.entry.unit)
        if not text:
            self.amount_error.setVisible(False)
            return False
        try:
            if unit is not None:
                validate_correction_amount(unit.unit, text)
        except MeterdeskError as error:
            self.amount_error.setText(getattr(error, "problem", str(error)))
            self.amount_error.setVisible(True)
            return False
        self.amount_error.setVisible(False)
        return True

    def validate(self) -> bool:
        amount_ok = self.validate_amount()
        reason_ok = bool(self.reason.toPlainText().strip())
        self.reason_error.setText("" if reason_ok else "A reason is required")
        self.reason_error.setVisible(not reason_ok and bool(self.amount.text().strip()))
        ok = amount_ok and reason_ok and self.preview is not None and not self._in_flight and self.result is None
        self.ok.setEnabled(ok)
        return ok

    def _request_preview(self) -> None:
        entry_id, amount = self.entry.id, self.amount.text().strip()
        self.desk.run(
            lambda ledger, job: preview_correction(ledger, entry_id, amount),
            on_done=lambda preview, typed=amount: self._previewed(typed, preview),
            on_error=self._preview_failed,
            key=f"correction-preview-{id(self)}",
            description="previewing the correction",
            owner=self,
        )

    def _previewed(self, typed: str, preview: CorrectionPreview) -> None:
        if typed != self.amount.text().strip():
            return
        self.preview = preview
        currency = preview.currency
        rows = [
            f"Billing period <b>{preview.period}</b>, unit <b>{preview.unit}</b>"
            + (" — the entry's own period is closed, so the correction is billed late in this open period" if preview.late else ""),
            f"Quantity: {quantity_text(preview.quantity_before)} → <b>{quantity_text(preview.quantity_after)}</b>"
            f" ({_signed(preview.quantity_change, quantity_text)})",
            f"Amount: {money_text(preview.amount_before, currency)} → <b>{money_text(preview.amount_after, currency)}</b>"
            f" ({_signed(preview.amount_change, lambda v: money_text(v, currency))})",
        ]
        if preview.prepaid:
            rows.append("Prepaid customer: the balance is adjusted by the change in the charge as soon as you confirm.")
        rows.append(
            f"Writes a reversal of #{self.entry.id}" + (" and a replacement entry." if preview.new_amount else " (new amount 0: no replacement).")
        )
        self.preview_box.setText("<br>".join(rows))
        self.validate()

    def _preview_failed(self, error: BaseException) -> None:
        self.preview = None
        message, hint = explain(error)
        self.preview_box.setText(f"<span style='color:#9b1c1c'>{message}</span><br>{hint}")
        self.validate()

    def submit(self) -> None:
        if self.result is not None:
            self.accept()
            return
        if not self.validate():
            return
        self._in_flight = True
        self.ok.setEnabled(False)
        entry_id, amount, reason, actor = self.entry.id, self.amount.text().strip(), self.reason.toPlainText().strip(), self.desk.actor()
        self.desk.run(
            lambda ledger, job: correct_entry(ledger, entry_id, amount, reason, source="gui", actor=actor),
            on_done=self._corrected,
            on_error=self._failed,
            description=f"correcting entry #{entry_id}",
            owner=self,
        )

    def _corrected(self, result: CorrectionResult) -> None:
        self._in_flight = False
        self.result = result
        self.corrected.emit(result)
        self.desk.notify_written("usage")
        self.accept()

    def _failed(self, error: BaseException) -> None:
        self._in_flight = False
        message, hint = explain(error, "correcting")
        self.preview_box.setText(f"<span style='color:#9b1c1c'>{message}</span><br>{hint}")
        self.validate()
