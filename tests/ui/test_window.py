"""The main window as a clerk uses it: find a customer, see its period, export the summary, edit a plan."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics

from meterdesk.services.catalog import get_plan
from meterdesk.services.entries import EntryFilter, count_entries
from meterdesk.services.summary import usage_summary
from meterdesk.ui.dialogs.settings import SettingsDialog
from meterdesk.ui.messages import Level
from meterdesk.ui.views.detail_page import summary_csv
from tests.ui.test_failures import closed_port_url


def test_title_shortcuts_and_pages(qtbot, window, seeded):
    assert window.windowTitle() == f"meterdesk — {seeded.name}"
    shortcuts = {action.shortcut().toString() for action in window.actions()}
    assert {"Ctrl+R", "Ctrl+E", "Ctrl+F", "F5", "Ctrl+G", "Ctrl+N", "Ctrl+I", "Ctrl+1", "Ctrl+6"} <= shortcuts
    page_six = next(action for action in window.actions() if action.shortcut().toString() == "Ctrl+6")
    page_six.trigger()
    assert window.current_page() is window.plans
    assert window.record_action.toolTip().endswith("(Ctrl+R)")


def test_find_a_customer_and_see_its_period(qtbot, window, seeded, tmp_path):
    qtbot.waitUntil(lambda: window.customers.model.rowCount() == 2, timeout=10_000)
    window.customers.search.setText("Bolt")
    assert window.customers.proxy.rowCount() == 1
    window.customers.search.returnPressed.emit()  # Enter opens the first match
    assert window.current_page() is window.detail
    qtbot.waitUntil(lambda: window.detail.readout is not None, timeout=10_000)
    summary = usage_summary(seeded, "bolt")
    assert window.detail.heading.text().startswith("Bolt Ltd")
    assert window.detail.units_model.rowCount() == len(summary.units)
    assert window.detail.cards["balance"].value.text() == "€19.00"
    qtbot.waitUntil(lambda: window.detail.entries.model.rowCount() == count_entries(seeded, EntryFilter(customer="bolt", period=summary.period)), timeout=10_000)
    exported = window.detail.export_summary(str(tmp_path / "bolt.json"))
    assert json.loads(exported.read_text()) == summary.to_json()
    csv_file = window.detail.export_summary(str(tmp_path / "bolt.csv"))
    assert csv_file.read_text() == summary_csv(summary)
    window.detail.copy_summary("json")
    from PySide6.QtGui import QGuiApplication

    assert json.loads(QGuiApplication.clipboard().text())["customer"] == "bolt"


def test_ledger_filters_apply_in_sql(qtbot, window, seeded):
    window.nav.setCurrentRow(2)
    view = window.ledger_view
    qtbot.waitUntil(lambda: view.model.rowCount() == count_entries(seeded), timeout=10_000)
    view.customer.set_customer("bolt")
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=10_000)
    view.clear_filters()
    view.text.setText("seed-1")
    qtbot.waitUntil(lambda: view.model.rowCount() == count_entries(seeded, EntryFilter(text="seed-1")), timeout=10_000)
    assert "entries" in view.status.text()


def test_plan_editor_validates_as_you_type_and_saves_a_new_version(qtbot, window, seeded):
    window.nav.setCurrentRow(5)
    page = window.plans
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=10_000)
    page.new_plan()
    editor = page.editor
    editor.code.setText("Bad Code")
    assert not editor.save_button.isEnabled()
    assert editor.errors["code"].isVisible()
    editor.code.setText("metered")
    editor.name.setText("Metered")
    editor.base_fee.setText("10.001")
    assert "decimal" in editor.errors["base_fee"].text()
    editor.base_fee.setText("10")
    editor.add_charge()
    charge = editor.charge_editor
    charge.model.setCurrentIndex(charge.model.findData("graduated"))
    charge.tiers.set_tiers([])
    from meterdesk.ui.models.catalog import TierDraft

    charge.tiers.set_tiers([TierDraft("500", "0.02"), TierDraft("100", "0.01"), TierDraft("", "0.005")])
    charge.tiers.edited.emit()
    assert not editor.save_button.isEnabled()
    assert charge.errors["tiers"].isVisible() and "Tier 2" in charge.errors["tiers"].text()
    assert charge.tiers.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)
    charge.tiers.setData(charge.tiers.index(1, 0), "1000")
    assert editor.save_button.isEnabled()
    charge.sample.setText("600")
    assert "€11.00" in charge.preview.text()  # 500 × 0.02 + 100 × 0.01
    editor.save()
    qtbot.waitUntil(lambda: editor.original is not None, timeout=10_000)
    assert get_plan(seeded, "metered").version == 1
    # The prepaid starter plan has charged usage: saving it makes version 2 instead of editing in place.
    page.select("starter")
    qtbot.waitUntil(lambda: editor.original is not None and editor.original.plan.code == "starter", timeout=10_000)
    assert editor.original.in_use
    editor.base_fee.setText("6.00")
    assert "new version" in editor.save_note.text()
    editor.save()
    qtbot.waitUntil(lambda: get_plan(seeded, "starter").version == 2, timeout=10_000)


def test_settings_test_the_connection_and_persist(qtbot, window, app_settings):
    app_settings.database_url = window.desk.ledger.url
    dialog = SettingsDialog(window.desk, window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.probe is not None, timeout=10_000)
    assert dialog.probe.exists and not dialog.timezone.isEnabled()
    dialog.url.setText(closed_port_url())
    assert not dialog.save.isEnabled()
    dialog.test_connection()
    qtbot.waitUntil(lambda: "✖" in dialog.url_status.text(), timeout=20_000)
    assert not dialog.save.isEnabled()
    dialog.url.setText(app_settings.database_url)
    dialog.staff.setText("Robin at the desk")
    dialog.accept_settings()
    assert app_settings.staff_name == "Robin at the desk"
    assert window.desk.actor() == "Robin at the desk"


def test_a_new_sqlite_ledger_takes_the_chosen_time_zone(qtbot, window, app_settings, tmp_path):
    dialog = SettingsDialog(window.desk, window)
    qtbot.addWidget(dialog)
    dialog.url.setText(str(tmp_path / "fresh.sqlite3"))
    dialog.test_connection()
    qtbot.waitUntil(lambda: dialog.probe is not None, timeout=10_000)
    assert not dialog.probe.exists and dialog.timezone.isEnabled()
    dialog.timezone.setCurrentText("Europe/Berlin")
    assert dialog.save.isEnabled()
    dialog.accept_settings()
    window._settings_saved(dialog.database_changed)
    qtbot.waitUntil(lambda: window.desk.ledger is not None and "fresh" in window.desk.ledger.url, timeout=20_000)
    assert window.desk.ledger.timezone.key == "Europe/Berlin"
    assert "fresh.sqlite3" in window.windowTitle()
    assert window.message_bar.level is not Level.ERROR


def test_two_desks_on_one_ledger_see_each_others_entries(qtbot, window, seeded, app_settings):
    """Two app instances on one shared ledger: what one records appears in the other's ledger by itself."""
    from meterdesk.store.engine import open_ledger
    from meterdesk.ui.desk import Desk
    from meterdesk.ui.views.main_window import MainWindow

    other_desk = Desk(app_settings, poll_ms=250)
    other_desk.set_ledger(open_ledger(seeded.url))
    other = MainWindow(other_desk)
    qtbot.addWidget(other)
    other.show()
    for desk_window in (window, other):
        desk_window.nav.setCurrentRow(2)
        desk_window.ledger_view.model.set_poll_interval(250)
        desk_window.ledger_view.model.start_polling()
    qtbot.waitUntil(lambda: other.ledger_view.model.entry_at(0) is not None and window.ledger_view.model.entry_at(0) is not None, timeout=15_000)
    rows = window.ledger_view.model.rowCount()
    dialog = other.record_usage("acme")
    qtbot.waitUntil(lambda: other_desk.catalog.customer("acme") is not None, timeout=10_000)
    dialog._customer_changed()
    dialog.amount.setText("42")
    with qtbot.waitSignal(dialog.recorded, timeout=10_000) as recorded:
        dialog.ok.click()
    qtbot.waitUntil(lambda: window.ledger_view.model.rowCount() == rows + 1, timeout=15_000)
    assert window.ledger_view.model.entry_at(0).id == recorded.args[0].entry_id
    assert window.ledger_view.model.entry_at(0).actor == "Dana Tester"
    dialog.accept()
    other.close()


