"""Customer detail: a period's summary, the invoice preview, the customer's entries and its chart."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHeaderView,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from meterdesk.services.billing import Invoice, preview_invoice
from meterdesk.services.overview import customer_periods
from meterdesk.services.summary import Summary, usage_summary
from meterdesk.ui.desk import Desk
from meterdesk.ui.formatting import money_text
from meterdesk.ui.models.summary import InvoiceLinesModel, SummaryUnitsModel
from meterdesk.ui.views.ledger_page import LedgerView
from meterdesk.ui.widgets import CustomerPicker, setup_table


@dataclass(frozen=True)
class PeriodReadout:
    summary: Summary
    invoice: Invoice
    periods: list[str]


def read_period(ledger, customer: str, period: str | None) -> PeriodReadout:
    summary = usage_summary(ledger, customer, period=period or None)
    invoice = preview_invoice(ledger, customer, summary.period)
    return PeriodReadout(summary, invoice, customer_periods(ledger, customer))


def summary_csv(summary: Summary) -> str:
    """The summary as CSV: one row per unit, then the totals (the same values as the JSON, as text)."""
    shape = summary.to_json()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer", "period", "currency", "unit", "quantity", "included", "billable", "amount", "entries"])
    for unit in shape["units"]:
        writer.writerow([shape["customer"], shape["period"]["name"], shape["currency"], unit["unit"], unit["quantity"],
                         unit["included"], unit["billable"], unit["amount"], unit["entries"]])
    for name in ("base_fee", "usage_amount", "total", "balance"):
        if shape.get(name) is not None:
            writer.writerow([shape["customer"], shape["period"]["name"], shape["currency"], name, "", "", "", shape[name], ""])
    return out.getvalue()


def summary_json(summary: Summary) -> str:
    """The SPEC's `usage summary` shape, exactly what `meterdesk usage summary --json` prints."""
    return json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n"


