"""The desk switching ledgers while its workers still read the old one."""

from __future__ import annotations

import threading

from sqlalchemy import text

from meterdesk.store.engine import open_ledger
from meterdesk.ui.desk import Desk
from tests.support.connections import still_open, track_connections


def test_switching_ledgers_while_a_job_reads_the_old_one_leaves_no_connection_open(qtbot, app_settings, ledger_url):
    old = open_ledger(ledger_url)
    handed_out = track_connections(old.engine)
    desk = Desk(app_settings, poll_ms=250)
    reading, release = threading.Event(), threading.Event()

    def read_slowly(ledger, job) -> None:
        with ledger.read() as connection:
            connection.execute(text("SELECT 1"))
            reading.set()
            release.wait(10)

    try:
        desk.set_ledger(old)
        desk.run(read_slowly, description="a slow read")
        assert reading.wait(10)
        desk.set_ledger(None)  # closes the old ledger on another worker while the read holds its connection
        qtbot.waitUntil(lambda: desk.runner.busy == 1, timeout=10_000)  # everything but the read has ended
        release.set()
        assert desk.runner.wait(10_000)
        assert handed_out
        assert not still_open(handed_out)
    finally:
        release.set()
        desk.shutdown()
        old.close()
