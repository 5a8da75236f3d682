"""Closing the main window: no chart read outlives it, and none reads the ledger after the desk closed it."""

from __future__ import annotations

import threading

import pytest

import meterdesk.ui.charts.worker as chart_worker
from tests.support.events import record_close


@pytest.mark.parametrize("where", ["charts page", "customer detail chart tab"])
def test_closing_the_window_waits_for_a_running_chart_read_before_the_ledger_closes(qtbot, window, seeded, monkeypatch, where):
    page = window.charts if where == "charts page" else window.detail.chart
    events: list[str] = []
    reading, release = threading.Event(), threading.Event()
    read_chart_data = chart_worker.chart_data

    def chart_data(ledger, *args, **kwargs):
        result = read_chart_data(ledger, *args, **kwargs)
        events.append("chart read ended")
        return result

    def slow_fetch(_request) -> None:
        reading.set()
        release.wait(1)  # slow, but bounded: closing the window waits for the read, it must not hang on it

    monkeypatch.setattr(chart_worker, "chart_data", chart_data)
    record_close(monkeypatch, seeded, events, "ledger closed")
    page.fetch_hook = slow_fetch
    page.show_customer("acme")
    qtbot.waitUntil(reading.is_set, timeout=10_000)
    try:
        window.close()
        pool_idle_after_close = page.wait_for_workers(0)
    finally:
        release.set()
        assert page.wait_for_workers(10_000)
    assert pool_idle_after_close, "a chart read was still running on the page's pool after the window closed"
    assert events == ["chart read ended", "ledger closed"]
