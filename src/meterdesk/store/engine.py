"""Opening a ledger: engine set-up for SQLite and PostgreSQL, transactions, and first-use migration."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import platformdirs
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from meterdesk.domain.errors import InvalidInput, Unavailable
from meterdesk.domain.periods import load_timezone
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
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        # Index pages of a large ledger stay in memory: inserts into its B-trees are the cost of a bulk import.
        cursor.execute("PRAGMA cache_size=-131072")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A writer takes the database lock up front, so check-then-write inside it cannot race;
        # readers start deferred and never wait for writers (WAL).
        if connection.get_execution_options().get("meterdesk_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


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
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    raise InvalidInput("db", f"unsupported database URL {describe_url(url)!r}: use sqlite:/// or postgresql+psycopg://")


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

    @property
    def name(self) -> str:
        return describe_url(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE). Commits on success, rolls back on error."""
        with self._translate_errors(), self.engine.connect() as connection:
            connection.execution_options(meterdesk_write=True)
            with connection.begin():
                yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._translate_errors(), self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as error:
            if is_connection_error(error):
                raise Unavailable(f"database {self.name} is unreachable or failed: {_first_line(error.orig)}") from error
            raise

    def close(self) -> None:
        self.engine.dispose()


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