def test_import_and_close_period_run_on_workers_with_progress(qtbot, window, seeded, tmp_path):
    from meterdesk.services.billing import preview_invoice
    from tests.services.helpers import last_month

    source = tmp_path / "usage.csv"
    source.write_text("customer,unit,amount,request_id\nacme,api_calls,5,imp-1\nacme,api_calls,6,imp-2\nnobody,api_calls,1,imp-3\n")
    entries = count_entries(seeded)
    window.import_file(str(source))
    qtbot.waitUntil(lambda: "Import of usage.csv" in window.message_bar.text, timeout=15_000)
    assert "2 recorded" in window.message_bar.text and "1 rejected" in window.message_bar.text
    assert window.message_bar.level is Level.WARNING
    assert count_entries(seeded) == entries + 2
    window.close_period(last_month())
    qtbot.waitUntil(lambda: f"Period {last_month()}" in window.message_bar.text, timeout=15_000)
    assert preview_invoice(seeded, "acme", last_month()).closed
    window.close_period("2999-01")  # a period that has not ended: refused, shown, nothing written
    qtbot.waitUntil(lambda: window.message_bar.level is Level.ERROR, timeout=15_000)
    assert "has not ended" in window.message_bar.text


def test_charts_page_in_the_smallest_window_shows_whole_customer_names(qtbot, window, seeded):
    """The chart toolbar sat beside the customer list, and its minimum width left the list about 85 px in a
    window of the minimum 1100 px: names cut off mid-word under a horizontal scroll bar. The toolbar now
    spans the page and the list keeps its items' width."""
    from meterdesk.services.catalog import add_customer

    add_customer(seeded, "globex", "Globex Logistics", "pro", actor="tests")
    window.resize(window.minimumSize())
    window.nav.setCurrentRow(3)
    page = window.charts
    assert window.current_page() is page
    qtbot.waitUntil(lambda: page.customer_proxy.rowCount() == 3, timeout=15_000)
    qtbot.waitUntil(lambda: window.width() == 1100)
    page.grab()
    bold = QFont(page.customer_list.font())
    bold.setWeight(QFont.Weight.DemiBold)
    names = [page.customer_proxy.index(row, 0).data() for row in range(page.customer_proxy.rowCount())]
    assert "Globex Logistics" in names
    widest = max(QFontMetrics(bold).horizontalAdvance(name) for name in names)
    assert page.customer_list.viewport().width() >= widest + 16
    assert not page.customer_list.horizontalScrollBar().isVisible()
    assert page.chart_scroll.viewport().width() >= 320  # and the chart keeps its own minimum
    assert page.png_button.geometry().right() <= page.width()
