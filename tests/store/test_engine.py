"""Ledger connections: closing a ledger closes every connection it opened, also one in use on another
thread; a bulk writer's WAL checkpoints run on a thread of their own (SQLite)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

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


# -- a bulk writer's checkpoints on a thread of their own (SQLite) -------------------------------------------

TRANSACTION_PAGES = 1500  # rows of 3,000 bytes: one page each, beyond SQLite's 1,000-page automatic checkpoint


@pytest.fixture
def sqlite_ledger(tmp_path):
    from meterdesk.store.engine import open_ledger

    opened = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    with opened.write() as connection:
        connection.exec_driver_sql("CREATE TABLE scratch (payload BLOB)")
    yield opened
    opened.close()


def _write_pages(ledger, checkpoints) -> None:
    with ledger.write(checkpoints=checkpoints) as connection:
        connection.exec_driver_sql(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {TRANSACTION_PAGES}) "
            "INSERT INTO scratch SELECT randomblob(3000) FROM n"
        )


def _sizes(ledger) -> tuple[int, int]:
    """(database file, WAL file) in bytes."""
    database = Path(make_url(ledger.url).database)
    wal = database.with_name(database.name + "-wal")
    return database.stat().st_size, wal.stat().st_size if wal.exists() else 0


def test_a_commit_leaves_its_checkpoint_to_the_thread_and_the_thread_does_it(sqlite_ledger):
    _write_pages(sqlite_ledger, None)
    file_before, _ = _sizes(sqlite_ledger)  # the commit checkpointed itself: the pages are in the file
    assert file_before > TRANSACTION_PAGES * 3000
    with sqlite_ledger.background_checkpoints() as checkpoints:
        with checkpoints._condition:  # the thread cannot start a checkpoint while the test holds its lock
            _write_pages(sqlite_ledger, checkpoints)
            assert _sizes(sqlite_ledger)[0] == file_before  # committed into the WAL only
        checkpoints.wait()
        assert _sizes(sqlite_ledger)[0] > file_before + TRANSACTION_PAGES * 3000  # copied by the thread
        assert checkpoints.failure is None
    assert _sizes(sqlite_ledger)[1] == 0  # at the end the WAL is truncated: no one was reading
    # The writer's connection checkpoints for itself again afterwards.
    with sqlite_ledger.write() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    with sqlite_ledger.read() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM scratch").scalar() == 2 * TRANSACTION_PAGES


def test_the_wal_grows_while_the_thread_copies_and_starts_over_past_its_limit(sqlite_ledger, monkeypatch):
    from meterdesk.store import engine

    one_transaction = TRANSACTION_PAGES * 3000
    with sqlite_ledger.background_checkpoints() as checkpoints:
        with checkpoints._condition:  # the copying lags behind: each transaction begins before it is done
            for _ in range(3):
                _write_pages(sqlite_ledger, checkpoints)
        assert _sizes(sqlite_ledger)[1] > 3 * one_transaction
    monkeypatch.setattr(engine, "BACKGROUND_WAL_LIMIT", 0)  # every transaction waits for the copying first
    with sqlite_ledger.background_checkpoints() as checkpoints:
        for _ in range(3):
            _write_pages(sqlite_ledger, checkpoints)
            assert _sizes(sqlite_ledger)[1] < 2 * one_transaction  # the WAL started over at each one
    with sqlite_ledger.read() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM scratch").scalar() == 6 * TRANSACTION_PAGES
    with sqlite_ledger.write() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_only_a_sqlite_file_gets_a_checkpoint_thread(ledger):
    from meterdesk.store.engine import open_ledger

    with ledger.background_checkpoints() as checkpoints:
        assert (checkpoints is None) == (ledger.dialect == "postgresql")
        with ledger.write(checkpoints=checkpoints) as connection:
            connection.execute(text("SELECT 1"))
    in_memory = open_ledger("sqlite:///:memory:")
    try:
        with in_memory.background_checkpoints() as checkpoints:
            assert checkpoints is None
    finally:
        in_memory.close()


def test_every_sqlite_ledger_connection_commits_durably(sqlite_ledger):
    """SPEC 5: acknowledged means durable. In WAL mode synchronous=NORMAL may lose the last commits on power
    loss; FULL (2) syncs the WAL at every commit — also on a bulk import's connections."""
    with sqlite_ledger.read() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    with sqlite_ledger.write(foreign_keys=False) as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