class FigureCard(QFrame):
    """A labelled figure (Base fee, Usage, Total, Balance) in the page's header."""

    def __init__(self, title: str, tip: str = "") -> None:
        super().__init__()
        self.setObjectName("FigureCard")
        self.setStyleSheet("#FigureCard { background: palette(base); border: 1px solid palette(mid); border-radius: 6px; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        self.title = QLabel(title)
        self.title.setStyleSheet("color: #666;")
        self.value = QLabel("—")
        font = self.value.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.value.setFont(font)
        self.note = QLabel("")
        self.note.setStyleSheet("color: #666;")
        layout.addWidget(self.title)
        layout.addWidget(self.value)
        layout.addWidget(self.note)
        if tip:
            self.setToolTip(tip)

    def set(self, value: str, note: str = "", colour: str = "") -> None:
        self.value.setText(value)
        self.value.setStyleSheet(f"color: {colour};" if colour else "")
        self.note.setText(note)


class CustomerDetailPage(QWidget):
    record_requested = Signal(str)
    correct_requested = Signal(object)

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.readout: PeriodReadout | None = None
        self._loading_for: tuple[str, str] | None = None

        self.customer = CustomerPicker(desk.catalog)
        self.customer.setMinimumWidth(260)
        self.period = QComboBox()
        self.period.setToolTip("The billing period (calendar month in the ledger's time zone)")
        self.period.setMinimumWidth(110)
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Read the summary again (F5)")
        refresh.clicked.connect(self.refresh)
        self.copy_button = QPushButton("Copy summary")
        copy_menu = QMenu(self)
        copy_menu.addAction("Copy as CSV", lambda: self.copy_summary("csv"))
        copy_menu.addAction("Copy as JSON (SPEC shape)", lambda: self.copy_summary("json"))
        self.copy_button.setMenu(copy_menu)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the summary as CSV or JSON")
        self.export_button.clicked.connect(self.export_summary)
        record = QPushButton("Record usage…")
        record.clicked.connect(lambda: self.record_requested.emit(self.customer.customer_id()))
        top = QHBoxLayout()
        top.addWidget(QLabel("Customer"))
        top.addWidget(self.customer)
        top.addWidget(QLabel("Period"))
        top.addWidget(self.period)
        top.addWidget(refresh)
        top.addStretch(1)
        top.addWidget(record)
        top.addWidget(self.copy_button)
        top.addWidget(self.export_button)

        self.heading = QLabel("Choose a customer")
        heading_font = self.heading.font()
        heading_font.setPointSizeF(heading_font.pointSizeF() * 1.3)
        heading_font.setBold(True)
        self.heading.setFont(heading_font)
        self.subheading = QLabel("")
        self.subheading.setStyleSheet("color: #555;")
        self.cards = {
            "base_fee": FigureCard("Base fee", "The plan's fixed fee for the period, prorated when the subscription starts or ends inside it"),
            "usage": FigureCard("Usage", "Usage charges of the period"),
            "total": FigureCard("Total", "Base fee plus usage"),
            "due": FigureCard("Invoice", "What the period's invoice asks for (prepaid usage is already paid from the balance)"),
            "balance": FigureCard("Prepaid balance", "Credits granted minus usage charged, now"),
        }
        cards = QHBoxLayout()
        for card in self.cards.values():
            cards.addWidget(card)

        self.units_model = SummaryUnitsModel(self)
        self.units = QTableView()
        setup_table(self.units)
        self.units.setModel(self.units_model)
        self.units.horizontalHeader().setStretchLastSection(False)
        self.units.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(self.units_model.Column)):
            self.units.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.invoice_model = InvoiceLinesModel(self)
        self.invoice = QTableView()
        setup_table(self.invoice)
        self.invoice.setModel(self.invoice_model)
        self.invoice.horizontalHeader().setStretchLastSection(False)
        self.invoice.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.invoice.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.invoice.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.invoice.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.invoice_title = QLabel("Invoice")
        self.invoice_total = QLabel("")
        self.invoice_total.setAlignment(Qt.AlignmentFlag.AlignRight)

        for table in (self.units, self.invoice):
            table.setMinimumHeight(90)  # the splitter sizes them to their lines (see _fit_tables)
        summary_box = QWidget()
        summary_layout = QVBoxLayout(summary_box)
        summary_layout.setContentsMargins(0, 0, 0, 0)
        summary_layout.addWidget(QLabel("<b>Usage by unit</b>"))
        summary_layout.addWidget(self.units, 1)
        invoice_box = QWidget()
        invoice_layout = QVBoxLayout(invoice_box)
        invoice_layout.setContentsMargins(0, 0, 0, 0)
        invoice_layout.addWidget(self.invoice_title)
        invoice_layout.addWidget(self.invoice, 1)
        invoice_layout.addWidget(self.invoice_total)

        self.entries = LedgerView(desk, fixed_customer=True)
        self.entries.correct_requested.connect(self.correct_requested)
        self.entries.record_requested.connect(self.record_requested)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.entries, "Entries")
        self.chart = self._make_chart()
        self.tabs.addTab(self.chart, "Chart")

        upper = QSplitter(Qt.Orientation.Horizontal)
        upper.addWidget(summary_box)
        upper.addWidget(invoice_box)
        upper.setSizes([520, 620])
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(upper)
        body.addWidget(self.tabs)
        body.setSizes([200, 560])
        body.setStretchFactor(1, 3)
        self.body = body

        header = QGridLayout()
        header.addWidget(self.heading, 0, 0)
        header.addWidget(self.subheading, 1, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(header)
        layout.addLayout(cards)
        layout.addWidget(body, 1)

        self.customer.changed.connect(self._customer_chosen)
        self.period.currentIndexChanged.connect(lambda _i: self._period_chosen())
        desk.catalog_changed.connect(self.customer.set_catalog)
        desk.written.connect(lambda _what: self.refresh())
        desk.ledger_changed.connect(lambda _ledger: self._clear())
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(1500)
        self._throttle.timeout.connect(self.refresh)
        desk.entries_appeared.connect(lambda _latest: self._throttle.start() if self.isVisible() else None)
        self._set_export_enabled(False)

    def _make_chart(self) -> QWidget:
        # Charts are built by their own module (meterdesk.ui.charts); without it the tab says so.
        try:
            from meterdesk.ui.charts import ChartsPage
        except ImportError:
            placeholder = QLabel("Charts are not available in this build (meterdesk.ui.charts is missing).")
            placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            return placeholder
        chart = ChartsPage(self.desk.ledger_provider)
        if hasattr(chart, "set_customer_list_visible"):
            chart.set_customer_list_visible(False)
        return chart

    # -- choosing ------------------------------------------------------------------------------------
    def show_customer(self, customer_id: str, period: str | None = None) -> None:
        self.customer.blockSignals(True)
        self.customer.set_customer(customer_id)
        self.customer.blockSignals(False)
        self._load(customer_id, period)

    def _customer_chosen(self) -> None:
        customer_id = self.customer.customer_id()
        if self.desk.catalog.customer(customer_id) is not None:
            self._load(customer_id, None)

    def _period_chosen(self) -> None:
        customer_id = self.customer.customer_id()
        if customer_id and self.period.currentData():
            self._load(customer_id, self.period.currentData())

    def refresh(self) -> None:
        if self.readout is not None:
            self._load(self.readout.summary.customer, self.readout.summary.period, keep_entries=True)

    def _clear(self) -> None:
        self.readout = None
        self.heading.setText("Choose a customer")
        self.subheading.setText("")
        self.units_model.set_rows([])
        self.invoice_model.set_rows([])
        self._set_export_enabled(False)

    def _load(self, customer_id: str, period: str | None, *, keep_entries: bool = False) -> None:
        if not customer_id:
            return
        self._loading_for = (customer_id, period or "")
        self.desk.run(
            lambda ledger, job: read_period(ledger, customer_id, period),
            on_done=lambda readout, k=keep_entries: self._show(readout, k),
            key="customer-detail",
            description=f"reading the summary of {customer_id}",
            owner=self,
        )
        chart = self.chart
        if hasattr(chart, "show_customer") and not keep_entries:
            chart.show_customer(customer_id)

    def _show(self, readout: PeriodReadout, keep_entries: bool) -> None:
        self.readout = readout
        summary, invoice = readout.summary, readout.invoice
        currency = summary.currency
        self.period.blockSignals(True)
        self.period.clear()
        for name in readout.periods:
            self.period.addItem(name, name)
        self.period.setCurrentIndex(max(0, self.period.findData(summary.period)))
        self.period.blockSignals(False)
        customer = self.desk.catalog.customer(summary.customer)
        self.heading.setText(f"{summary.name}  ({summary.customer})")
        mode = "prepaid — usage is charged to the balance as recorded" if summary.mode == "prepaid" else "invoiced at period close"
        plan = f"plan {summary.plan} v{summary.plan_version}" if summary.plan else "no plan in this period"
        email = f" · {customer.email}" if customer and customer.email else ""
        self.subheading.setText(f"{plan} · {mode} · {currency}{email}")
        self.cards["base_fee"].set(money_text(summary.base_fee, currency))
        self.cards["usage"].set(money_text(summary.usage_amount, currency), f"{summary.corrections} correction(s)" if summary.corrections else "")
        self.cards["total"].set(money_text(summary.total, currency), f"period {summary.period}")
        status = f"closed, invoice #{invoice.id}" if invoice.closed else "period open: preview"
        self.cards["due"].set(money_text(invoice.total, currency), status)
        if summary.balance is None:
            self.cards["balance"].set("—", "not prepaid")
        else:
            limit = customer.credit_limit if customer else None
            colour = "#b3261e" if (limit is not None and summary.balance < -limit) else "#a65f00" if summary.balance < 0 else ""
            note = "over the credit limit" if colour == "#b3261e" else "negative" if colour else ""
            self.cards["balance"].set(money_text(summary.balance, currency), note, colour)
        self.units_model.set_summary(summary.units, currency)
        self.invoice_model.set_invoice(invoice.lines, currency)
        self.invoice_title.setText(f"<b>Invoice {'#' + str(invoice.id) + ' (closed, frozen)' if invoice.closed else 'preview'}</b> — {invoice.period}")
        self.invoice_total.setText(f"<b>Total {money_text(invoice.total, currency)}</b>")
        self._set_export_enabled(True)
        self._fit_tables(len(summary.units), len(invoice.lines))
        if not keep_entries or self.entries._customer != summary.customer:
            self.entries._customer = summary.customer
            self.entries.set_period(summary.period or "")

    def _fit_tables(self, unit_rows: int, invoice_rows: int) -> None:
        """Give the summary and invoice just the height their lines need; the entries and chart get the rest."""
        row = self.units.verticalHeader().defaultSectionSize()
        needed = self.units.horizontalHeader().height() + row * max(unit_rows, invoice_rows, 2) + 70
        total = sum(self.body.sizes())
        if total > 0:
            upper = min(needed, total // 2)
            self.body.setSizes([upper, total - upper])

    def _set_export_enabled(self, enabled: bool) -> None:
        self.copy_button.setEnabled(enabled)
        self.export_button.setEnabled(enabled)

    # -- copy and export --------------------------------------------------------------------------------
    def summary_text(self, kind: str) -> str:
        if self.readout is None:
            return ""
        return summary_json(self.readout.summary) if kind == "json" else summary_csv(self.readout.summary)

    def copy_summary(self, kind: str = "csv") -> None:
        if self.readout is not None:
            QGuiApplication.clipboard().setText(self.summary_text(kind))
            self.desk.message.emit(f"Summary copied as {kind.upper()}")

    def export_summary(self, path: str | None = None) -> Path | None:
        if self.readout is None:
            return None
        if path is None:
            summary = self.readout.summary
            suggested = f"{summary.customer}-{summary.period}-summary.csv"
            path, _ = QFileDialog.getSaveFileName(self, "Export summary", suggested, "CSV (*.csv);;JSON (*.json)")
            if not path:
                return None
        target = Path(path)
        kind = "json" if target.suffix.lower() == ".json" else "csv"
        try:
            target.write_text(self.summary_text(kind), encoding="utf-8")
        except OSError as error:
            from meterdesk.domain.errors import InvalidInput

            self.desk.failed.emit(InvalidInput("file", f"cannot write {target}: {error.strerror or error}"), "exporting the summary")
            return None
        self.desk.message.emit(f"Summary exported to {target}")
        return target
