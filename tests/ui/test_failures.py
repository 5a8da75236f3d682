"""A database that fails shows a message with what to do; the window never crashes or freezes."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine

from meterdesk.store.engine import Ledger, make_engine
from meterdesk.ui.opening import open_configured_ledger
from meterdesk.ui.dialogs.record_usage import RecordUsageDialog
from meterdesk.ui.messages import Level
from tests.support.postgres import free_port


def closed_port_url() -> str:
    return f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/meterdesk"


def broken_ledger(dialect: str, tmp_path: Path) -> Ledger:
    """A ledger whose engine cannot reach its database: a closed port, or a file in a missing directory."""
    if dialect == "postgresql":
        url = closed_port_url()
        return Ledger(url=url, engine=make_engine(url), timezone=ZoneInfo("UTC"))
    url = f"sqlite:///{tmp_path / 'missing' / 'ledger.sqlite3'}"
    return Ledger(url=url, engine=create_engine(url), timezone=ZoneInfo("UTC"))


def assert_usable(qtbot, window) -> None:
    for row in range(window.nav.count()):
        window.nav.setCurrentRow(row)
        qtbot.wait(20)
        assert window.stack.currentWidget() is window.pages[row][2]
    dialog = window.open_settings()
    assert dialog.isVisible()
    dialog.reject()


def test_unreachable_database_at_start_shows_the_error(qtbot, window):
    url = closed_port_url()
    open_configured_ledger(window, window.desk, url)
    qtbot.waitUntil(lambda: window.message_bar.level is Level.ERROR, timeout=20_000)
    assert "unreachable" in window.message_bar.text or "cannot open" in window.message_bar.text
    assert "Settings" in window.message_bar.text
    assert window.desk.ledger is None
    assert "no ledger open" in window.windowTitle()
    assert not window.record_action.isEnabled()
    assert_usable(qtbot, window)


def test_database_failing_mid_session(qtbot, window, ledger_url, tmp_path, seeded):
    broken = broken_ledger("postgresql" if ledger_url.startswith("postgresql") else "sqlite", tmp_path)
    window.desk.set_ledger(broken)  # the connection drops while the app is open
    qtbot.waitUntil(lambda: window.message_bar.level is Level.ERROR, timeout=20_000)
    assert "unreachable or failed" in window.message_bar.text
    window.nav.setCurrentRow(2)
    window.refresh_action.trigger()  # F5 while the database is gone
    qtbot.wait(300)
    assert window.message_bar.isVisible()
    dialog = RecordUsageDialog(window.desk)
    qtbot.addWidget(dialog)
    dialog.customer.setEditText("acme")
    dialog.amount.setText("1")
    dialog.submit()  # the customer list is empty: validation refuses before any write is tried
    assert dialog.submissions == 0
    assert_usable(qtbot, window)
    # The database comes back: the same window carries on.
    window.desk.set_ledger(seeded)
    qtbot.waitUntil(lambda: window.customers.model.rowCount() == 2, timeout=20_000)
    assert "meterdesk — " in window.windowTitle() and seeded.name in window.windowTitle()


def test_record_dialog_reports_a_lost_connection_and_keeps_its_request_id(qtbot, desk, ledger_url, tmp_path, seeded):
    dialog = RecordUsageDialog(desk, customer="acme", unit="api_calls")
    qtbot.addWidget(dialog)
    dialog.amount.setText("3")
    request_id = dialog.request_id
    good = desk.ledger
    desk.ledger = broken_ledger("postgresql" if ledger_url.startswith("postgresql") else "sqlite", tmp_path)
    dialog.submit()
    qtbot.waitUntil(lambda: "Retry" in dialog.ok.text(), timeout=20_000)
    assert "unreachable" in dialog.outcome.text()
    assert dialog.ok.isEnabled()
    desk.ledger = good  # the connection is back: retrying records once, with the same request id
    with qtbot.waitSignal(dialog.recorded, timeout=10_000) as recorded:
        dialog.ok.click()
    assert dialog.request_id == request_id
    assert not recorded.args[0].duplicate
