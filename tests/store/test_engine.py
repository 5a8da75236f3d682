"""Closing a ledger closes every database connection it opened, also one in use on another thread."""

from __future__ import annotations

import threading

from sqlalchemy import text

from tests.support.connections import still_open, track_connections


def test_a_connection_in_use_while_the_ledger_closes_is_closed_when_its_transaction_ends(ledger):
    handed_out = track_connections(ledger.engine)
    reading, release = threading.Event(), threading.Event()

    def read_slowly() -> None:
        with ledger.read() as connection:
            connection.execute(text("SELECT 1"))
            reading.set()
            release.wait(10)

    worker = threading.Thread(target=read_slowly)
    worker.start()
    try:
        assert reading.wait(10)
        ledger.close()  # the engine's pool is disposed while the read still holds its connection
    finally:
        release.set()
        worker.join()
    assert handed_out
    assert not still_open(handed_out)


def test_a_ledger_used_after_closing_keeps_no_connection_open(ledger):
    handed_out = track_connections(ledger.engine)
    ledger.close()
    # A worker that started late may still use it (the desk closes the ledger it switches away from on a worker).
    with ledger.read() as connection:
        connection.execute(text("SELECT 1"))
    with ledger.write() as connection:
        connection.execute(text("SELECT 1"))
    with ledger.driver_transaction():
        pass
    assert len(handed_out) == 3
    assert not still_open(handed_out)
