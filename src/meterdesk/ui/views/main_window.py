"""The main window: a sidebar of pages, the actions of the desk, the message bar and the status line."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from meterdesk.services.billing import close_period
from meterdesk.services.entries import EntryRow
from meterdesk.services.ledgers import Ledger
from meterdesk.services.imports import import_usage
from meterdesk.services.verify import verify_ledger
from meterdesk.ui.desk import Desk
from meterdesk.ui.dialogs.correct_entry import CorrectEntryDialog
from meterdesk.ui.dialogs.forms import AssignPlanDialog, CustomerDialog, GrantCreditsDialog, UnitDialog
from meterdesk.ui.dialogs.progress import run_with_progress
from meterdesk.ui.dialogs.record_usage import RecordUsageDialog
from meterdesk.ui.dialogs.settings import SettingsDialog
from meterdesk.ui.formatting import zone_label
from meterdesk.ui.messages import Level, MessageBar
from meterdesk.ui.views.apikeys_page import ApiKeysPage
from meterdesk.ui.views.catalog_pages import PlansPage, UnitsPage
from meterdesk.ui.views.customers_page import CustomersPage
from meterdesk.ui.views.detail_page import CustomerDetailPage
from meterdesk.ui.views.ledger_page import LedgerView

SHORTCUTS_HELP = """
<table cellpadding=3>
<tr><td><b>Ctrl+1 … Ctrl+8</b></td><td>Customers, Customer detail, Usage ledger, Charts, Units, Plans, Settlement, API keys</td></tr>
<tr><td><b>Ctrl+R</b></td><td>Record usage (for the selected customer)</td></tr>
<tr><td><b>Ctrl+E</b></td><td>Correct the selected ledger entry</td></tr>
<tr><td><b>Ctrl+G</b></td><td>Grant credits to the selected prepaid customer</td></tr>
<tr><td><b>Ctrl+N</b></td><td>Add a customer</td></tr>
<tr><td><b>Ctrl+F</b></td><td>Search / filter on the current page</td></tr>
<tr><td><b>Ctrl+I</b></td><td>Import usage from a CSV or JSON Lines file</td></tr>
<tr><td><b>F5</b></td><td>Refresh what the page shows</td></tr>
<tr><td><b>Ctrl+,</b></td><td>Settings: database, staff name, time zone</td></tr>
<tr><td><b>Esc</b></td><td>Dismiss the message bar</td></tr>
</table>
<p>New entries written by anyone (other desks, the API, imports) appear in the ledger by themselves.</p>
"""


class MainWindow(QMainWindow):
    """Pages: Customers, Customer detail, Usage ledger, Charts, Units, Plans, Settlement, API keys."""

    def __init__(self, desk: Desk, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.setMinimumSize(QSize(1100, 700))
        self.resize(1440, 900)
        self.message_bar = MessageBar()
        desk.failed.connect(self._show_failure)
        desk.message.connect(self._show_note)
        desk.ledger_changed.connect(self._ledger_changed)

        self.customers = CustomersPage(desk)
        self.detail = CustomerDetailPage(desk)
        self.ledger_view = LedgerView(desk)
        self.charts = self._make_charts()
        self.units = UnitsPage(desk)
        self.plans = PlansPage(desk)
        self.pages: list[tuple[str, str, QWidget]] = [
            ("Customers", "Find a customer: plan, usage this period, balance", self.customers),
            ("Customer detail", "A customer's period: summary, invoice, entries, chart", self.detail),
            ("Usage ledger", "Every entry, newest first, live", self.ledger_view),
            ("Charts", "Usage over time per customer", self.charts),
            ("Units", "What your product meters", self.units),
            ("Plans", "Base fee and usage charges; the plan editor", self.plans),
        ]
        self.settlement = self._make_settlement()
        if self.settlement is not None:
            self.pages.append(("Settlement", "Close a period and send its invoices to Stripe", self.settlement))
        self.api_keys = ApiKeysPage(desk)
        self.pages.append(("API keys", "Keys of the usage API: create, see last use, revoke", self.api_keys))
        self.nav = QListWidget()
        self.nav.setObjectName("Nav")
        self.nav.setFixedWidth(190)
        self.nav.setSpacing(2)
        self.stack = QStackedWidget()
        for number, (title, tip, page) in enumerate(self.pages, start=1):
            item = QListWidgetItem(title, self.nav)
            item.setToolTip(f"{tip}  (Ctrl+{number})")
            item.setSizeHint(QSize(170, 38))
            self.stack.addWidget(page)
        self.nav.currentRowChanged.connect(self._page_changed)
        self.nav.setStyleSheet(
            "#Nav { border: none; background: palette(window); font-size: 11pt; }"
            "#Nav::item { padding: 6px 12px; border-radius: 6px; }"
            "#Nav::item:selected { background: #1d4f91; color: white; }"
        )
        self.page_title = QLabel()
        title_font = self.page_title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.45)
        title_font.setBold(True)
        self.page_title.setFont(title_font)
        self.page_hint = QLabel()
        self.page_hint.setStyleSheet("color: #666;")

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(14, 10, 14, 6)
        title_row = QHBoxLayout()
        title_row.addWidget(self.page_title)
        title_row.addSpacing(12)
        title_row.addWidget(self.page_hint, 1, Qt.AlignmentFlag.AlignBottom)
        content_layout.addLayout(title_row)
        content_layout.addWidget(self.message_bar)
        content_layout.addWidget(self.stack, 1)
        central = QWidget()
        central_layout = QHBoxLayout(central)
        central_layout.setContentsMargins(6, 6, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.nav)
        central_layout.addWidget(content, 1)
        self.setCentralWidget(central)

        self._build_actions()
        self.ledger_label = QLabel()
        self.actor_label = QLabel()
        self.busy_label = QLabel()
        self.statusBar().addWidget(self.ledger_label, 1)
        self.statusBar().addPermanentWidget(self.busy_label)
        self.statusBar().addPermanentWidget(self.actor_label)
        desk.runner.busy_changed.connect(lambda n: self.busy_label.setText("working…" if n else ""))

        self.customers.open_requested.connect(self.open_customer)
        self.customers.record_requested.connect(self.record_usage)
        self.customers.add_requested.connect(self.add_customer)
        self.customers.edit_requested.connect(lambda c: self._form(CustomerDialog(desk, self, existing=c)))
        self.customers.assign_requested.connect(lambda c: self._form(AssignPlanDialog(desk, c, self)))
        self.customers.grant_requested.connect(lambda c: self._form(GrantCreditsDialog(desk, c, self)))
        self.units.define_requested.connect(lambda: self._form(UnitDialog(desk, self)))
        for view in (self.ledger_view, self.detail):
            view.correct_requested.connect(self.correct_entry)
            view.record_requested.connect(self.record_usage)
        self._catalog_throttle = QTimer(self)
        self._catalog_throttle.setSingleShot(True)
        self._catalog_throttle.setInterval(3000)
        self._catalog_throttle.timeout.connect(desk.reload_catalog)
        desk.entries_appeared.connect(lambda _latest: self._catalog_throttle.start() if not self._catalog_throttle.isActive() else None)
        for page in self._chart_pages():
            desk.close_waits_for(page.wait_for_workers)
        self.nav.setCurrentRow(0)
        self._ledger_changed(desk.ledger)

    def _make_charts(self) -> QWidget:
        try:
            from meterdesk.ui.charts import ChartsPage
        except ImportError:  # the Charts page is built separately; the app works without it
            placeholder = QLabel("Charts are not available in this build.")
            placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            return placeholder
        return ChartsPage(self.desk.ledger_provider)

    def _chart_pages(self) -> list[QWidget]:
        """The Charts page and the detail page's chart tab (not the placeholders shown when the charts module
        is missing). They read on thread pools of their own, not on the desk's runner."""
        return [page for page in (self.charts, self.detail.chart) if hasattr(page, "ledger_switched")]

    def _make_settlement(self) -> QWidget | None:
        # The settlement page is built with the Stripe gateway; without it the desk has six pages.
        try:
            from meterdesk.ui.views.settlement_page import SettlementPage
        except ImportError:
            return None
        return SettlementPage(self.desk)

    # -- actions ----------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        def action(text: str, shortcut: str | QKeySequence.StandardKey | None, tip: str, slot) -> QAction:
            created = QAction(text, self)
            if shortcut is not None:
                created.setShortcut(QKeySequence(shortcut))
            created.setToolTip(f"{tip} ({created.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})" if shortcut else tip)
            created.setStatusTip(tip)
            created.triggered.connect(slot)
            self.addAction(created)
            return created

        self.record_action = action("Record usage…", "Ctrl+R", "Record usage by hand for a customer", lambda: self.record_usage(self._context_customer()))
        self.correct_action = action("Correct entry…", "Ctrl+E", "Correct the selected ledger entry: new amount and a reason", self._correct_selected)
        self.grant_action = action("Grant credits…", "Ctrl+G", "Top up the selected prepaid customer's balance", self._grant_selected)
        self.add_customer_action = action("Add customer…", "Ctrl+N", "Add a customer on a plan", self.add_customer)
        self.import_action = action("Import usage…", "Ctrl+I", "Import a CSV or JSON Lines file of usage events", self.import_file)
        # triggered(checked) would arrive as the period: the action always asks for it.
        self.close_action = action("Close period…", None, "Freeze the invoices of an ended period", lambda: self.close_period())
        self.verify_action = action("Verify ledger…", None, "Recompute every derived figure from the entries and list each difference", self.verify_ledger)
        self.refresh_action = action("Refresh", "F5", "Read the page again from the database", self.refresh)
        self.filter_action = action("Search", "Ctrl+F", "Search or filter the current page", self._focus_filter)
        self.settings_action = action("Settings…", "Ctrl+,", "Database, staff name and billing time zone", self.open_settings)
        self.help_action = action("Keyboard shortcuts", "F1", "Show the keyboard shortcuts", self.show_shortcuts)
        dismiss = action("Dismiss message", "Esc", "Dismiss the message bar", self.message_bar.dismiss)
        dismiss.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        # One action per page, in the Go menu too: a second action on the same keys makes Qt ignore both.
        self.page_actions = [
            action(title, f"Ctrl+{number}", f"Show {title}", lambda _c=False, n=number: self.nav.setCurrentRow(n - 1))
            for number, (title, _tip, _page) in enumerate(self.pages, start=1)
        ]

        toolbar = QToolBar("Actions")
        toolbar.setObjectName("MainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for item in (self.record_action, self.correct_action, self.grant_action, self.add_customer_action, None,
                     self.import_action, self.close_action, None, self.refresh_action, self.settings_action, self.help_action):
            if item is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(item)
        self.addToolBar(toolbar)
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for item in (self.import_action, self.close_action, self.settings_action):
            file_menu.addAction(item)
        file_menu.addSeparator()
        file_menu.addAction("Quit", QKeySequence.StandardKey.Quit, self.close)
        ledger_menu = menu.addMenu("&Ledger")
        for item in (self.record_action, self.correct_action, self.grant_action, self.add_customer_action, self.refresh_action, self.filter_action):
            ledger_menu.addAction(item)
        ledger_menu.addSeparator()
        ledger_menu.addAction(self.verify_action)
        go_menu = menu.addMenu("&Go")
        for item in self.page_actions:
            go_menu.addAction(item)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.help_action)
        help_menu.addAction("About meterdesk", self.show_about)

    # -- pages ------------------------------------------------------------------------------------
    def _page_changed(self, row: int) -> None:
        if not 0 <= row < len(self.pages):
            return
        title, tip, page = self.pages[row]
        self.stack.setCurrentWidget(page)
        self.page_title.setText(title)
        self.page_hint.setText(tip)

    def show_page(self, page: QWidget) -> None:
        for row, (_title, _tip, candidate) in enumerate(self.pages):
            if candidate is page:
                self.nav.setCurrentRow(row)

    def current_page(self) -> QWidget:
        return self.stack.currentWidget()

    def open_customer(self, customer_id: str) -> None:
        self.detail.show_customer(customer_id)
        self.show_page(self.detail)

    def _context_customer(self) -> str:
        page = self.current_page()
        if page is self.customers and self.customers.selected():
            return self.customers.selected().id
        if page is self.detail and self.detail.readout:
            return self.detail.readout.summary.customer
        if page is self.ledger_view and self.ledger_view.selected_entry():
            return self.ledger_view.selected_entry().customer
        return ""

    def _focus_filter(self) -> None:
        page = self.current_page()
        if page is self.customers:
            self.customers.focus_search()
        elif page is self.ledger_view:
            self.ledger_view.focus_filter()
        elif page is self.detail:
            self.detail.entries.focus_filter()

    def refresh(self) -> None:
        self.desk.reload_catalog()
        page = self.current_page()
        if page is self.ledger_view:
            self.ledger_view.refresh()
        elif page is self.detail:
            self.detail.refresh()
            self.detail.entries.refresh()
        elif hasattr(page, "refresh"):
            page.refresh()

    # -- ledger -----------------------------------------------------------------------------------
    def _ledger_changed(self, ledger: Ledger | None) -> None:
        if ledger is None:
            self.setWindowTitle("meterdesk — no ledger open")
            self.ledger_label.setText("No ledger open: choose a database in Settings (Ctrl+,)")
        else:
            self.setWindowTitle(f"meterdesk — {ledger.name}")
            self.ledger_label.setText(f"Ledger: {ledger.name}  ·  billing time zone {zone_label(ledger.timezone)}")
        self.actor_label.setText(f"Signed in as {self.desk.actor()}")
        for page in self._chart_pages():
            page.ledger_switched()
        for item in (self.record_action, self.correct_action, self.grant_action, self.add_customer_action, self.import_action, self.close_action, self.verify_action):
            item.setEnabled(ledger is not None)

    def set_opening(self, name: str) -> None:
        self.setWindowTitle(f"meterdesk — opening {name}…")
        self.ledger_label.setText(f"Opening {name}…")

    # -- feedback ---------------------------------------------------------------------------------
    def _show_failure(self, error: BaseException, doing: str) -> None:
        from meterdesk.domain.errors import Unavailable

        if isinstance(error, Unavailable):
            self.message_bar.show_error(error, doing, action="Settings…", on_action=self.open_settings)
        else:
            self.message_bar.show_error(error, doing)

    def _show_note(self, text: str) -> None:
        self.message_bar.show_message(Level.SUCCESS, text)
        self.statusBar().showMessage(text, 6000)

    # -- dialogs ----------------------------------------------------------------------------------
    def _form(self, dialog) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def record_usage(self, customer: str = "") -> RecordUsageDialog | None:
        if self.desk.ledger is None:
            return None
        dialog = RecordUsageDialog(self.desk, self, customer=customer or None)
        dialog.recorded.connect(lambda result: self.statusBar().showMessage(
            f"{'Duplicate of' if result.duplicate else 'Recorded'} entry #{result.entry_id}", 6000))
        self._form(dialog)
        return dialog

    def _correct_selected(self) -> None:
        page = self.current_page()
        view = self.detail.entries if page is self.detail else self.ledger_view
        if page not in (self.detail, self.ledger_view):
            self.nav.setCurrentRow(2)
        entry = view.selected_entry()
        if entry is None:
            self.message_bar.show_message(Level.INFO, "Select an entry in the usage ledger first, then press Ctrl+E to correct it.")
            return
        self.correct_entry(entry)

    def correct_entry(self, entry: EntryRow) -> CorrectEntryDialog | None:
        if entry.kind == "reversal":
            self.message_bar.show_message(Level.INFO, f"Entry #{entry.id} is a reversal; correct the entry it reverses (#{entry.corrects}) instead.")
            return None
        pair = self.ledger_view.model.corrected_by(entry.id) or self.detail.entries.model.corrected_by(entry.id)
        if pair:
            target = f"its replacement #{pair[1]}" if pair[1] else "nothing: it was corrected to 0"
            self.message_bar.show_message(Level.INFO, f"Entry #{entry.id} was already corrected; correct {target}.")
            return None
        dialog = CorrectEntryDialog(self.desk, entry, self)
        dialog.corrected.connect(lambda result: self._show_note(
            f"Entry #{entry.id} corrected: reversal #{result.reversal_id}" + (f", replacement #{result.replacement_id}" if result.replacement_id else "")))
        self._form(dialog)
        return dialog

    def _grant_selected(self) -> None:
        customer = self.customers.selected()
        if customer is None and self.detail.readout is not None and self.current_page() is self.detail:
            customer = self.desk.catalog.customer(self.detail.readout.summary.customer)
        if customer is None or not customer.prepaid:
            self.message_bar.show_message(Level.INFO, "Select a prepaid customer on the Customers page first.")
            return
        self._form(GrantCreditsDialog(self.desk, customer, self))

    def add_customer(self) -> None:
        if self.desk.ledger is not None:
            self._form(CustomerDialog(self.desk, self))

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.desk, self)
        dialog.accepted.connect(lambda: self._settings_saved(dialog.database_changed))
        self._form(dialog)
        return dialog

    def _settings_saved(self, database_changed: bool) -> None:
        """Another ledger is opened only when the database setting changed: the desk may be on the demo ledger
        or on --db, and saving a new staff name must not leave it for the configured one."""
        from meterdesk.ui.opening import open_configured_ledger

        self.actor_label.setText(f"Signed in as {self.desk.actor()}")
        url = self.desk.settings.effective_url()
        current = self.desk.ledger
        from meterdesk.services.ledgers import resolve_url

        if current is None or (database_changed and resolve_url(url) != current.url):
            open_configured_ledger(self, self.desk, url)

    def import_file(self, path: str | None = None) -> None:
        if self.desk.ledger is None:
            return
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Import usage", str(Path.home()), "Usage files (*.csv *.jsonl *.ndjson *.json);;All files (*)")
            if not path:
                return
        actor = self.desk.actor()

        def describe(p):
            share = int(100 * p.bytes_read / p.total_bytes) if p.total_bytes else 0
            return f"{p.lines:,} lines read: {p.recorded:,} recorded, {p.duplicates:,} duplicates, {p.rejected:,} rejected", share, 100

        def done(result) -> None:
            text = f"Import of {Path(path).name}: {result.recorded:,} recorded, {result.duplicates:,} duplicates, {result.rejected:,} rejected"
            if result.cancelled:
                text += " — cancelled; run it again to continue (nothing is counted twice)"
            if result.rejected:
                first = "; ".join(f"line {e['line']}: {e['error']}" for e in result.errors[:3])
                self.message_bar.show_message(Level.WARNING, text, f"Rejected lines were not recorded. {first}")
            else:
                self._show_note(text)
            self.desk.notify_written("usage")

        self._import_progress = run_with_progress(
            self.desk, self, "Importing usage",
            lambda ledger, job: import_usage(ledger, path, actor=actor, progress=job.progress, cancelled=job.cancelled),
            describe=describe, on_done=done, on_error=lambda error: self._show_failure(error, "importing usage"),
        )

    def close_period(self, period: str | None = None) -> None:
        if self.desk.ledger is None:
            return
        if period is None:
            from meterdesk.services.context import now_us

            previous = str(self.desk.ledger.timeline.period_of(now_us()).previous())
            period, ok = QInputDialog.getText(self, "Close period", "Freeze the invoices of period (YYYY-MM):", text=previous)
            if not ok or not period.strip():
                return
            answer = QMessageBox.question(
                self, "Close period",
                f"Close {period.strip()} for every customer? Closed invoices are frozen for good; later usage of that month is billed late in the next open period.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        period = period.strip()
        actor = self.desk.actor()

        def done(result) -> None:
            text = f"Period {result.period}: {len(result.invoices)} invoice(s) closed now, {len(result.already_closed)} already closed"
            if result.cancelled:
                text += " — cancelled; closing again continues with the rest"
            self._show_note(text)
            self.desk.notify_written("period")

        self._close_progress = run_with_progress(
            self.desk, self, f"Closing {period}",
            lambda ledger, job: close_period(ledger, period, actor=actor, progress=job.progress, cancelled=job.cancelled),
            describe=lambda p: (f"{p.done} of {p.total}: {p.customer}", p.done, p.total),
            on_done=done, on_error=lambda error: self._show_failure(error, f"closing {period}"),
        )

    def verify_ledger(self) -> None:
        """Recompute every derived figure on a worker, with progress; the outcome in a dialog (verify_box)."""
        if self.desk.ledger is None:
            return

        def done(result) -> None:
            box = QMessageBox(self)
            box.setWindowTitle("Verify ledger")
            checked = ", ".join(f"{count:,} {what.replace('_', ' ')}" for what, count in result.checked.items())
            if result.cancelled:
                box.setIcon(QMessageBox.Icon.Information)
                box.setText("Verification cancelled before it checked everything.")
            elif result.ok:
                box.setIcon(QMessageBox.Icon.Information)
                box.setText("The ledger is consistent: every derived figure matches the entries.")
            else:
                box.setIcon(QMessageBox.Icon.Warning)
                box.setText(f"{len(result.differences):,} difference(s) between the stored figures and the entries.")
                box.setDetailedText("\n".join(str(d) for d in result.differences))
            box.setInformativeText(f"Checked {checked} in {result.seconds:.1f} s.")
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.verify_box = box
            box.open()

        self._verify_progress = run_with_progress(
            self.desk, self, "Verifying the ledger",
            lambda ledger, job: verify_ledger(ledger, progress=job.progress, cancelled=job.cancelled),
            describe=lambda p: (f"{p.step[:1].upper()}{p.step[1:]}…", p.done, p.total),
            on_done=done, on_error=lambda error: self._show_failure(error, "verifying the ledger"),
        )

    def show_shortcuts(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(SHORTCUTS_HELP)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_about(self) -> None:
        from meterdesk import __version__

        box = QMessageBox(self)
        box.setWindowTitle("About meterdesk")
        box.setText(f"<b>meterdesk {__version__}</b><br>Usage-based billing: an exact, append-only usage ledger with hybrid and prepaid plans.")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def closeEvent(self, event: QCloseEvent) -> None:
        # The chart pages' reads must end before the desk closes the ledger under them.
        for page in self._chart_pages():
            page.shutdown()
        self.desk.shutdown()
        super().closeEvent(event)

