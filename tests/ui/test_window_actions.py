"""The main window's keyboard shortcuts and actions, pressed and triggered as a clerk does."""

from __future__ import annotations

from collections import defaultdict

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QInputDialog, QMessageBox

from meterdesk.services.billing import preview_invoice
from tests.services.helpers import last_month

WAIT_MS = 15_000


def shown_and_active(qtbot, window) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)


def test_ctrl_and_a_digit_switches_pages(qtbot, window):
    """The page actions and the Go menu bound the same keys: Qt called Ctrl+1 ambiguous and did nothing."""
    shown_and_active(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page() is window.ledger_view
    assert window.nav.currentRow() == 2
    QTest.keyClick(window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page() is window.plans
    QTest.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page() is window.customers


def test_no_two_actions_of_the_window_share_a_shortcut(qtbot, window):
    by_key: dict[str, set[QAction]] = defaultdict(set)
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            if not key.isEmpty():
                by_key[key.toString()].add(action)
    shared = {key: sorted(a.text() for a in actions) for key, actions in by_key.items() if len(actions) > 1}
    assert shared == {}
    assert {f"Ctrl+{n}" for n in range(1, len(window.pages) + 1)} <= set(by_key)


def test_the_close_period_action_opens_the_close_period_flow(qtbot, window, seeded, monkeypatch):
    """Triggering the toolbar / File menu action passed its `checked` flag as the period: nothing happened."""
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *args, **kwargs: (asked.append(kwargs.get("text")), (last_month(), True))[1]))
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *args, **kwargs: QMessageBox.StandardButton.Yes))
    window.close_action.trigger()
    assert asked == [last_month()]  # the last ended period is offered
    qtbot.waitUntil(lambda: f"Period {last_month()}" in window.message_bar.text, timeout=WAIT_MS)
    assert preview_invoice(seeded, "acme", last_month()).closed


def test_saving_settings_in_the_demo_keeps_the_demo_ledger_open(qtbot, tmp_path, app_settings):
    """Only the staff name changed: the desk stays on the demo ledger instead of opening the configured one."""
    from meterdesk.services.demo import seed_demo
    from meterdesk.store.engine import open_ledger
    from meterdesk.ui.opening import open_demo_ledger
    from meterdesk.ui.desk import Desk
    from meterdesk.ui.views.main_window import MainWindow

    own = tmp_path / "own.sqlite3"
    app_settings.database_url = str(own)  # the clerk's own ledger, configured in Settings
    demo_url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    demo = open_ledger(demo_url)
    seed_demo(demo, density=0.05)
    demo.close()
    desk = Desk(app_settings)
    window = MainWindow(desk)
    qtbot.addWidget(window)
    window.show()
    open_demo_ledger(window, desk, demo_url)
    qtbot.waitUntil(lambda: window.customers.model.rowCount() == 8, timeout=60_000)
    demo_ledger = desk.ledger

    dialog = window.open_settings()
    qtbot.waitUntil(lambda: dialog.probe is not None, timeout=WAIT_MS)
    dialog.staff.setText("Robin at the desk")
    assert dialog.save.isEnabled()
    dialog.save.click()
    desk.runner.wait()
    qtbot.wait(100)  # whatever the save started has reported back

    assert desk.ledger is demo_ledger and desk.ledger.url == demo_url
    assert window.windowTitle().endswith("demo.sqlite3")
    assert desk.actor() == "Robin at the desk" and "Robin at the desk" in window.actor_label.text()
    assert not own.exists()  # the configured ledger was not opened (nor created)
    assert window.customers.model.rowCount() == 8
    window.close()
