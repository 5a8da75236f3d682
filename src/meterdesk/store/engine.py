"""Opening a ledger: engine set-up for SQLite and PostgreSQL, transactions, and first-use migration."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import platformdirs
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from meterdesk.domain.errors import InvalidInput, Unavailable
from meterdesk.domain.periods import load_timezone
from meterdesk.domain.timeline import Timeline
from meterdesk.store import migrate
from meterdesk.store.schema import ledger_settings

DEFAULT_TIMEZONE = "UTC"


def default_ledger_path() -> Path:
    """The embedded ledger: a SQLite file in the user's data directory."""
    return platformdirs.user_data_path("meterdesk", appauthor=False) / "ledger.sqlite3"


def resolve_url(url: str | None) -> str:
    """The ledger URL from an explicit value, `$METERDESK_DB`, or the embedded default.

    A plain file path means a SQLite file; `postgresql://` means PostgreSQL through psycopg 3.
    """
    url = url or os.environ.get("METERDESK_DB") or ""
    if not url:
        return f"sqlite:///{default_ledger_path()}"
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().absolute()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def describe_url(url: str) -> str:
    """A human name for a ledger URL, without its password (for window titles and messages)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite {parsed.database}"
    return f"PostgreSQL {parsed.host or 'localhost'}{':' + str(parsed.port) if parsed.port else ''}/{parsed.database}"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001 - DBAPI objects
        # Let SQLAlchemy's "begin" event below decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Pages stay SQLite's default 4 KiB. Measured with the benchmarks (one run each, same machine): 16 KiB
        # pages made a 1M-line import 10% faster (169,700 rows/s against 153,700) and recording single events
        # 58% slower (7,539 txn/s against 17,950: each commit writes and checksums whole pages into the WAL);
        # 8 KiB pages, import +6% and single events -30%.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: in WAL mode NORMAL syncs only at checkpoints, so the last commits before a power loss could
        # vanish after they were acknowledged (SPEC 5: acknowledged means durable). FULL syncs the WAL at
        # every commit, on every connection, bulk imports included.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=60000")
        # Index pages of a large ledger stay in memory: inserts into its B-trees are the cost of a bulk import.
        cursor.execute("PRAGMA cache_size=-131072")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A writer takes the database lock up front, so check-then-write inside it cannot race;
        # readers start deferred and never wait for writers (WAL). Straight to the driver: a statement
        # through SQLAlchemy costs more than the BEGIN itself, and every transaction pays it.
        begin = "BEGIN IMMEDIATE" if connection.get_execution_options().get("meterdesk_write") else "BEGIN"
        connection.connection.driver_connection.execute(begin)


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        engine = create_engine(url, connect_args={"connect_timeout": 10})
        _ping_when_idle(engine)
        return engine
    raise InvalidInput("db", f"unsupported database URL {describe_url(url)!r}: use sqlite:/// or postgresql+psycopg://")


PING_AFTER_IDLE_S = 5.0
REUSE_IDLE_S = 2.0  # a ledger keeps connections this long between transactions (Ledger._connection)
KEEP_IDLE = 4


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle for a while (SQLAlchemy's pre-ping would
    ask the server on every checkout: one more round trip for every transaction, the largest cost of
    recording one event). A server restart or a dropped connection is found on the next use after a pause;
    one that drops mid-burst fails that one call as Unavailable, and the pool reconnects for the next."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record) -> None:  # noqa: ANN001 - DBAPI objects
        record.info["meterdesk_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy) -> None:  # noqa: ANN001 - DBAPI objects
        idle_since = record.info.get("meterdesk_idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            dbapi_connection.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as error:  # noqa: BLE001 - any failure means this connection is not usable
            raise DisconnectionError(f"stale connection: {error}") from error


def is_connection_error(error: Exception) -> bool:
    if isinstance(error, OperationalError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


@dataclass(eq=False)
class Ledger:
    """An open ledger: its engine, billing time zone and a few values cached per process."""

    url: str
    engine: Engine
    timezone: ZoneInfo
    cache: dict = field(default_factory=dict, repr=False)
    # Connections between transactions, most recently used last, with when they were put back.
    _idle: list[tuple[Connection, float]] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)
    # Held while a connection goes back (kept, or returned to the pool) and while `close()` marks the ledger
    # closed: one returned to the pool after the pool was disposed would stay open until garbage collection.
    _release_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Write transactions begun through `write()`: what a connection remembers between the transactions of
    # `driver_transaction()` is only good while no other write of this process went through it.
    writes: int = field(default=0, repr=False)

    @property
    def name(self) -> str:
        return describe_url(self.url)

    @property
    def timeline(self) -> Timeline:
        """The ledger's billing periods and days in its time zone (made once per ledger)."""
        timeline = self.cache.get("timeline")
        if timeline is None:
            timeline = self.cache["timeline"] = Timeline(self.timezone)
        return timeline

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self, *, foreign_keys: bool = True, checkpoints: BackgroundCheckpoints | None = None) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE). Commits on success, rolls back on error.

        `foreign_keys=False` (SQLite): without its per-row foreign key checks, for a bulk writer that has read
        every row its rows refer to in the same transaction (store/column_writer.py). The pragma only takes
        effect outside a transaction, so it is switched before BEGIN and back after the end, on the same
        connection. PostgreSQL checks references once per statement anyway (migration 0005).

        `checkpoints` (SQLite): the commit leaves its WAL checkpoint to that thread (see BackgroundCheckpoints).
        """
        self.writes += 1
        sqlite = self.dialect == "sqlite"
        checks_off = not foreign_keys and sqlite
        checkpoints = checkpoints if sqlite else None
        with self._translate_errors(), self._connection() as connection:
            driver = connection.connection.driver_connection
            if checks_off:
                driver.execute("PRAGMA foreign_keys=OFF")
            if checkpoints is not None:
                checkpoints.before_write()
                driver.execute("PRAGMA wal_autocheckpoint=0")
            try:
                connection.execution_options(meterdesk_write=True)
                with connection.begin():
                    yield connection
            finally:
                if checks_off:
                    driver.execute("PRAGMA foreign_keys=ON")
                if checkpoints is not None:
                    driver.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
                    checkpoints.request()

    @contextmanager
    def background_checkpoints(self) -> Iterator[BackgroundCheckpoints | None]:
        """For a bulk writer's series of transactions: a thread that checkpoints the WAL while the next
        transaction is written (SQLite files; None elsewhere). Pass it to each `write()`."""
        database = make_url(self.url).database if self.dialect == "sqlite" else None
        if not database or database == ":memory:":
            yield None
            return
        checkpoints = BackgroundCheckpoints(database)
        try:
            yield checkpoints
        finally:
            checkpoints.close()

    def driver_transaction(self) -> DriverTransaction:
        """A kept connection and its driver connection, for a hot path that runs its own transaction on the
        driver (store/events.py): it begins and commits; whatever it leaves open is rolled back on exit.

        SQLite's driver connection runs in autocommit mode already (see _configure_sqlite); psycopg's is
        switched to it for the length of the transaction, so the caller can send BEGIN and COMMIT in a
        pipeline together with its statements instead of one round trip each.
        """
        return DriverTransaction(self)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._translate_errors(), self._connection() as connection:
            connection.execution_options(meterdesk_write=False)
            with connection.begin():
                yield connection

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection for one transaction: one kept from an earlier transaction when there is one.

        Checking a connection out of SQLAlchemy's pool and back in costs more than recording a usage event
        (about 70 µs), so a few connections are kept between transactions instead. One that sat idle for
        a while goes back to the pool, which checks it before handing it out again (see _ping_when_idle).
        """
        connection = self._take()
        try:
            yield connection
        finally:
            self._put_back(connection)

    def _take(self) -> Connection:
        while True:
            try:
                connection, since = self._idle.pop()
            except IndexError:
                return self.engine.connect()
            if not (connection.closed or connection.invalidated) and time.monotonic() - since < REUSE_IDLE_S:
                return connection
            self._release(connection, keep=False)

    def _put_back(self, connection: Connection) -> None:
        self._release(connection, keep=not (connection.closed or connection.invalidated or connection.in_transaction()))

    def _release(self, connection: Connection, *, keep: bool) -> None:
        """Keep a connection for the next transaction or return it to the pool; once the ledger is closed,
        close it for good. A worker may finish a transaction after `close()` ran on another thread (the desk
        closes the ledger it switches away from while jobs on it may still run): `engine.dispose()` closes
        only the connections checked in at the time, and one returned later to the disposed pool stays open."""
        with self._release_lock:
            if self._closed:
                _close_for_good(connection)
            elif keep and len(self._idle) < KEEP_IDLE:
                self._idle.append((connection, time.monotonic()))
            else:
                connection.close()

    def _raise_translated(self, error: BaseException) -> None:
        with self._translate_errors():
            raise error

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as error:
            if is_connection_error(error):
                raise Unavailable(f"database {self.name} is unreachable or failed: {_first_line(error.orig)}") from error
            raise
        except self.engine.dialect.loaded_dbapi.OperationalError as error:
            # The hot paths (store/queries.py `fetch`, the writer's bulk statements) talk to the driver
            # directly; its own errors mean the same as SQLAlchemy's wrapped ones.
            raise Unavailable(f"database {self.name} is unreachable or failed: {_first_line(error)}") from error

    def close(self) -> None:
        """Close the kept and pooled connections now, and those in use by a worker when it puts them back."""
        with self._release_lock:
            self._closed = True
            idle = self._idle
        while idle:
            try:
                connection, _since = idle.pop()
            except IndexError:  # a worker's _take() got the last one; it closes it when done
                break
            connection.close()
        self.engine.dispose()


