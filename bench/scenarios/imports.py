"""Bulk import: the real `meterdesk usage import` process on a CSV file, then the same file again (all duplicates).

Baseline, in the same run: the same rows, already parsed, inserted by the raw driver with one
`executemany` of `INSERT ... ON CONFLICT DO NOTHING` in one transaction into a bare table with the same
unique key (customer, request id), at the same durability setting; then replayed (all conflicts).
meterdesk's figure is the whole process: start-up, parsing and validation, idempotency checks, placement,
prepaid charging, the rollup, and commits every batch.

On SQLite the import's target is the floor of meterdesk's own schema (the bare-table ratio stays reported). The import's rows, already parsed and
priced, inserted by raw sqlite3 into a fresh copy of the ledger with the fast lane's own statement, in the
import's batches, each sorted by customer as the import sorts it: what the tables and indexes cost before any
of meterdesk's own work.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time

from itertools import accumulate
from operator import itemgetter

from bench import data, ledgers
from bench.harness import REPORTED, Context, Result, Target, interleave, median, meterdesk_command, seconds

SCENARIO = "bulk import"
RATIO = Target("ratio >= 0.5", min_ratio=0.5)
# SQLite's import is held to what its own schema allows: the bare table has none of the ledger's indexes.
FLOOR_TARGET = Target("ratio >= 0.75 of the schema's raw floor", min_ratio=0.75)
PG_TARGET = Target("ratio >= 0.5 and >= 50,000 rows/s", min_ratio=0.5, min_value=50_000)
BARE_TABLE = ledgers.RAW_TABLE
BARE_INSERT = (
    "INSERT INTO raw_usage (customer_id, unit_id, quantity, occurred_at, period, request_id) "
    "VALUES ({marks}) ON CONFLICT DO NOTHING"
)


def usage_file(context: Context, n: int):
    path = context.work_dir / f"events-{n}.csv"
    if not (path.exists() and ledgers.is_cached_data(path.name)):
        context.log(f"writing {n:,} usage events to {path.name}")
        data.write_csv(data.generate_events(n), path)
        ledgers.mark_cached(path.name)
    return path


def import_file(url: str, path, expect: dict) -> float:
    """Seconds the `meterdesk usage import` process takes, start to exit; checks what it reports."""
    command = [*meterdesk_command(), "--db", url, "usage", "import", str(path), "--json"]
    outcome: dict = {}

    def run() -> None:
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError(f"meterdesk usage import failed ({finished.returncode}): {finished.stderr.strip()[:500]}")
        outcome.update(json.loads(finished.stdout))

    elapsed = seconds(run)
    found = {key: outcome.get(key) for key in expect}
    if found != expect:
        raise RuntimeError(f"meterdesk usage import reported {found}, expected {expect}")
    return elapsed


def run(context: Context) -> list[Result]:
    n = context.sizes.import_lines
    path = usage_file(context, n)
    events = data.generate_events(n)
    rows = list(ledgers.raw_rows(events, 0, n))
    label = f"{n:,} lines"
    results = _sqlite(context, path, rows, events, label)
    results += _postgres(context, path, rows, label)
    return results


def import_batches(n: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch a fast-lane import of n lines writes (`imports.batch_sizes`)."""
    from meterdesk.services.imports import batch_sizes

    sizes, left = [], n
    for size in batch_sizes():
        if left <= 0:
            break
        sizes.append(min(size, left))
        left -= sizes[-1]
    stops = list(accumulate(sizes))
    return list(zip([0, *stops[:-1]], stops))


def schema_batches(base, events, n: int) -> list[list[tuple]]:
    """The rows the fast lane inserts for the usage file (column_writer.PLAIN_COLUMNS, prepaid charges priced),
    in its batches, each sorted by customer (stable) as `_insert_sqlite` sorts it."""
    connection = sqlite3.connect(base)
    try:
        customer_ids, unit_ids = ledgers.catalog_ids(connection)
    finally:
        connection.close()
    rows = [(r[0], r[1], r[2], r[3], r[5], r[6], r[8], r[14]) for r in ledgers.entry_rows(events, customer_ids, unit_ids, 0, n)]
    return [sorted(rows[start:stop], key=itemgetter(0)) for start, stop in import_batches(n)]


