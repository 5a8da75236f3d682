"""The settlement page: a period's invoices by customer, closing the period and sending its invoices to Stripe."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QBrush, QColor, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from meterdesk.domain.errors import Conflict
from meterdesk.domain.periods import Period
from meterdesk.services.billing import CloseProgress, CloseResult, Invoice, close_period, preview_invoice
from meterdesk.services.context import now_us
from meterdesk.services.ledgers import Ledger
from meterdesk.services.settlement import (
    RefreshResult,
    SettleProgress,
    SettleResult,
    SettlementRow,
    SettlementState,
    StripeFailed,
    StripeKeyMissing,
    StripeUnavailable,
    refresh_statuses,
    settle,
    settlement_overview,
    settlement_periods,
    stripe_key_mode,
    stripe_setup_problem,
)
from meterdesk.ui.desk import Desk
from meterdesk.ui.dialogs.progress import run_with_progress
from meterdesk.ui.formatting import local_time_text, money_text
from meterdesk.ui.messages import Level, MessageBar
from meterdesk.ui.models.base import RawSortProxy, RowTableModel
from meterdesk.ui.models.summary import InvoiceLinesModel
from meterdesk.ui.roles import Role
from meterdesk.ui.tasks import Job
from meterdesk.ui.widgets import setup_table

SENT = QColor("#1e6b34")
FAILED = QColor("#b3261e")
PARTLY = QColor("#8a5300")

STATE_TEXT = {
    SettlementState.PENDING: "Not sent",
    SettlementState.CUSTOMER_READY: "Interrupted: customer in Stripe",
    SettlementState.INVOICE_CREATED: "Interrupted: draft in Stripe",
    SettlementState.ITEMS_CREATED: "Interrupted: items in Stripe",
    SettlementState.FINALIZED: "Sent",
    SettlementState.FAILED: "Failed",
}
STRIPE_STATUS_TEXT = {"draft": "Draft", "open": "Open (awaiting payment)", "paid": "Paid", "void": "Void",
                      "uncollectible": "Uncollectible"}


class SettlementColumn(IntEnum):
    CUSTOMER = 0
    NAME = 1
    INVOICE = 2
    TOTAL = 3
    STATE = 4
    STRIPE_STATUS = 5
    STRIPE_INVOICE = 6
    NOTE = 7


class SettlementModel(RowTableModel[SettlementRow]):
    """One row per closed invoice of the period."""

    Column = SettlementColumn
    headers = {
        SettlementColumn.CUSTOMER: "Customer",
        SettlementColumn.NAME: "Name",
        SettlementColumn.INVOICE: "Invoice",
        SettlementColumn.TOTAL: "Total",
        SettlementColumn.STATE: "Settlement",
        SettlementColumn.STRIPE_STATUS: "Stripe status",
        SettlementColumn.STRIPE_INVOICE: "Stripe invoice",
        SettlementColumn.NOTE: "Last problem",
    }
    tooltips = {
        SettlementColumn.TOTAL: "The frozen invoice total; Stripe's total must equal it to the cent",
        SettlementColumn.STATE: "How far sending to Stripe got; interrupted and failed invoices resume where they stopped",
        SettlementColumn.STRIPE_STATUS: "As Stripe last reported it (Refresh statuses reads it again)",
    }
    numeric = frozenset({SettlementColumn.INVOICE, SettlementColumn.TOTAL})

    def display(self, item: SettlementRow, column: int) -> str:
        match column:
            case SettlementColumn.CUSTOMER:
                return item.customer
            case SettlementColumn.NAME:
                return item.customer_name
            case SettlementColumn.INVOICE:
                return f"#{item.invoice_id}"
            case SettlementColumn.TOTAL:
                return money_text(item.total, item.currency)
            case SettlementColumn.STATE:
                return STATE_TEXT[item.state]
            case SettlementColumn.STRIPE_STATUS:
                return STRIPE_STATUS_TEXT.get(item.stripe_status or "", item.stripe_status or "—")
            case SettlementColumn.STRIPE_INVOICE:
                return item.stripe_invoice_id or ""
            case SettlementColumn.NOTE:
                return item.error or ""
        return ""

    def sort_value(self, item: SettlementRow, column: int) -> Any:
        match column:
            case SettlementColumn.CUSTOMER:
                return item.customer
            case SettlementColumn.NAME:
                return item.customer_name.casefold()
            case SettlementColumn.INVOICE:
                return item.invoice_id
            case SettlementColumn.TOTAL:
                return item.total
            case SettlementColumn.STATE:
                return list(SettlementState).index(item.state)
            case SettlementColumn.STRIPE_STATUS:
                return item.stripe_status or ""
            case SettlementColumn.STRIPE_INVOICE:
                return item.stripe_invoice_id or ""
            case SettlementColumn.NOTE:
                return item.error or ""
        return None

    def extra(self, item: SettlementRow, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ForegroundRole and column in (SettlementColumn.STATE, SettlementColumn.NOTE):
            if item.failed:
                return QBrush(FAILED)
            if item.settled:
                return QBrush(SENT)
            if item.state is not SettlementState.PENDING:
                return QBrush(PARTLY)
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == SettlementColumn.NOTE and item.error:
                return item.error
            if column == SettlementColumn.STATE:
                attempts = f"{item.attempts} attempt{'s' if item.attempts != 1 else ''}" if item.attempts else "not tried yet"
                if item.failed:
                    return f"{attempts}. Settle or retry to resume from the last recorded step; nothing is sent twice."
                if item.settled or item.state is SettlementState.PENDING:
                    return attempts
                return f"{attempts}. Stopped part-way; settling again resumes here without sending anything twice."
            if column == SettlementColumn.CUSTOMER and item.stripe_customer_id:
                return f"Stripe customer {item.stripe_customer_id}"
        return None

    def index_of(self, invoice_id: int) -> int:
        return next((row for row, item in enumerate(self._rows) if item.invoice_id == invoice_id), -1)


@dataclass(frozen=True)
class SettlementReadout:
    period: str
    rows: list[SettlementRow]
    periods: list[str]  # periods with closed invoices, newest first, plus the last ended one
    stripe_problem: str | None  # why settling cannot start (no API key), or None
    stripe_mode: str | None = None  # "test" or "live" for the configured key, None without one


def read_settlement(ledger: Ledger, period: str | None) -> SettlementReadout:
    """The page's data, read on a worker: the period's invoices, the periods to offer, the Stripe key check."""
    last_ended = str(ledger.timeline.period_of(now_us()).previous())
    period = str(Period.parse(period)) if period else last_ended
    periods = sorted(set(settlement_periods(ledger)) | {last_ended}, reverse=True)
    return SettlementReadout(period, settlement_overview(ledger, period), periods, stripe_setup_problem(), stripe_key_mode())


def settle_in_mode(ledger: Ledger, mode: str, **selection: Any) -> SettleResult:
    """`settle`, only if the Stripe key is still of the mode the clerk confirmed (test or live)."""
    now = stripe_key_mode()
    if now is not None and now != mode:
        raise Conflict(f"the Stripe key is now a {now} key, but sending was confirmed with a {mode} key; nothing "
                       "was sent. Check the key, then settle again")
    return settle(ledger, **selection)


def totals_text(rows: list[SettlementRow]) -> str:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[row.currency] += row.total
    return ", ".join(money_text(amount, currency) for currency, amount in sorted(totals.items())) or money_text(Decimal(0), "EUR")


def invoices_text(count: int) -> str:
    return f"{count} invoice{'s' if count != 1 else ''}"


MODE_TEXT = {
    "test": ("Stripe TEST mode", "A test-mode key (sk_test_…): invoices go to Stripe's test mode; nobody is e-mailed or charged."),
    "live": ("Stripe LIVE mode", "A LIVE key: Stripe e-mails each invoice to the customer and asks for real money."),
    None: ("Stripe: no API key", "Closing and previewing work; settling needs a Stripe key."),
}
MODE_STYLE = {
    "test": "background: #e7f6ea; color: #1e6b34; border: 1px solid #1e6b34;",
    "live": "background: #b3261e; color: white; border: 1px solid #7a1712;",
    None: "background: #eee; color: #555; border: 1px solid #bbb;",
}


class SendConfirmation(QDialog):
    """Asked before any invoice is sent: how many, their total, test or LIVE, who has no e-mail; a prepaid
    customer's 0.00 invoice goes only when ticked."""

    def __init__(self, rows: list[SettlementRow], mode: str, period: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send invoices to Stripe")
        self.setMinimumWidth(560)
        self.mode = mode
        self.rows = rows
        self.zero_prepaid = [row for row in rows if row.prepaid and row.total == 0]
        self.period = period

        self.heading = QLabel()
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.heading.setFont(font)
        self.heading.setWordWrap(True)
        title, explanation = MODE_TEXT[mode]
        self.mode_banner = QLabel(f"<b>{title}</b> — {explanation}")
        self.mode_banner.setWordWrap(True)
        self.mode_banner.setStyleSheet(MODE_STYLE[mode] + " border-radius: 4px; padding: 8px;")
        self.listing = QListWidget()
        self.listing.setMaximumHeight(150)
        self.listing.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.listing.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        no_email = [row for row in rows if not row.customer_email]
        self.no_email = QLabel(
            f"⚠ No e-mail address for {', '.join(f'{row.customer} ({row.customer_name})' for row in no_email)}: "
            "Stripe has nowhere to send their invoice. Add one on the Customers page first, or send anyway."
            if no_email else "")
        self.no_email.setWordWrap(True)
        self.no_email.setStyleSheet("color: #8a5300;")
        self.no_email.setVisible(bool(no_email))
        zeros = len(self.zero_prepaid)
        self.include_zero = QCheckBox(f"Also send the {invoices_text(zeros)} of 0.00 to prepaid customers")
        self.include_zero.setVisible(bool(zeros))
        self.zero_note = QLabel(
            f"{', '.join(f'{row.customer} ({row.customer_name})' for row in self.zero_prepaid)}: prepaid, their usage "
            "was paid from their balance, so there is nothing to pay. Left out unless ticked.")
        self.zero_note.setWordWrap(True)
        self.zero_note.setStyleSheet("color: #555; margin-left: 22px;")
        self.zero_note.setVisible(bool(zeros))
        self.include_zero.toggled.connect(lambda _on: self._update())
        self.buttons = QDialogButtonBox()
        self.send_button = self.buttons.addButton("Send", QDialogButtonBox.ButtonRole.AcceptRole)
        cancel = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setDefault(True)  # Enter does not send money
        self.send_button.setAutoDefault(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.mode_banner)
        layout.addWidget(self.listing)
        layout.addWidget(self.no_email)
        layout.addWidget(self.include_zero)
        layout.addWidget(self.zero_note)
        layout.addWidget(self.buttons)
        self._update()

    def chosen(self) -> list[SettlementRow]:
        if self.include_zero.isChecked():
            return list(self.rows)
        return [row for row in self.rows if not (row.prepaid and row.total == 0)]

    def chosen_ids(self) -> list[int]:
        return [row.invoice_id for row in self.chosen()]

    def _update(self) -> None:
        chosen = self.chosen()
        live = " (LIVE)" if self.mode == "live" else ""
        self.heading.setText(f"Send {invoices_text(len(chosen))} of {self.period} to Stripe{live}? "
                             f"Total {totals_text(chosen)}")
        self.listing.clear()
        for row in chosen:
            self.listing.addItem(f"#{row.invoice_id}  {row.customer} — {row.customer_name}:  {money_text(row.total, row.currency)}")
        left_out = len(self.rows) - len(chosen)
        if left_out:
            self.listing.addItem(f"Not sent: {left_out} prepaid 0.00 invoice{'s' if left_out != 1 else ''} (tick below to include)")
        self.send_button.setText(f"Send {invoices_text(len(chosen))}{live}")
        self.send_button.setEnabled(bool(chosen))

    def summary(self) -> str:
        """Everything the dialog tells, as text."""
        parts = [self.heading.text(), self.mode_banner.text(), self.no_email.text() if self.no_email.isVisibleTo(self) else ""]
        parts += [self.listing.item(i).text() for i in range(self.listing.count())]
        if self.zero_prepaid:
            parts += [self.include_zero.text(), self.zero_note.text()]
        return "\n".join(part for part in parts if part)


class SettlementPage(QWidget):
    """Close a period, review its invoices, and send them to Stripe (on a worker, cancellable between invoices)."""

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.readout: SettlementReadout | None = None
        self.job: Job | None = None  # the settle or refresh run in flight
        self._close_dialog = None

        self.period_box = QComboBox()
        self.period_box.setEditable(True)
        self.period_box.setMinimumWidth(110)
        self.period_box.setToolTip("The billing period (YYYY-MM) whose invoices are shown")
        self.period_box.activated.connect(lambda _i: self.refresh())
        self.period_box.lineEdit().returnPressed.connect(self.refresh)

        self.actions: dict[str, QPushButton] = {}
        top = QHBoxLayout()
        top.addWidget(QLabel("Period"))
        top.addWidget(self.period_box)
        for name, text, tip, slot in (
            ("close", "Close period…", "Freeze the invoices of the period for every customer", self.close_selected_period),
            ("preview", "Preview", "Show the lines of the selected invoice: what Stripe receives, cent for cent", self.preview_selected),
            ("settle_selected", "Settle selected", "Send the selected invoices to Stripe and finalize them", self.settle_selected),
            ("settle_all", "Settle all", "Send every invoice of the period that is not in Stripe yet", self.settle_all),
            ("retry", "Retry failures", "Settle again the invoices whose last attempt failed", self.retry_failures),
            ("refresh_statuses", "Refresh statuses", "Read back from Stripe whether sent invoices were paid, voided…", self.refresh_statuses),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _c=False, s=slot: s())
            self.actions[name] = button
            top.addWidget(button)
            if name == "close":
                top.addSpacing(12)
        top.addStretch(1)
        self.mode_label = QLabel()  # test or LIVE, always in sight: settling sends what this key allows
        self.mode_label.setTextFormat(Qt.TextFormat.RichText)
        top.addWidget(self.mode_label)
        self._show_mode(None, checking=True)

        self.message_bar = MessageBar()

        self.model = SettlementModel(self)
        self.proxy = RawSortProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        setup_table(self.table)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(SettlementColumn.CUSTOMER, Qt.SortOrder.AscendingOrder)
        for column, width in {SettlementColumn.CUSTOMER: 120, SettlementColumn.NAME: 200, SettlementColumn.INVOICE: 70,
                              SettlementColumn.TOTAL: 120, SettlementColumn.STATE: 200, SettlementColumn.STRIPE_STATUS: 170,
                              SettlementColumn.STRIPE_INVOICE: 220}.items():
            self.table.setColumnWidth(column, width)
        self.table.doubleClicked.connect(lambda _index: self.preview_selected())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.empty = QLabel("")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #777; padding: 24px;")
        self.empty.setWordWrap(True)

        self.preview_title = QLabel("Select an invoice and press Preview to see its lines")
        self.preview_model = InvoiceLinesModel(self)
        self.preview = QTableView()
        setup_table(self.preview)
        self.preview.setModel(self.preview_model)
        self.preview.horizontalHeader().setStretchLastSection(False)
        self.preview.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for column in (0, 2, 3):
            self.preview.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.preview_total = QLabel("")
        self.preview_total.setAlignment(Qt.AlignmentFlag.AlignRight)
        self._previewing: int | None = None

        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(self.empty)
        preview_box = QWidget()
        preview_layout = QVBoxLayout(preview_box)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        preview_layout.addWidget(self.preview_title)
        preview_layout.addWidget(self.preview, 1)
        preview_layout.addWidget(self.preview_total)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(table_box)
        splitter.addWidget(preview_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress_label = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the invoice in hand; settling again continues with the rest")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("")
        self.status.setStyleSheet("color: #555;")
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress_label)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        self._show_progress(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.message_bar)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)

        # Read only while the page is on screen; showing it reads it afresh.
        desk.ledger_changed.connect(lambda _ledger: self.refresh() if self.isVisible() else None)
        desk.written.connect(lambda what: self.refresh() if what == "period" and self.isVisible() else None)
        self._update_buttons()

    # -- reading -------------------------------------------------------------------------------------
    def period(self) -> str:
        return self.period_box.currentText().strip()

    def set_period(self, period: str) -> None:
        self.period_box.setEditText(period)
        self.refresh()

    def refresh(self) -> None:
        period = self.period()
        self.desk.run(
            lambda ledger, job: read_settlement(ledger, period or None),
            on_done=self._show,
            on_error=lambda error: self.message_bar.show_error(error, f"reading the invoices of {period or 'the period'}"),
            key=f"settlement-page-{id(self)}",
            description="reading the settlement of a period",
        )

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def _show_mode(self, mode: str | None, *, checking: bool = False) -> None:
        title, explanation = MODE_TEXT[mode]
        self.mode_label.setText("Stripe: checking the key…" if checking else f"<b>{title}</b>")
        self.mode_label.setToolTip(explanation)
        self.mode_label.setStyleSheet(MODE_STYLE[mode] + " border-radius: 4px; padding: 3px 8px;")

    def _show(self, readout: SettlementReadout) -> None:
        self.readout = readout
        self._show_mode(readout.stripe_mode)
        selected = self.selected_ids()
        self.model.set_rows(readout.rows)
        self.period_box.blockSignals(True)
        self.period_box.clear()
        self.period_box.addItems(readout.periods)
        self.period_box.setEditText(readout.period)
        self.period_box.blockSignals(False)
        self.select(selected)
        if not readout.rows:
            self.empty.setText(
                f"No closed invoices for {readout.period}. “Close period…” freezes each customer's invoice for it; "
                "they can then be previewed and settled."
            )
        self.empty.setVisible(not readout.rows)
        if readout.stripe_problem and self.message_bar.level is not Level.ERROR and self.job is None:
            self.message_bar.show_message(
                Level.WARNING,
                f"Settling needs a Stripe API key. {readout.stripe_problem}",
                "Closing periods and previewing invoices work without it. Use a test-mode key (sk_test_…) to try "
                "settlement safely.",
            )
        elif not readout.stripe_problem and self.message_bar.level is Level.WARNING and "Stripe API key" in self.message_bar.text:
            self.message_bar.dismiss()
        if self._previewing is not None and self.model.index_of(self._previewing) < 0:
            self._clear_preview()
        self._update_status()
        self._update_buttons()

    def _update_status(self) -> None:
        rows = self.model.rows()
        if not rows:
            self.status.setText("")
            return
        counts: dict[SettlementState, int] = defaultdict(int)
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows:
            counts[row.state] += 1
            totals[row.currency] += row.total
        unsent = len(rows) - counts[SettlementState.FINALIZED] - counts[SettlementState.FAILED]
        parts = [f"{len(rows)} invoice{'s' if len(rows) != 1 else ''}",
                 f"{counts[SettlementState.FINALIZED]} sent", f"{unsent} not sent"]
        if counts[SettlementState.FAILED]:
            parts.append(f"⚠ {counts[SettlementState.FAILED]} failed")
        parts.append("total " + ", ".join(money_text(amount, currency) for currency, amount in sorted(totals.items())))
        latest = max((row.updated_at for row in rows if row.updated_at), default=None)
        if latest and self.desk.ledger is not None:
            parts.append(f"last change {local_time_text(latest, self.desk.ledger.timezone)}")
        self.status.setText("  ·  ".join(parts))

    # -- selection -----------------------------------------------------------------------------------
    def selected_rows(self) -> list[SettlementRow]:
        rows = []
        for index in self.table.selectionModel().selectedRows():
            row = index.data(Role.RowObjectRole)
            if row is not None:
                rows.append(row)
        return rows

    def selected_ids(self) -> list[int]:
        return [row.invoice_id for row in self.selected_rows()]

    def select(self, invoice_ids: list[int]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        for invoice_id in invoice_ids:
            row = self.model.index_of(invoice_id)
            if row >= 0:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                selection.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
                # The view's setCurrentIndex would clear and select: only the last of several stayed selected.
                selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)

    def _selection_changed(self) -> None:
        self._update_buttons()
        rows = self.selected_rows()
        if self._previewing is not None and len(rows) == 1 and rows[0].invoice_id != self._previewing:
            self.preview_selected()  # the preview follows the selection once it is open

    def _update_buttons(self) -> None:
        idle = self.job is None and self.desk.ledger is not None
        rows = self.model.rows()
        selected = self.selected_rows()
        self.actions["close"].setEnabled(idle)
        self.actions["preview"].setEnabled(self.desk.ledger is not None and len(selected) == 1)
        self.actions["settle_selected"].setEnabled(idle and any(not row.settled for row in selected))
        self.actions["settle_all"].setEnabled(idle and any(not row.settled for row in rows))
        self.actions["retry"].setEnabled(idle and any(row.failed for row in rows))
        self.actions["refresh_statuses"].setEnabled(idle and any(row.settled for row in rows))

    # -- preview -------------------------------------------------------------------------------------
    def preview_selected(self) -> None:
        rows = self.selected_rows()
        if len(rows) != 1:
            return
        row = rows[0]
        self._previewing = row.invoice_id
        self.preview_title.setText(f"Invoice #{row.invoice_id} — {row.customer_name} ({row.customer}), {row.period}: loading…")
        self.desk.run(
            lambda ledger, job: preview_invoice(ledger, row.customer, row.period),
            on_done=lambda invoice: self._show_preview(row, invoice),
            on_error=lambda error: self.message_bar.show_error(error, f"reading invoice #{row.invoice_id}"),
            key=f"settlement-preview-{id(self)}",
            description="reading an invoice",
        )

    def _show_preview(self, row: SettlementRow, invoice: Invoice) -> None:
        if self._previewing != row.invoice_id:
            return
        self.preview_model.set_invoice(invoice.lines, invoice.currency)
        self.preview_title.setText(
            f"<b>Invoice #{row.invoice_id}</b> — {row.customer_name} ({row.customer}), {row.period}: "
            f"{len(invoice.lines)} line{'s' if len(invoice.lines) != 1 else ''}, each one Stripe invoice item"
        )
        self.preview_total.setText(f"<b>Total {money_text(invoice.total, invoice.currency)}</b>")

    def _clear_preview(self) -> None:
        self._previewing = None
        self.preview_model.set_invoice([], self.preview_model.currency)
        self.preview_title.setText("Select an invoice and press Preview to see its lines")
        self.preview_total.setText("")

    # -- closing -------------------------------------------------------------------------------------
    def close_selected_period(self) -> None:
        period = self.period()
        try:
            period = str(Period.parse(period))
        except Exception as error:  # noqa: BLE001 - an InvalidInput naming the field, shown in the bar
            self.message_bar.show_error(error, "closing a period")
            return
        answer = QMessageBox.question(
            self, "Close period",
            f"Close {period} for every customer? Each invoice is frozen for good; usage of {period} recorded "
            "later is billed late in the next open period.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        actor = self.desk.actor()

        def done(result: CloseResult) -> None:
            text = f"Period {result.period}: {len(result.invoices)} invoice(s) closed now, {len(result.already_closed)} already closed"
            if result.cancelled:
                text += " — cancelled; closing again continues with the rest"
            self.message_bar.show_message(Level.SUCCESS, text)
            self.desk.notify_written("period")

        def described(progress: CloseProgress) -> tuple[str, int, int]:
            return f"{progress.done} of {progress.total}: {progress.customer}", progress.done, progress.total

        self._close_dialog = run_with_progress(
            self.desk, self, f"Closing {period}",
            lambda ledger, job: close_period(ledger, period, actor=actor, progress=job.progress, cancelled=job.cancelled),
            describe=described,
            on_done=done,
            on_error=lambda error: self.message_bar.show_error(error, f"closing {period}"),
        )

    # -- settling ------------------------------------------------------------------------------------
    # Every send is confirmed, with exactly the invoices on screen that were chosen: never "whatever is unsent".
    def settle_all(self) -> None:
        self.confirm_and_settle([row for row in self.model.rows() if not row.settled], "Settling")

    def settle_selected(self) -> None:
        self.confirm_and_settle([row for row in self.selected_rows() if not row.settled], "Settling")

    def retry_failures(self) -> None:
        self.confirm_and_settle([row for row in self.model.rows() if row.failed], "Retrying the failed")

    def confirm_and_settle(self, rows: list[SettlementRow], verb: str) -> None:
        if self.job is not None or not rows or self.readout is None:
            return
        if self.readout.stripe_mode is None:
            self.message_bar.show_message(
                Level.ERROR, f"Cannot settle: {self.readout.stripe_problem}",
                "Closing periods and previews keep working without Stripe; settle again once the key is set.",
            )
            return
        mode = self.readout.stripe_mode
        dialog = SendConfirmation(rows, mode, self.readout.period, self)
        try:
            accepted = dialog.exec() == QDialog.DialogCode.Accepted
            ids = dialog.chosen_ids()
        finally:
            dialog.deleteLater()
        if accepted and ids:
            self._settle(ids, mode, f"{verb} {invoices_text(len(ids))}")

    def _settle(self, invoice_ids: list[int], mode: str, title: str) -> None:
        if self.job is not None:
            return
        period = self.readout.period if self.readout else self.period()
        actor = self.desk.actor()
        self.message_bar.dismiss()

        def again() -> None:  # the same invoices, those still unsent, asked again
            wanted = set(invoice_ids)
            self.confirm_and_settle([row for row in self.model.rows() if row.invoice_id in wanted and not row.settled], "Settling")

        self.job = self.desk.run(
            lambda ledger, job: settle_in_mode(ledger, mode, period=period, invoice_ids=invoice_ids, progress=job.progress,
                                               cancelled=job.cancelled, actor=actor),
            on_done=self._settled,
            on_error=lambda error: self._run_failed(
                error, "settling with Stripe", again,
                "Whatever Stripe already has is recorded; settling again resumes there and never sends anything twice."),
            on_progress=self._settle_progressed,
            description=title.lower(),
        )
        if self.job is not None:
            self._begin_run(title)

    def _settle_progressed(self, progress: SettleProgress) -> None:
        self.progress.setMaximum(progress.total)
        self.progress.setValue(progress.done)
        outcome = {SettlementState.FINALIZED: "sent", SettlementState.FAILED: "failed"}.get(progress.state, progress.state.value)
        cancelling = " — cancelling after this invoice" if self.job is not None and self.job.cancelled() else ""
        self.progress_label.setText(f"{progress.done} of {progress.total}: #{progress.invoice_id} {progress.customer} {outcome}{cancelling}")
        self.refresh()

    def _settled(self, result: SettleResult) -> None:
        self._end_run()
        sent = len(result.finalized_now)
        failed = result.failed
        if failed:
            first = failed[0]
            self.message_bar.show_message(
                Level.WARNING,
                f"{sent} invoice{'s' if sent != 1 else ''} sent to Stripe; {len(failed)} failed. "
                f"#{first.invoice_id} {first.customer}: {first.error}",
                "Each failed invoice keeps what Stripe already has; retrying resumes there and never sends anything twice.",
                action="Retry failures", on_action=self.retry_failures,
            )
        elif result.cancelled:
            self.message_bar.show_message(
                Level.INFO, f"Settlement cancelled after {sent} invoice{'s' if sent != 1 else ''}; settling again continues with the rest."
            )
        elif sent:
            self.message_bar.show_message(
                Level.SUCCESS, f"{sent} invoice{'s' if sent != 1 else ''} sent to Stripe and finalized, totals equal to the cent."
            )
        else:
            self.message_bar.show_message(Level.INFO, "Nothing to send: every invoice selected is in Stripe already.")
        self.refresh()

    # -- statuses ------------------------------------------------------------------------------------
    def refresh_statuses(self) -> None:
        if self.job is not None:
            return
        period = self.readout.period if self.readout else self.period()
        actor = self.desk.actor()
        self.job = self.desk.run(
            lambda ledger, job: refresh_statuses(ledger, period=period, actor=actor),
            on_done=self._statuses_refreshed,
            on_error=lambda error: self._run_failed(error, "reading statuses from Stripe", self.refresh_statuses,
                                                    "Nothing is sent: trying again only reads the statuses."),
            description="reading invoice statuses from Stripe",
        )
        if self.job is not None:
            self._begin_run("Reading statuses from Stripe", busy=True)

    def _statuses_refreshed(self, result: RefreshResult) -> None:
        self._end_run()
        changed = ", ".join(f"#{invoice_id} {before or '—'} → {now}" for invoice_id, before, now in result.changed)
        if result.errors:
            invoice_id, why = result.errors[0]
            self.message_bar.show_message(Level.WARNING, f"{len(result.errors)} status(es) could not be read. #{invoice_id}: {why}",
                                          f"Changed: {changed}" if changed else "")
        elif changed:
            self.message_bar.show_message(Level.SUCCESS, f"Statuses read from Stripe. Changed: {changed}")
        else:
            self.message_bar.show_message(Level.INFO, "Statuses read from Stripe: nothing changed.")
        self.refresh()

    # -- runs ----------------------------------------------------------------------------------------
    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText(self.progress_label.text() + " — cancelling after this invoice")

    def _begin_run(self, title: str, *, busy: bool = False) -> None:
        self.progress.setRange(0, 0 if busy else 1)
        self.progress.setValue(0)
        self.progress_label.setText(f"{title}…")
        self.cancel_button.setEnabled(not busy)
        self._show_progress(True)
        self._update_buttons()

    def _end_run(self) -> None:
        self.job = None
        self._show_progress(False)
        self._update_buttons()

    def _show_progress(self, visible: bool) -> None:
        for widget in (self.progress, self.progress_label, self.cancel_button):
            widget.setVisible(visible)

    def _run_failed(self, error: BaseException, doing: str, again: Callable[[], None], hint: str) -> None:
        """Say what went wrong; "Try again" repeats the operation that failed (`again`), and nothing else."""
        self._end_run()
        if isinstance(error, StripeKeyMissing):
            self.message_bar.show_message(
                Level.ERROR, f"Cannot settle: {error}",
                "Closing periods and previews keep working without Stripe; settle again once the key is set.",
            )
        elif isinstance(error, StripeFailed):  # Stripe answered: say what it answered
            self.message_bar.show_message(Level.ERROR, str(error), hint, action="Try again", on_action=again)
        elif isinstance(error, StripeUnavailable):
            self.message_bar.show_message(
                Level.ERROR, f"Stripe could not be reached while {doing}. {error}", hint, action="Try again", on_action=again,
            )
        else:
            self.message_bar.show_error(error, doing)
        self.refresh()