class DriverTransaction:
    """See Ledger.driver_transaction. A class rather than a generator: it is entered once per event, and
    nested @contextmanager generators cost as much as a statement."""

    __slots__ = ("ledger", "connection", "driver", "postgres")

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.postgres = ledger.engine.dialect.name == "postgresql"

    def __enter__(self) -> tuple[Connection, object]:
        try:
            self.connection = self.ledger._take()
        except DBAPIError as error:
            self.ledger._raise_translated(error)
        self.driver = self.connection.connection.driver_connection
        if self.postgres:
            self.driver.autocommit = True
        return self.connection, self.driver

    def __exit__(self, kind, error, _traceback) -> None:
        connection, ledger = self.connection, self.ledger
        broken = ledger.engine.dialect.loaded_dbapi.OperationalError
        try:
            if isinstance(error, broken):
                connection.invalidate()  # the pool opens a new one for the next transaction
                ledger._raise_translated(error)
            try:
                _rollback_driver(self.driver, self.postgres)
                if self.postgres:
                    self.driver.autocommit = False
            except broken as failure:
                connection.invalidate()
                ledger._raise_translated(failure)
        finally:
            ledger._release(connection, keep=not connection.invalidated)


WAL_AUTOCHECKPOINT = 1000  # pages: SQLite's default, restored after a write that left its checkpoint to a thread
BACKGROUND_WAL_LIMIT = 512 * 1024 * 1024  # bytes of WAL a bulk writer lets pile up before it waits for the checkpoints


