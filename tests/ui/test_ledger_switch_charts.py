"""Switching ledgers while a chart read is slow: the chart pages show the new ledger, never the previous
one's chart or an error from it, and the previous ledger is closed only after their reads on it ended."""

from __future__ import annotations

import shutil
import threading
from decimal import Decimal

import pytest
from pytestqt.exceptions import TimeoutError as WaitTimeout

import meterdesk.ui.charts.worker as chart_worker
from meterdesk.services.catalog import add_customer
from meterdesk.services.recording import record_usage
from meterdesk.store.engine import open_ledger
from meterdesk.ui.messages import Level
from tests.conftest import new_postgres_database
from tests.support.events import record_close
from tests.services.helpers import seed


@pytest.fixture
def next_ledger(request, ledger_url, tmp_path):
    """Another ledger on the same backend: acme has 7 API calls here (30,435 in `seeded`), and a third customer."""
    if ledger_url.startswith("sqlite"):
        path = tmp_path / "next.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url, drop = f"sqlite:///{path}", None
    else:
        url, drop = new_postgres_database(request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_template"))
    opened = open_ledger(url)
    seed(opened)
    add_customer(opened, "cedar", "Cedar GmbH", "pro", actor="tests")
    record_usage(opened, "acme", "api_calls", "7", "next-1", source="api", actor="tests")
    yield opened
    opened.close()
    if drop:
        drop()


@pytest.mark.parametrize("where", ["charts page", "customer detail chart tab"])
def test_switching_ledgers_during_a_slow_chart_read_shows_the_new_ledger_and_closes_the_old_one_after_it(
    qtbot, window, seeded, next_ledger, monkeypatch, where
):
    page = window.charts if where == "charts page" else window.detail.chart
    events: list[str] = []
    read_chart_data = chart_worker.chart_data

    def chart_data(ledger, *args, **kwargs):
        if ledger is not seeded:
            return read_chart_data(ledger, *args, **kwargs)
        events.append("chart read on the old ledger started")
        try:
            return read_chart_data(ledger, *args, **kwargs)
        finally:
            events.append("chart read on the old ledger ended")

    monkeypatch.setattr(chart_worker, "chart_data", chart_data)
    record_close(monkeypatch, seeded, events, "old ledger closed")
    if where == "charts page":
        window.show_page(window.charts)
    else:
        window.open_customer("acme")
    qtbot.waitUntil(lambda: page.shown_customer() == "acme" and not page.is_busy(), timeout=20_000)
    assert page.chart.model.unit("api_calls").quantity == Decimal(30435)

    reading, release = threading.Event(), threading.Event()

    def slow_once(_request) -> None:
        if not reading.is_set():
            reading.set()
            release.wait(10)  # bounded: the test must not hang if nobody releases it

    shown: list[Decimal] = []  # acme's API calls in each chart shown after the slow read began
    page.chartShown.connect(lambda _customer: shown.append(page.chart.model.unit("api_calls").quantity))
    events.clear()
    page.fetch_hook = slow_once
    page.refresh()  # new usage arrived: the page reads acme's chart again, slowly
    qtbot.waitUntil(reading.is_set, timeout=10_000)
    try:
        window.desk.set_ledger(next_ledger)
        if where == "customer detail chart tab":
            window.open_customer("acme")  # the detail page was cleared by the switch: the user opens acme again
        qtbot.wait(200)  # the previous ledger's close job, if it does not wait for the read, runs now
    finally:
        release.set()
    try:
        qtbot.waitUntil(lambda: Decimal(7) in shown and not page.is_busy() and "old ledger closed" in events, timeout=20_000)
    except WaitTimeout:
        pass  # what was shown instead is asserted below
    qtbot.wait(100)
    assert shown == [Decimal(7)], "the chart shown after the switch must be the new ledger's (acme: 7 API calls)"
    assert events == ["chart read on the old ledger started", "chart read on the old ledger ended", "old ledger closed"]
    assert page.chart.model.unit("api_calls").quantity == Decimal(7)
    assert page.banner_message() is None
    assert window.message_bar.level is not Level.ERROR, window.message_bar.text
    if where == "charts page":
        assert [page.customer_model.item(row).text() for row in range(page.customer_model.rowCount())] == ["Acme Corp", "Bolt Ltd", "Cedar GmbH"]
