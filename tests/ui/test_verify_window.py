"""Ledger -> Verify ledger…: runs on a worker with progress, and shows what it found in a dialog."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from tests.services.test_verify import tamper


def _ledger_menu_action(window, text: str):
    menu = next(action.menu() for action in window.menuBar().actions() if action.text() == "&Ledger")
    return next(action for action in menu.actions() if action.text() == text)


def test_verify_ledger_from_the_ledger_menu(qtbot, window, seeded):
    action = _ledger_menu_action(window, "Verify ledger…")
    assert action.isEnabled() and action.shortcut().isEmpty()
    action.trigger()
    qtbot.waitUntil(lambda: getattr(window, "verify_box", None) is not None, timeout=20_000)
    box = window.verify_box
    assert box.icon() == QMessageBox.Icon.Information
    assert "consistent" in box.text() and "Checked 31 entries" in box.informativeText()
    assert window._verify_progress.maximum() == 6  # the progress dialog was told of its six steps
    box.close()

    tamper(seeded, "UPDATE customer_balances SET charged = charged + 1, balance = balance - 1")
    window.verify_box = None
    action.trigger()
    qtbot.waitUntil(lambda: window.verify_box is not None, timeout=20_000)
    box = window.verify_box
    assert box.icon() == QMessageBox.Icon.Warning
    assert box.text().startswith("4 difference(s)")  # charged and balance, for both customers
    assert "customer_balances acme charged: expected 0.000000, found 0.000001" in box.detailedText().splitlines()
    box.close()
