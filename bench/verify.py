"""Proof that the fast loader writes what the services write: the same events loaded both ways, compared row by row."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from bench import data, ledgers

# Not the id: an import stores each batch ordered by customer and request id (store/writer.py insert_new).
ENTRY_COLUMNS = (
    "customer_id, unit_id, quantity, occurred_at, billed_at, period, late, request_id, kind, corrects_id, "
    "source, actor, note, charged"
)
TABLES = {
    "usage_entries": f"SELECT {ENTRY_COLUMNS} FROM usage_entries ORDER BY customer_id, request_id",
    "usage_daily": "SELECT * FROM usage_daily ORDER BY customer_id, period, unit_id, day",
    "customer_balances": "SELECT * FROM customer_balances ORDER BY customer_id",
}


def _import(url: str, csv: Path, batch_size: int) -> None:
    from meterdesk.services.imports import import_usage
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url)
    try:
        # Several batches, so that both ways of writing one are used (the first looks request ids up,
        # the next ones, finding none taken before, let the unique key alone check them).
        result = import_usage(ledger, csv, actor=ledgers.LOAD_ACTOR, batch_size=max(1000, batch_size))
    finally:
        ledger.close()
    if result.rejected or result.duplicates:
        raise AssertionError(f"the services refused generated events: {result.to_json()}")


def _normalise(rows) -> list[tuple]:
    return [tuple(bool(v) if isinstance(v, bool) else v for v in row) for row in rows]


def _compare(name: str, loaded: dict, imported: dict) -> list[str]:
    problems = []
    for table in TABLES:
        a, b = loaded[table], imported[table]
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            problems.append(
                f"{name} {table}: fast load and services differ ({len(a)} vs {len(b)} rows; first difference at row {first}: "
                f"{a[first] if first < len(a) else None} vs {b[first] if first < len(b) else None})"
            )
    return problems


def verify_sqlite(n: int) -> list[str]:
    events = data.generate_events(n)
    with tempfile.TemporaryDirectory(prefix="meterdesk-bench-") as folder:
        folder = Path(folder)
        csv = folder / "events.csv"
        data.write_csv(events, csv)
        loaded_path, imported_path = folder / "loaded.sqlite3", folder / "imported.sqlite3"
        ledgers.copy_sqlite(ledgers.sqlite_base(), loaded_path)
        ledgers.copy_sqlite(ledgers.sqlite_base(), imported_path)
        ledgers.load_sqlite(loaded_path, events)
        _import(f"sqlite:///{imported_path}", csv, n // 4)
        found = {}
        for label, path in (("loaded", loaded_path), ("imported", imported_path)):
            with sqlite3.connect(path) as connection:
                found[label] = {table: _normalise(connection.execute(sql)) for table, sql in TABLES.items()}
        return _compare("SQLite", found["loaded"], found["imported"])


def verify_pg(server, n: int) -> list[str]:
    events = data.generate_events(n)
    base = ledgers.pg_base(server)
    with tempfile.TemporaryDirectory(prefix="meterdesk-bench-") as folder:
        csv = Path(folder) / "events.csv"
        data.write_csv(events, csv)
        server.create("bench_verify_loaded", template=base)
        server.create("bench_verify_imported", template=base)
        try:
            ledgers.load_pg(server, "bench_verify_loaded", events)
            _import(server.url("bench_verify_imported"), csv, n // 4)
            found = {}
            for label in ("loaded", "imported"):
                with server.connect(f"bench_verify_{label}") as connection:
                    found[label] = {table: _normalise(connection.execute(sql).fetchall()) for table, sql in TABLES.items()}
        finally:
            server.drop("bench_verify_loaded")
            server.drop("bench_verify_imported")
    return _compare("PostgreSQL", found["loaded"], found["imported"])