class BackgroundCheckpoints:
    """SQLite: the WAL checkpoints of a bulk writer's transactions, run on a thread with its own connection.

    A commit in WAL mode appends the transaction's pages to the WAL, and once the WAL holds 1,000 pages the
    committing connection copies them into the database file itself (the automatic checkpoint) before it
    returns. A bulk import's 250k-line batches each rewrite most of the ledger's index pages, so on the
    writer's thread those copies were about 0.6 s of a 1M-line import (measured in the benchmark's raw floor:
    commits 1.1 s with the automatic checkpoints, 0.5 s without). Here the writer's connection skips them
    (`wal_autocheckpoint=0` for its transactions) and this thread runs a PASSIVE checkpoint after each commit,
    which never waits for readers or writers, on the second core while the writer goes on with its next batch.

    The price is a longer WAL: SQLite only starts the WAL over at a transaction that begins with every page
    of it checkpointed, and the next batch begins while the last one is still being copied. So the WAL grows
    by each batch (300 MB over a 1M-line import); past BACKGROUND_WAL_LIMIT the writer waits for the copying
    to finish before it begins, and the WAL starts over. Nothing is at risk meanwhile: a page in the WAL is
    committed, and any connection reads it from there. At the end the WAL is truncated when no one is
    reading it; otherwise the next checkpoint of any connection starts it over.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.wal = database + "-wal"
        self._condition = threading.Condition()
        self._requested = 0
        self._done = 0
        self._closing = False
        self.failure: BaseException | None = None  # the first checkpoint that failed; the data was safe in the WAL
        self._thread = threading.Thread(target=self._run, name="meterdesk-checkpoints", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Checkpoint what has been committed so far (called after each commit)."""
        with self._condition:
            self._requested += 1
            self._condition.notify_all()

    def before_write(self) -> None:
        """Wait for the checkpoints asked for so far when the WAL has grown past its limit."""
        try:
            size = os.path.getsize(self.wal)
        except OSError:
            return
        if size > BACKGROUND_WAL_LIMIT:
            self.wait()

    def wait(self) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._done >= self._requested or not self._thread.is_alive())

    def close(self) -> None:
        """Finish the checkpoints asked for, truncate the WAL if no one is reading it, and stop the thread."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join()

    def _run(self) -> None:
        try:
            # No busy timeout: a PASSIVE checkpoint never waits anyway, and the last one, which truncates the
            # WAL, gives up at once when someone is reading.
            connection = sqlite3.connect(self.database, timeout=0, isolation_level=None)
        except sqlite3.Error as error:
            self.failure = error
            with self._condition:
                self._condition.notify_all()
            return
        try:
            while True:
                with self._condition:
                    self._condition.wait_for(lambda: self._requested > self._done or self._closing)
                    target, closing = self._requested, self._closing and self._requested == self._done
                if closing:
                    break
                self._checkpoint(connection, "PASSIVE")  # never waits: readers and writers go on
                with self._condition:
                    self._done = target
                    self._condition.notify_all()
            # Everything is copied; the WAL file goes back to nothing unless someone reads it right now.
            self._checkpoint(connection, "TRUNCATE")
        finally:
            connection.close()
            with self._condition:
                self._done = self._requested
                self._condition.notify_all()

    def _checkpoint(self, connection, mode: str) -> None:
        try:
            connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as error:  # busy or failed: the next checkpoint of any connection catches up
            if self.failure is None:
                self.failure = error


def _close_for_good(connection: Connection) -> None:
    """Close the DBAPI connection itself rather than return it to a pool that may be disposed already."""
    if not (connection.closed or connection.invalidated):
        connection.detach()
    connection.close()


def _rollback_driver(driver, postgres: bool) -> None:
    """End what a driver transaction left open (a transaction it committed leaves nothing)."""
    if postgres:
        if driver.info.transaction_status != 0:  # psycopg.pq.TransactionStatus.IDLE
            driver.rollback()
    elif driver.in_transaction:
        driver.execute("ROLLBACK")


def _first_line(error: BaseException | None) -> str:
    return (str(error) or type(error).__name__).strip().splitlines()[0] if error else "unknown error"


def open_ledger(url: str | None = None, *, upgrade: bool = True) -> Ledger:
    """Open (and on first use create and migrate) the ledger at `url`."""
    resolved = resolve_url(url)
    engine = make_engine(resolved)
    try:
        if upgrade:
            migrate.upgrade(engine)
        with engine.connect() as connection:
            timezone_name = connection.execute(
                select(ledger_settings.c.value).where(ledger_settings.c.key == "billing_timezone")
            ).scalar()
    except DBAPIError as error:
        engine.dispose()
        if is_connection_error(error):
            raise Unavailable(f"cannot open database {describe_url(resolved)}: {_first_line(error.orig)}") from error
        raise
    return Ledger(url=resolved, engine=engine, timezone=load_timezone(timezone_name or DEFAULT_TIMEZONE))
