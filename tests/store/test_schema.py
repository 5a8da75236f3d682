"""The schema guards itself: append-only ledger tables, unique keys, checks, WAL and foreign keys."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from meterdesk.services.credits import grant_credits
from meterdesk.services.recording import record_usage
from meterdesk.store import migrate
from meterdesk.store.schema import APPEND_ONLY_TABLES, metadata
from tests.services.helpers import ENTRY_INSERT, seed


def test_migration_creates_every_table_at_head(ledger):
    with ledger.read() as connection:
        tables = set(inspect(connection).get_table_names())
        assert set(metadata.tables) <= tables
        assert migrate.current_revision(connection) == migrate.head_revision()


def test_schema_matches_the_models(ledger):
    """The migration and schema.py describe the same columns (no drift between them)."""
    with ledger.read() as connection:
        inspector = inspect(connection)
        for name, table in metadata.tables.items():
            assert {c["name"] for c in inspector.get_columns(name)} == set(table.columns.keys()), name


@pytest.mark.parametrize("statement", [
    "UPDATE usage_entries SET quantity = quantity + 1",
    "DELETE FROM usage_entries",
    "UPDATE credit_grants SET amount = 1",
    "DELETE FROM credit_grants",
    "DELETE FROM audit_log",
    "UPDATE audit_log SET actor = 'someone else'",
])
def test_ledger_tables_refuse_update_and_delete(ledger, statement):
    seed(ledger)
    record_usage(ledger, "acme", "api_calls", "10", "r-1")
    grant_credits(ledger, "bolt", "10", "g-1")
    with pytest.raises(DBAPIError, match="append-only"):
        with ledger.write() as connection:
            connection.execute(text(statement))
    with ledger.read() as connection:
        assert connection.execute(text("SELECT count(*) FROM usage_entries")).scalar() == 1


def test_every_append_only_table_has_its_triggers(ledger):
    with ledger.read() as connection:
        if ledger.dialect == "sqlite":
            names = set(connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
            expected = {f"{t}_refuse_{a}" for t in APPEND_ONLY_TABLES for a in ("update", "delete")}
        else:
            names = set(connection.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
            expected = {f"{t}_refuse_{a}" for t in APPEND_ONLY_TABLES for a in ("change", "truncate")}
    assert expected <= names


def test_unique_request_id_per_customer_is_enforced_by_the_database(ledger):
    seed(ledger)
    record_usage(ledger, "acme", "api_calls", "10", "same")
    with pytest.raises(IntegrityError):
        with ledger.write() as connection:
            connection.execute(text(
                "INSERT INTO usage_entries (customer_id, unit_id, quantity, occurred_at, recorded_at, billed_at, period, late,"
                " request_id, kind, source, actor) SELECT customer_id, unit_id, 5, occurred_at, recorded_at, billed_at, period,"
                " late, request_id, kind, source, actor FROM usage_entries"
            ))


def test_checks_refuse_a_negative_usage_quantity(ledger):
    seed(ledger)
    record_usage(ledger, "acme", "api_calls", "10", "r-1")
    with pytest.raises(IntegrityError):
        with ledger.write() as connection:
            connection.execute(text(
                "INSERT INTO usage_entries (customer_id, unit_id, quantity, occurred_at, recorded_at, billed_at, period, late,"
                " request_id, kind, source, actor) SELECT customer_id, unit_id, -5, occurred_at, recorded_at, billed_at, period,"
                " late, 'other', 'usage', source, actor FROM usage_entries"
            ))


def test_foreign_keys_are_enforced(ledger):
    with pytest.raises(IntegrityError):
        with ledger.write() as connection:
            connection.execute(text("INSERT INTO customer_balances (customer_id, granted, charged, balance) VALUES (999, 0, 0, 0)"))


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_template, tmp_path):
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(f"sqlite:///{tmp_path / 'wal.sqlite3'}")
    with ledger.read() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    ledger.close()


def test_head_revision_constant_matches_alembic():
    assert migrate.HEAD_REVISION == migrate.head_revision()


@pytest.mark.parametrize(("kind", "source"), [("usage", "telnet"), ("refund", "cli"), ("USAGE", "cli"), ("usage", "")])
def test_entry_kind_and_source_checks_refuse_other_values(ledger, kind, source):
    seed(ledger)
    with pytest.raises(IntegrityError):
        with ledger.write() as connection:
            connection.execute(text(ENTRY_INSERT), {"request_id": "r-bad", "kind": kind, "source": source})
    with ledger.write() as connection:
        for value in ("api", "cli", "import", "gui"):
            connection.execute(text(ENTRY_INSERT), {"request_id": f"r-{value}", "kind": "usage", "source": value})


def test_cheap_checks_migration_round_trip_keeps_entries(ledger):
    """0004 rewrites the entry checks in place (SQLite: the stored definition), 0005 moves PostgreSQL's
    references to statement-level checks; down past both and up again keeps every entry and the rules."""
    from alembic import command

    seed(ledger)
    record_usage(ledger, "acme", "api_calls", "10", "r-1")
    for target in ("0003", migrate.HEAD_REVISION):
        with ledger.engine.begin() as connection:
            config = migrate._config()
            config.attributes["connection"] = connection
            (command.downgrade if target == "0003" else command.upgrade)(config, target)
        with ledger.read() as connection:
            assert migrate.current_revision(connection) == target
            assert connection.execute(text("SELECT count(*) FROM usage_entries")).scalar() == 1
        with pytest.raises(IntegrityError):
            with ledger.write() as connection:
                connection.execute(text(ENTRY_INSERT), {"request_id": f"r-{target}", "kind": "usage", "source": "telnet"})
    with ledger.read() as connection:
        if ledger.dialect == "sqlite":
            definition = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'usage_entries'")).scalar()
            assert " IN (" not in definition
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def _entry_indexes(connection) -> set[str]:
    return {index["name"] for index in inspect(connection).get_indexes("usage_entries")}


def test_the_entry_time_index_is_sqlite_only_and_comes_back_on_downgrade(ledger):
    """0006 drops (customer, period, unit, billed_at) on PostgreSQL; SQLite keeps it. Down to 0005 and up again."""
    from alembic import command

    index = "ix_usage_entries_customer_id_period_unit_id_billed_at"
    with ledger.read() as connection:
        assert (index in _entry_indexes(connection)) == (ledger.dialect == "sqlite")
    for target, present in (("0005", True), (migrate.HEAD_REVISION, ledger.dialect == "sqlite")):
        with ledger.engine.begin() as connection:
            config = migrate._config()
            config.attributes["connection"] = connection
            (command.downgrade if target == "0005" else command.upgrade)(config, target)
        with ledger.read() as connection:
            assert (index in _entry_indexes(connection)) == present, target
            assert "ix_usage_entries_occurred_at" in _entry_indexes(connection)


@pytest.mark.parametrize(("customer_id", "unit_id"), [(999, 1), (1, 999)])
def test_an_entry_must_refer_to_a_known_customer_and_unit(ledger, customer_id, unit_id):
    """A foreign key on SQLite; on PostgreSQL a statement-level check of every inserted row (0005)."""
    seed(ledger)
    insert = ENTRY_INSERT.replace("VALUES (1, 1,", f"VALUES ({customer_id}, {unit_id},")
    with pytest.raises(IntegrityError):
        with ledger.write() as connection:
            connection.execute(text(insert), {"request_id": "r-unknown", "kind": "usage", "source": "cli"})
    with pytest.raises(IntegrityError):
        with ledger.write() as connection:
            connection.execute(text(
                "INSERT INTO usage_daily (customer_id, period, unit_id, day, quantity, entries, reversals) "
                f"VALUES ({customer_id}, '2026-01', {unit_id}, '2026-01-01', 1, 1, 0)"
            ))
    with ledger.read() as connection:
        assert connection.execute(text("SELECT count(*) FROM usage_entries")).scalar() == 0


def test_a_customer_or_unit_the_ledger_refers_to_cannot_be_deleted(ledger):
    seed(ledger)
    record_usage(ledger, "acme", "api_calls", "10", "r-1")
    for statement in ("DELETE FROM customers WHERE external_id = 'acme'", "DELETE FROM units WHERE code = 'api_calls'"):
        with pytest.raises(DBAPIError):
            with ledger.write() as connection:
                connection.execute(text(statement))
    with ledger.read() as connection:
        assert connection.execute(text("SELECT count(*) FROM customers WHERE external_id = 'acme'")).scalar() == 1


def test_the_reference_check_refuses_one_unknown_key_among_many_rows_before_and_after_0007(ledger):
    """0007 checks a statement's distinct customers and units instead of every row; one bad row among
    thousands of good ones is still refused, and so it is at 0006 (down and up again)."""
    from alembic import command

    seed(ledger)
    rows = ", ".join(f"(1, 1, 1, 0, 0, 0, '2026-01', FALSE, 'r-{n}', 'usage', 'cli', 't')" for n in range(3000))
    columns = "customer_id, unit_id, quantity, occurred_at, recorded_at, billed_at, period, late, request_id, kind, source, actor"
    for target in ("0006", migrate.HEAD_REVISION):
        with ledger.engine.begin() as connection:
            config = migrate._config()
            config.attributes["connection"] = connection
            (command.downgrade if target == "0006" else command.upgrade)(config, target)
        for bad in ("(999, 1,", "(1, 999,"):
            with pytest.raises(IntegrityError):
                with ledger.write() as connection:
                    connection.execute(text(
                        f"INSERT INTO usage_entries ({columns}) VALUES {rows}, {bad} 1, 0, 0, 0, '2026-01', FALSE, 'r-bad', 'usage', 'cli', 't')"
                    ))
        with ledger.read() as connection:
            assert connection.execute(text("SELECT count(*) FROM usage_entries")).scalar() == 0
    with ledger.write() as connection:
        connection.execute(text(f"INSERT INTO usage_entries ({columns}) VALUES {rows}"))
    with ledger.read() as connection:
        assert connection.execute(text("SELECT count(*) FROM usage_entries")).scalar() == 3000
