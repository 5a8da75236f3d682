"""Test fixtures shared by the whole suite: ledgers on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("METERDESK_ACTOR", "test-suite")

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.postgres import INSTALL_HINT, ThrowawayCluster, find_bindir

BACKENDS = ("sqlite", "postgresql")
_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a PostgreSQL server's maintenance database (throwaway cluster unless METERDESK_TEST_PG)."""
    given = os.environ.get("METERDESK_TEST_PG")
    if given:
        yield given
        return
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    cluster = ThrowawayCluster(bindir)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def _admin_engine(server_url: str):
    return create_engine(server_url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def postgres_template(postgres_server):
    """A migrated database that each test's database is copied from (CREATE DATABASE ... TEMPLATE)."""
    from meterdesk.store.engine import open_ledger

    name = f"meterdesk_template_{os.getpid()}"
    admin = _admin_engine(postgres_server)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    open_ledger(url).close()
    yield name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    from meterdesk.store.engine import open_ledger

    path = tmp_path_factory.mktemp("template") / "ledger.sqlite3"
    open_ledger(f"sqlite:///{path}").close()
    return path


def new_postgres_database(server_url: str, template: str) -> tuple[str, callable]:
    name = f"meterdesk_test_{os.getpid()}_{next(_database_numbers)}"
    admin = _admin_engine(server_url)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(params=BACKENDS)
def ledger_url(request, tmp_path: Path):
    """A fresh, migrated, empty ledger's URL — once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    url, drop = new_postgres_database(server, template)
    yield url
    drop()


@pytest.fixture
def ledger(ledger_url):
    from meterdesk.store.engine import open_ledger

    opened = open_ledger(ledger_url)
    yield opened
    opened.close()
