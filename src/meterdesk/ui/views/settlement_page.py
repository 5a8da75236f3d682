"""The settlement page: a period's invoices by customer, closing the period and sending its invoices to Stripe."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QBrush, QColor, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

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
    StripeKeyMissing,
    StripeUnavailable,
    refresh_statuses,
    settle,
    settlement_overview,
    settlement_periods,
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


def read_settlement(ledger: Ledger, period: str | None) -> SettlementReadout:
    """The page's data, read on a worker: the period's invoices, the periods to offer, the Stripe key check."""
    last_ended = str(ledger.timeline.period_of(now_us()).previous())
    period = str(Period.parse(period)) if period else last_ended
    periods = sorted(set(settlement_periods(ledger)) | {last_ended}, reverse=True)
    return SettlementReadout(period, settlement_overview(ledger, period), periods, stripe_setup_problem())


class SettlementPage(QWidget):
    """Close a period, review its invoices, and send them to Stripe (on a worker, cancellable between invoices)."""

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.readout: SettlementReadout | None = None
        self.job: Job | None = None  # the settle or refresh run in flight
        self._last_settle: tuple[list[int] | None, str] = (None, "Settling every unsent invoice")
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

    def _show(self, readout: SettlementReadout) -> None:
        self.readout = readout
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
                self.table.setCurrentIndex(index)

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
    def settle_all(self) -> None:
        self._settle(None, "Settling every unsent invoice")

    def settle_selected(self) -> None:
        ids = [row.invoice_id for row in self.selected_rows() if not row.settled]
        if ids:
            self._settle(ids, f"Settling {len(ids)} selected invoice{'s' if len(ids) != 1 else ''}")

    def retry_failures(self) -> None:
        ids = [row.invoice_id for row in self.model.rows() if row.failed]
        if ids:
            self._settle(ids, f"Retrying {len(ids)} failed invoice{'s' if len(ids) != 1 else ''}")

    def _settle(self, invoice_ids: list[int] | None, title: str) -> None:
        if self.job is not None:
            return
        period = self.readout.period if self.readout else self.period()
        actor = self.desk.actor()
        self._last_settle = (invoice_ids, title)
        self.message_bar.dismiss()
        self.job = self.desk.run(
            lambda ledger, job: settle(ledger, period=period, invoice_ids=invoice_ids, progress=job.progress,
                                       cancelled=job.cancelled, actor=actor),
            on_done=self._settled,
            on_error=lambda error: self._run_failed(error, "settling with Stripe"),
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
            on_error=lambda error: self._run_failed(error, "reading statuses from Stripe"),
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

    def _try_again(self) -> None:
        self._settle(*self._last_settle)

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

    def _run_failed(self, error: BaseException, doing: str) -> None:
        self._end_run()
        if isinstance(error, StripeKeyMissing):
            self.message_bar.show_message(
                Level.ERROR, f"Cannot settle: {error}",
                "Closing periods and previews keep working without Stripe; settle again once the key is set.",
            )
        elif isinstance(error, StripeUnavailable):
            self.message_bar.show_message(
                Level.ERROR, f"Stripe could not be reached while {doing}. {error}",
                "Whatever Stripe already has is recorded; settling again resumes there and never sends anything twice.",
                action="Try again", on_action=self._try_again,
            )
        else:
            self.message_bar.show_error(error, doing)
        self.refresh()
