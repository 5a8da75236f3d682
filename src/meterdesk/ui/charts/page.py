"""ChartsPage: browse customers (arrow keys) beside their usage chart; period, buckets, unit; export."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

from PySide6.QtCore import QDate, QEvent, QModelIndex, QSize, QSortFilterProxyModel, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeyEvent, QPainter, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionComboBox,
    QStyleOptionViewItem,
    QStylePainter,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from meterdesk.ui.charts import style
from meterdesk.ui.charts.model import ChartModel
from meterdesk.ui.charts.widget import CustomerChart
from meterdesk.ui.charts.worker import (
    CUSTOM,
    LAST_90_DAYS,
    LAST_PERIOD,
    THIS_PERIOD,
    ChartJob,
    ChartRequest,
    CustomersJob,
    Generation,
)
from meterdesk.ui.tasks import SHUTDOWN_WAIT_MS

log = logging.getLogger(__name__)

CUSTOMER_ID_ROLE = Qt.ItemDataRole.UserRole + 1
FILTER_TEXT_ROLE = Qt.ItemDataRole.UserRole + 2
DETAIL_ROLE = Qt.ItemDataRole.UserRole + 3

PRESET_CHOICES = (
    ("This period", THIS_PERIOD),
    ("Last period", LAST_PERIOD),
    ("Last 90 days", LAST_90_DAYS),
    ("Custom range…", CUSTOM),
)
GRANULARITY_CHOICES = (("Hourly", "hour"), ("Daily", "day"), ("Monthly", "month"))
ALL_UNITS = ""


class _CustomerDelegate(QStyledItemDelegate):
    """Two lines per customer: the name, and under it in grey the id, plan and settlement mode."""

    WIDTH = 160  # an item's width: the list is never narrower (ChartsPage._build)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        item = QStyleOptionViewItem(option)
        self.initStyleOption(item, index)
        name = index.data(Qt.ItemDataRole.DisplayRole) or ""
        detail = index.data(DETAIL_ROLE) or ""
        item.text = ""
        widget = item.widget
        (widget.style() if widget else QApplication.style()).drawControl(QStyle.ControlElement.CE_ItemViewItem, item, painter, widget)
        selected = bool(item.state & QStyle.StateFlag.State_Selected)
        palette = item.palette
        text_colour = palette.highlightedText().color() if selected else palette.text().color()
        detail_colour = QColor(text_colour) if selected else QColor(style.MUTED)
        rect = item.rect.adjusted(8, 3, -6, -3)
        metrics = QFontMetrics(item.font)
        painter.save()
        painter.setPen(text_colour)
        bold = QFont(item.font)
        bold.setWeight(QFont.Weight.DemiBold)
        painter.setFont(bold)
        painter.drawText(rect.x(), rect.y() + metrics.ascent(), QFontMetrics(bold).elidedText(name, Qt.TextElideMode.ElideRight, rect.width()))
        painter.setFont(item.font)
        painter.setPen(detail_colour)
        painter.drawText(rect.x(), rect.y() + metrics.height() + metrics.ascent() + 1, metrics.elidedText(detail, Qt.TextElideMode.ElideRight, rect.width()))
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 - Qt's name
        metrics = QFontMetrics(option.font)
        return QSize(self.WIDTH, metrics.height() * 2 + 9)


class _FilterEdit(QLineEdit):
    """The customer filter; Up, Down, Page Up/Down move through the list without leaving the box."""

    def __init__(self, target: QListView) -> None:
        super().__init__()
        self.target = target

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
            self.target.keyPressEvent(event)
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.target.setFocus(Qt.FocusReason.ShortcutFocusReason)
            return
        super().keyPressEvent(event)


class _UnitBox(QComboBox):
    """The unit selector, as wide as its longest unit name up to a cap: sized to the name alone, a long one
    widened the toolbar and with it the page past a 1280-pixel window. A name wider than the box is elided;
    the popup and the tooltip (only then) show it whole."""

    def __init__(self) -> None:
        super().__init__()
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        # Room for "Storage (GB, peak) (storage_gb)", the demo's longest; the toolbar's width is taken from
        # the customer list beside it.
        self.setMaximumWidth(40 * self.fontMetrics().averageCharWidth())

    def _option(self) -> tuple[QStyleOptionComboBox, str]:
        """The style option with the current text elided to the edit field, and the whole text."""
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        field = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, self)
        whole = option.currentText
        option.currentText = self.fontMetrics().elidedText(whole, Qt.TextElideMode.ElideRight, field.width() - 2)
        return option, whole

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # QComboBox.paintEvent's two steps, with the text elided: Qt's own would cut it off mid-letter.
        painter = QStylePainter(self)
        option, _ = self._option()
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and not self.toolTip():
            option, whole = self._option()
            if option.currentText != whole:  # only an elided name has a tooltip: the whole name
                QToolTip.showText(event.globalPos(), whole, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)


class ChartsPage(QWidget):
    """Customer list, chart and controls. `ledger_provider()` returns the open Ledger (or None); it is
    asked again for every read, so the shell may switch ledgers and call `ledger_switched()`."""

    bucketActivated = Signal(str, str, "qint64", "qint64")  # customer, unit, bucket start (us), bucket end (us)
    chartShown = Signal(str)  # the customer whose data is now drawn
    staleResultDropped = Signal(str)  # a superseded request's customer, whose result was thrown away
    loadFailed = Signal(str)  # the message shown
    customersLoaded = Signal(int)

    DEBOUNCE_MS = 35

    def __init__(self, ledger_provider: Callable[[], object], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chartsPage")
        self.ledger_provider = ledger_provider
        #: Called on the worker with each ChartRequest before it reads (tests slow a fetch down with it).
        self.fetch_hook: Callable[[ChartRequest], None] | None = None
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._chart_generation = Generation()
        self._customer_generation = Generation()
        self._jobs: dict[int, ChartRequest] = {}
        self._customer: str | None = None
        self._pending_selection: str | None = None
        self._shown_request: ChartRequest | None = None
        self._started = False
        self._list_wanted = True
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(self.DEBOUNCE_MS)
        self._debounce.timeout.connect(self._fetch)
        self._build()
        application = QApplication.instance()
        if application is not None:
            application.aboutToQuit.connect(self.shutdown)

    # -- layout ----------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.customer_model = QStandardItemModel(self)
        self.customer_proxy = QSortFilterProxyModel(self)
        self.customer_proxy.setSourceModel(self.customer_model)
        self.customer_proxy.setFilterRole(FILTER_TEXT_ROLE)
        self.customer_proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.customer_list = QListView()
        self.customer_list.setObjectName("chartCustomerList")
        self.customer_list.setModel(self.customer_proxy)
        self.customer_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.customer_list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.customer_list.setUniformItemSizes(True)
        self.customer_list.setItemDelegate(_CustomerDelegate(self.customer_list))
        self.customer_list.selectionModel().currentChanged.connect(self._current_changed)
        self.filter_edit = _FilterEdit(self.customer_list)
        self.filter_edit.setPlaceholderText("Filter customers")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.customer_proxy.setFilterFixedString)

        self.list_panel = QWidget()
        left = QVBoxLayout(self.list_panel)
        left.setContentsMargins(8, 4, 4, 8)
        left.setSpacing(6)
        title = QLabel("Customers")
        title.setStyleSheet(f"font-weight: 600; color: {style.TEXT};")
        left.addWidget(title)
        left.addWidget(self.filter_edit)
        left.addWidget(self.customer_list, 1)
        hint = QLabel("↑ ↓ to browse")
        hint.setStyleSheet(f"color: {style.MUTED};")
        left.addWidget(hint)

        self.preset_box = QComboBox()
        for text, value in PRESET_CHOICES:
            self.preset_box.addItem(text, value)
        self.preset_box.currentIndexChanged.connect(self._preset_changed)
        self.from_edit = QDateEdit(calendarPopup=True)
        self.to_edit = QDateEdit(calendarPopup=True)
        for edit in (self.from_edit, self.to_edit):
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setDate(QDate.currentDate())
            edit.dateChanged.connect(self._range_changed)
            edit.hide()
        self.from_edit.setDate(QDate(QDate.currentDate().year(), QDate.currentDate().month(), 1))
        self.range_dash = QLabel("–")
        self.range_dash.hide()
        self.granularity_box = QComboBox()
        self.granularity_box.addItem("Auto", None)
        for text, value in GRANULARITY_CHOICES:
            self.granularity_box.addItem(text, value)
        self.granularity_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.granularity_box.setMinimumContentsLength(len("Auto (monthly)"))
        self.granularity_box.currentIndexChanged.connect(lambda _: self._schedule())
        self.unit_label = QLabel("Unit")
        self.unit_box = _UnitBox()
        self.unit_box.currentIndexChanged.connect(self._unit_changed)
        self.unit_label.hide()
        self.unit_box.hide()
        self.status = QLabel()
        self.status.setStyleSheet(f"color: {style.MUTED};")
        self.png_button = QPushButton("Export PNG…")
        self.png_button.clicked.connect(lambda: self.export_png())
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.clicked.connect(lambda: self.export_csv())

        toolbar = QHBoxLayout()
        toolbar.setContentsMargins(8, 8, 8, 4)
        toolbar.setSpacing(6)
        toolbar.addWidget(QLabel("Period"))
        toolbar.addWidget(self.preset_box)
        toolbar.addWidget(self.from_edit)
        toolbar.addWidget(self.range_dash)
        toolbar.addWidget(self.to_edit)
        toolbar.addSpacing(10)
        toolbar.addWidget(QLabel("Buckets"))
        toolbar.addWidget(self.granularity_box)
        toolbar.addSpacing(10)
        toolbar.addWidget(self.unit_label)
        toolbar.addWidget(self.unit_box)
        toolbar.addStretch(1)
        toolbar.addWidget(self.status)
        toolbar.addWidget(self.png_button)
        toolbar.addWidget(self.csv_button)

        self.banner = QFrame()
        self.banner.setObjectName("chartBanner")
        self.banner.setStyleSheet(
            "#chartBanner { background: #fdecea; border: 1px solid #f1b0a8; border-radius: 4px; }"
            f" QLabel {{ color: {style.REVERSAL}; }}"
        )
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(10, 6, 6, 6)
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        retry = QPushButton("Retry")
        retry.clicked.connect(self.reload)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(retry)
        self.banner.hide()

        self.chart = CustomerChart()
        self.chart.bucketActivated.connect(self.bucketActivated)

        # A customer with many units gets rows of their minimum height and a scroll bar, instead of rows
        # squeezed below it, whose plots were cut off at the bottom (zero out of sight) and the axis titles
        # at the top.
        self.chart_scroll = QScrollArea()
        self.chart_scroll.setWidgetResizable(True)
        # Vertically only: a row keeps the chart's width, and a title too long for it is shortened.
        self.chart_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.chart.setMinimumWidth(320)
        self.chart_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.chart_scroll.setWidget(self.chart)

        # The toolbar spans the page above the list and the chart: beside the list, its minimum width took
        # the list's room in a narrow window (85 px of customer names in a 1100-pixel window).
        frame = 2 * self.customer_list.frameWidth() + self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        self.customer_list.setMinimumWidth(_CustomerDelegate.WIDTH + frame)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.list_panel)
        self.splitter.addWidget(self.chart_scroll)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([230, 1050])
        banner_box = QHBoxLayout()
        banner_box.setContentsMargins(8, 0, 8, 4)
        banner_box.addWidget(self.banner)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(toolbar)
        layout.addLayout(banner_box)
        layout.addWidget(self.splitter, 1)
        self.setFocusProxy(self.customer_list)

    # -- public ----------------------------------------------------------------------------------------
    def show_customer(self, customer_id: str) -> None:
        """Chart this customer (selecting it in the list when the list has it)."""
        self._ensure_started()
        if not self._select_in_list(customer_id):
            self._pending_selection = customer_id
            self._set_customer(customer_id)

    def current_customer(self) -> str | None:
        return self._customer

    def shown_customer(self) -> str | None:
        """The customer whose data is on screen (may lag behind `current_customer` while loading)."""
        return self.chart.model.customer if self.chart.model else None

    def set_customer_list_visible(self, visible: bool) -> None:
        """Hide the list when the page is embedded in a customer's detail view (it is then not read)."""
        self._list_wanted = visible
        self.list_panel.setVisible(visible)
        if visible and self._started and not self.customer_model.rowCount():
            self._load_customers()

    def reload(self) -> None:
        """Read the customer list and the current chart again (to retry)."""
        self._started = True
        self._hide_banner()
        if self._list_wanted:
            self._load_customers()
        self._shown_request = None
        self._schedule()

    def ledger_switched(self) -> None:
        """The shell opened another ledger (or none): what the previous one showed goes, results of reads
        begun on it are dropped when they arrive, and a page already shown reads its customer list again
        (the first customer is charted; an embedded page waits for `show_customer`)."""
        self.customer_list.selectionModel().blockSignals(True)  # emptying the list moves its current row
        try:
            self.customer_model.clear()
        finally:
            self.customer_list.selectionModel().blockSignals(False)
        self._forget_reads()
        self._customer = None
        self._pending_selection = None
        self._shown_request = None
        self.status.clear()
        self._hide_banner()
        self.chart.clear()
        if self._started and self._list_wanted:
            self._load_customers()

    def refresh(self) -> None:
        """Read the current chart again (new usage arrived); the customer list stays as it is."""
        self._shown_request = None
        self._hide_banner()
        self._schedule()

    def set_preset(self, preset: str, first_day: date | None = None, last_day: date | None = None) -> None:
        if first_day is not None:
            self.from_edit.setDate(QDate(first_day.year, first_day.month, first_day.day))
        if last_day is not None:
            self.to_edit.setDate(QDate(last_day.year, last_day.month, last_day.day))
        index = self.preset_box.findData(preset)
        if index < 0:
            raise ValueError(f"unknown period preset {preset!r}")
        self.preset_box.setCurrentIndex(index)

    def set_granularity(self, granularity: str | None) -> None:
        index = self.granularity_box.findData(granularity)
        if index < 0:
            raise ValueError(f"unknown granularity {granularity!r}")
        self.granularity_box.setCurrentIndex(index)

    def set_unit(self, unit: str | None) -> None:
        index = self.unit_box.findData(unit or ALL_UNITS)
        if index >= 0:
            self.unit_box.setCurrentIndex(index)
        self.chart.set_unit_filter(unit or None)

    def is_busy(self) -> bool:
        return bool(self._jobs) or self._debounce.isActive()

    def wait_for_workers(self, msecs: int = 30_000) -> bool:
        """Block until running reads finish (tests and shutdown); their results arrive as queued signals."""
        return self._pool.waitForDone(msecs)

    def shutdown(self, msecs: int = SHUTDOWN_WAIT_MS) -> None:
        """Forget queued reads and wait (bounded, like the desk's runner) for running ones, before the ledger
        is closed."""
        self._forget_reads()
        self._pool.clear()
        self._pool.waitForDone(msecs)

    def _forget_reads(self) -> None:
        """No read scheduled, and the results of those already begun dropped when they arrive."""
        self._debounce.stop()
        self._chart_generation.next()
        self._customer_generation.next()

    def export_png(self, path: str | Path | None = None) -> Path | None:
        if self.chart.model is None:
            self._show_banner("There is no chart to export yet.")
            return None
        path = path or self._ask_path("Export chart as PNG", "png", "PNG image (*.png)")
        if not path:
            return None
        try:
            self.chart.export_png(path)
        except OSError as error:
            self._show_banner(f"Could not export the chart: {error}")
            return None
        return Path(path)

    def export_csv(self, path: str | Path | None = None) -> Path | None:
        if self.chart.model is None:
            self._show_banner("There is no chart to export yet.")
            return None
        path = path or self._ask_path("Export chart data as CSV", "csv", "CSV file (*.csv)")
        if not path:
            return None
        try:
            self.chart.export_csv(path)
        except OSError as error:
            self._show_banner(f"Could not export the data: {error}")
            return None
        return Path(path)

    def _ask_path(self, title: str, suffix: str, file_filter: str) -> str:
        model = self.chart.model
        name = f"{model.customer}-{model.period or model.granularity}.{suffix}" if model else f"chart.{suffix}"
        path, _ = QFileDialog.getSaveFileName(self, title, name, file_filter)
        return path

    # -- Qt events -------------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._ensure_started()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)

    def _ensure_started(self) -> None:
        if not self._started:
            self.reload()

    # -- customers ---------------------------------------------------------------------------------------
    def _ledger(self):
        try:
            ledger = self.ledger_provider()
        except Exception as error:  # noqa: BLE001 - the shell's problem, shown rather than raised
            self._show_banner(f"No ledger is available: {error}")
            return None
        if ledger is None:
            self._show_banner("No ledger is open.")
        return ledger

    def _load_customers(self) -> None:
        ledger = self._ledger()
        if ledger is None:
            return
        job = CustomersJob(self._customer_generation.next(), ledger, self._customer_generation)
        job.signals.loaded.connect(self._customers_loaded)
        job.signals.failed.connect(self._customers_failed)
        self._pool.start(job)

    def _customers_loaded(self, generation: int, customers: list) -> None:
        if not self._customer_generation.is_current(generation):
            return
        wanted = self._pending_selection or self._customer
        self.customer_list.selectionModel().blockSignals(True)
        try:
            self.customer_model.clear()
            for info in customers:
                row = info.customer
                mode = "prepaid" if row.mode == "prepaid" else "invoiced"
                plan = info.plan_code or "no plan"
                item = QStandardItem(row.name)
                item.setData(f"{row.external_id} · {plan} · {mode}", DETAIL_ROLE)
                item.setData(row.external_id, CUSTOMER_ID_ROLE)
                item.setData(f"{row.external_id} {row.name} {plan} {mode} {row.email or ''}", FILTER_TEXT_ROLE)
                item.setToolTip(f"{row.name} ({row.external_id})")
                self.customer_model.appendRow(item)
        finally:
            self.customer_list.selectionModel().blockSignals(False)
        self.customersLoaded.emit(len(customers))
        if wanted and self._select_in_list(wanted):
            self._pending_selection = None
        elif self.customer_proxy.rowCount() and not self._customer:
            self.customer_list.setCurrentIndex(self.customer_proxy.index(0, 0))

    def _customers_failed(self, generation: int, message: str) -> None:
        if self._customer_generation.is_current(generation):
            self._show_banner(message)
            self.loadFailed.emit(message)

    def _select_in_list(self, customer_id: str) -> bool:
        for row in range(self.customer_proxy.rowCount()):
            index = self.customer_proxy.index(row, 0)
            if index.data(CUSTOMER_ID_ROLE) == customer_id:
                if self.customer_list.currentIndex() != index:
                    self.customer_list.setCurrentIndex(index)
                else:
                    self._set_customer(customer_id)
                return True
        return False

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        customer = current.data(CUSTOMER_ID_ROLE) if current.isValid() else None
        if customer:
            self._set_customer(customer)

    def _set_customer(self, customer: str) -> None:
        if customer == self._customer and self._already_requested(customer):
            return
        self._customer = customer
        self._schedule()

    def _already_requested(self, customer: str) -> bool:
        """Whether `customer`'s chart, as the controls ask for it now, is on screen or on its way."""
        if self._debounce.isActive():
            return True
        current = self._chart_generation.current
        if any(r.generation == current and r.customer == customer for r in self._jobs.values()):
            return True
        wanted = self._request(current)
        return self._shown_request is not None and wanted is not None and _same_chart(self._shown_request, wanted)

    # -- controls ----------------------------------------------------------------------------------------
    def _preset_changed(self, _index: int) -> None:
        custom = self.preset_box.currentData() == CUSTOM
        for widget in (self.from_edit, self.range_dash, self.to_edit):
            widget.setVisible(custom)
        self._schedule()

    def _range_changed(self, *_args) -> None:
        if self.preset_box.currentData() == CUSTOM:
            self._schedule()

    def _unit_changed(self, _index: int) -> None:
        unit = self.unit_box.currentData()
        self.chart.set_unit_filter(unit or None)

    def _request(self, generation: int) -> ChartRequest | None:
        if not self._customer:
            return None
        preset = self.preset_box.currentData()
        first = last = None
        if preset == CUSTOM:
            first, last = self.from_edit.date().toPython(), self.to_edit.date().toPython()
        return ChartRequest(generation, self._customer, preset, first, last, self.granularity_box.currentData())

    # -- fetching ----------------------------------------------------------------------------------------
    def _schedule(self) -> None:
        """A new request supersedes every earlier one at once; the read starts when input pauses briefly,
        so a run of key presses reads only what it ends on."""
        self._chart_generation.next()
        if self._customer:
            self.status.setText(f"Loading {self._customer}…")
        self._debounce.start()

    def _fetch(self) -> None:
        request = self._request(self._chart_generation.current)
        if request is None:
            self.status.clear()
            return
        if request.preset == CUSTOM and request.last_day < request.first_day:
            self.status.clear()
            self._show_banner("The custom range ends before it starts; pick a later end date.")
            return
        shown = self._shown_request
        if shown is not None and _same_chart(shown, request) and self.chart.model is not None:
            self.status.clear()
            return
        ledger = self._ledger()
        if ledger is None:
            self.status.clear()
            return
        job = ChartJob(request, ledger, self._chart_generation, self.fetch_hook)
        job.signals.loaded.connect(self._chart_loaded)
        job.signals.failed.connect(self._chart_failed)
        job.signals.skipped.connect(self._chart_skipped)
        self._jobs[request.generation] = request
        self._pool.start(job)

    def _chart_loaded(self, generation: int, model: ChartModel) -> None:
        request = self._jobs.pop(generation, None)
        if not self._chart_generation.is_current(generation):
            self.staleResultDropped.emit(model.customer)
            return
        self._shown_request = request
        self._hide_banner()
        self.status.clear()
        self._show_units(model)
        self.chart.set_model(model)
        auto = dict((value, text) for text, value in GRANULARITY_CHOICES)[model.granularity]
        self.granularity_box.setItemText(0, f"Auto ({auto.lower()})")
        self.chartShown.emit(model.customer)

    def _chart_failed(self, generation: int, message: str) -> None:
        request = self._jobs.pop(generation, None)
        if not self._chart_generation.is_current(generation):
            self.staleResultDropped.emit(request.customer if request else "")
            return
        self._shown_request = None
        self.status.clear()
        self.chart.clear()
        self._show_banner(message)
        self.loadFailed.emit(message)

    def _chart_skipped(self, generation: int) -> None:
        request = self._jobs.pop(generation, None)
        self.staleResultDropped.emit(request.customer if request else "")

    def _show_units(self, model: ChartModel) -> None:
        chosen = self.unit_box.currentData() or ALL_UNITS
        self.unit_box.blockSignals(True)
        try:
            self.unit_box.clear()
            self.unit_box.addItem("All units", ALL_UNITS)
            for track in model.units:
                self.unit_box.addItem(f"{track.name} ({track.code})", track.code)
            index = self.unit_box.findData(chosen)
            self.unit_box.setCurrentIndex(index if index >= 0 else 0)
        finally:
            self.unit_box.blockSignals(False)
        several = len(model.units) > 1
        self.unit_label.setVisible(several)
        self.unit_box.setVisible(several)
        self.chart.set_unit_filter(self.unit_box.currentData() or None)

    # -- messages ----------------------------------------------------------------------------------------
    def _show_banner(self, message: str) -> None:
        self.banner_text.setText(message)
        self.banner.show()

    def _hide_banner(self) -> None:
        self.banner.hide()

    def banner_message(self) -> str | None:
        return self.banner_text.text() if self.banner.isVisibleTo(self) else None


def _same_chart(first: ChartRequest, second: ChartRequest) -> bool:
    return (first.customer, first.preset, first.first_day, first.last_day, first.granularity) == (
        second.customer, second.preset, second.first_day, second.last_day, second.granularity,
    )