def _sqlite(context: Context, path, rows, events, label: str) -> list[Result]:
    from meterdesk.store.column_writer import sqlite_insert_statement

    n = len(rows)
    ledger = context.work_dir / "import.sqlite3"
    bare = context.work_dir / "import-bare.sqlite3"
    floor = context.work_dir / "import-floor.sqlite3"
    base = ledgers.sqlite_base()
    batches = schema_batches(base, events, n)
    timings: dict[str, list[float]] = {"import": [], "again": [], "raw": [], "replay": [], "floor": []}

    def meterdesk_round(_: int) -> float:
        ledgers.copy_sqlite(base, ledger)
        timings["import"].append(import_file(f"sqlite:///{ledger}", path, {"recorded": n, "rejected": 0}))
        timings["again"].append(import_file(f"sqlite:///{ledger}", path, {"recorded": 0, "duplicates": n}))
        return 0.0

    def baseline_round(_: int) -> float:
        ledgers.remove_sqlite(bare)
        connection = sqlite3.connect(bare, isolation_level=None)
        try:
            # The durability and cache meterdesk's own connections use (store/engine.py).
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA cache_size=-131072")
            connection.execute(BARE_TABLE.format(id="INTEGER"))
            statement = BARE_INSERT.format(marks=", ".join("?" * 6))
            for key in ("raw", "replay"):
                def insert() -> None:
                    connection.execute("BEGIN IMMEDIATE")
                    connection.executemany(statement, rows)
                    connection.execute("COMMIT")

                timings[key].append(seconds(insert))
        finally:
            connection.close()
        ledgers.copy_sqlite(base, floor)
        connection = sqlite3.connect(floor, isolation_level=None)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "cache_size=-131072", "foreign_keys=OFF"):
                connection.execute(f"PRAGMA {pragma}")  # the fast lane's connection (store/engine.py, Ledger.write)
            statement = sqlite_insert_statement(int(time.time() * 1_000_000), "bench")

            def insert_batches() -> None:
                for batch in batches:
                    connection.execute("BEGIN IMMEDIATE")
                    connection.executemany(statement, batch)
                    connection.execute("COMMIT")

            timings["floor"].append(seconds(insert_batches))
        finally:
            connection.close()
        return 0.0

    context.log(f"bulk import on SQLite: {label}, {context.sizes.import_rounds} rounds")
    interleave(context.sizes.import_rounds, meterdesk_round, baseline_round)
    ledgers.remove_sqlite(bare)
    ledgers.remove_sqlite(floor)
    floor_rate = n / median(timings["floor"])
    import_rate, bare_rate = n / median(timings["import"]), n / median(timings["raw"])
    return [
        Result(SCENARIO, "bulk import, SQLite", import_rate, "rows/s", floor_rate, FLOOR_TARGET,
               "the schema's raw floor: the import's rows by raw sqlite3 into meterdesk's tables, in its batches",
               f"{label}, whole `meterdesk usage import` process; {import_rate / bare_rate:.2f} of the bare table"),
        Result(SCENARIO, "bulk import against the bare table, SQLite", import_rate, "rows/s", bare_rate, REPORTED,
               "raw sqlite3 executemany ON CONFLICT DO NOTHING, bare table", f"{label}, the same import as above"),
        Result(SCENARIO, "raw insert into meterdesk's schema, SQLite", floor_rate, "rows/s", n / median(timings["raw"]), REPORTED,
               "raw sqlite3 executemany ON CONFLICT DO NOTHING, bare table",
               f"the import's {n:,} rows, parsed and priced, by raw sqlite3 into meterdesk's tables and indexes, in its batches"),
        Result(SCENARIO, "re-import (all duplicates), SQLite", n / median(timings["again"]), "rows/s", n / median(timings["replay"]), RATIO,
               "raw replay of the same executemany", f"{label}, nothing new recorded"),
    ]


def _postgres(context: Context, path, rows, label: str) -> list[Result]:
    n = len(rows)
    server = context.server()
    base = ledgers.pg_base(server)
    timings: dict[str, list[float]] = {"import": [], "again": [], "raw": [], "replay": []}

    def meterdesk_round(_: int) -> float:
        server.create("bench_import", template=base)
        url = server.url("bench_import")
        timings["import"].append(import_file(url, path, {"recorded": n, "rejected": 0}))
        timings["again"].append(import_file(url, path, {"recorded": 0, "duplicates": n}))
        return 0.0

    def baseline_round(_: int) -> float:
        server.create("bench_import_bare")
        with server.connect("bench_import_bare") as connection:
            connection.execute(BARE_TABLE.format(id="BIGSERIAL"))
            connection.commit()
            statement = BARE_INSERT.format(marks=", ".join(["%s"] * 6))
            for key in ("raw", "replay"):
                def insert() -> None:
                    with connection.cursor() as cursor:
                        cursor.executemany(statement, rows)
                    connection.commit()

                timings[key].append(seconds(insert))
        return 0.0

    context.log(f"bulk import on PostgreSQL: {label}, {context.sizes.import_rounds} rounds")
    interleave(context.sizes.import_rounds, meterdesk_round, baseline_round)
    server.drop("bench_import")
    server.drop("bench_import_bare")
    return [
        Result(SCENARIO, "bulk import, PostgreSQL", n / median(timings["import"]), "rows/s", n / median(timings["raw"]), PG_TARGET,
               "raw psycopg executemany ON CONFLICT DO NOTHING, bare table", f"{label}, whole `meterdesk usage import` process"),
        Result(SCENARIO, "re-import (all duplicates), PostgreSQL", n / median(timings["again"]), "rows/s", n / median(timings["replay"]), RATIO,
               "raw replay of the same executemany", f"{label}, nothing new recorded"),
    ]
