"""Single events: one usage event per transaction for a prepaid customer (the entry, its charge, the balance).

meterdesk: `services.recording.record_usage` in a loop, from a process that keeps the ledger open (a server).
Baseline: the raw driver storing the same event in the same ledger tables — insert the entry row (already
built, charge included) into `usage_entries` with its indexes (ON CONFLICT DO NOTHING on the request id),
update the customer's balance, commit — on an identical copy of the ledger, at the same durability setting.
What separates the two is everything meterdesk does around the write: validation, locking the customer,
placing the entry in its period, pricing the charge, the daily rollup, the result. On PostgreSQL the same
again with 4 writer processes at once, each for its own prepaid customer.
"""

from __future__ import annotations

import time

from bench import data, ledgers
from bench.harness import REPORTED, Context, Result, Target, interleave, median, run_together

SCENARIO = "single events"
RATIO = Target("ratio >= 0.5", min_ratio=0.5)
WRITERS = 4
CHARGE = 300  # micro-EUR: 3 api calls at 0.0001 EUR, past the included ones (the baseline does not price)
INSERT = (
    f"INSERT INTO usage_entries ({', '.join(ledgers.ENTRY_COLUMNS)}) VALUES ({{marks}}) "
    "ON CONFLICT (customer_id, request_id) DO NOTHING"
)
UPDATE = "UPDATE customer_balances SET charged = charged + {m}, balance = balance - {m} WHERE customer_id = {m}"


def prepaid_customers(count: int) -> list[data.CustomerSpec]:
    return [spec for spec in data.customer_specs() if spec.prepaid][:count]


def record_events(url: str, customer: str, count: int, tag: str, start_together=None) -> tuple[float, float]:
    """(start, end) of recording `count` events through the service, one transaction each."""
    from meterdesk.services.recording import record_usage
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url, upgrade=False)
    try:
        record_usage(ledger, customer, "api_calls", "1", f"{tag}-warm-up", source="api")  # connection and caches
        _wait(start_together)
        start = time.perf_counter()
        for number in range(count):
            result = record_usage(ledger, customer, "api_calls", "3", f"{tag}-{number}", source="api")
            if result.duplicate or result.charged is None:
                raise RuntimeError(f"record_usage did not charge a new prepaid event: {result}")
        return start, time.perf_counter()
    finally:
        ledger.close()


def raw_events(connect, mark: str, customer_id: int, count: int, tag: str, begin: str | None, start_together=None) -> tuple[float, float]:
    """(start, end) of the raw driver inserting + updating + committing `count` times."""
    connection = connect()
    try:
        insert = INSERT.format(marks=", ".join([mark] * len(ledgers.ENTRY_COLUMNS)))
        update = UPDATE.format(m=mark)
        _wait(start_together)
        start = time.perf_counter()
        for number in range(count):
            now = time.time_ns() // 1000
            if begin:
                connection.execute(begin)
            connection.execute(insert, (customer_id, 1, 3, now, now, now, _period(now), False, f"{tag}-{number}", "usage",
                                        None, "api", "bench", None, CHARGE))
            connection.execute(update, (CHARGE, CHARGE, customer_id))
            connection.commit() if not begin else connection.execute("COMMIT")
        return start, time.perf_counter()
    finally:
        connection.close()


def _period(now_us: int) -> str:
    return time.strftime("%Y-%m", time.gmtime(now_us // 1_000_000))


def _wait(start_together) -> None:
    """In a worker process: say it is ready, then wait until every worker is."""
    if start_together is not None:
        ready, go = start_together
        ready.release()
        go.wait()


def _span(times: tuple[float, float]) -> float:
    return times[1] - times[0]


def _sqlite_connect(path):
    def connect():
        import sqlite3

        connection = sqlite3.connect(path, isolation_level=None)
        # As meterdesk opens it (store/engine.py); WAL is a property of the file.
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA cache_size=-131072")
        return connection

    return connect


def run(context: Context) -> list[Result]:
    count, rounds = context.sizes.single_events, context.sizes.single_rounds
    customer = prepaid_customers(1)[0]
    results = []

    # SQLite
    ledger = context.work_dir / "single.sqlite3"
    bare = context.work_dir / "single-raw.sqlite3"
    ledgers.copy_sqlite(ledgers.sqlite_base(), ledger)
    ledgers.copy_sqlite(ledgers.sqlite_base(), bare)
    context.log(f"single events on SQLite: {count:,} per round, {rounds} rounds")
    mine, base = interleave(
        rounds,
        lambda n: _span(record_events(f"sqlite:///{ledger}", customer.external_id, count, f"sqlite-{n}")),
        lambda n: _span(raw_events(_sqlite_connect(bare), "?", customer.number + 1, count, f"sqlite-{n}", "BEGIN IMMEDIATE")),
    )
    results.append(Result(SCENARIO, "single events, SQLite", count / median(mine), "txn/s", count / median(base), RATIO,
                          "raw sqlite3 insert + update + commit, same tables", "record_usage, prepaid customer, one transaction each"))

    # PostgreSQL, one writer
    server = context.server()
    base_db = ledgers.pg_base(server)
    server.create("bench_single", template=base_db)
    server.create("bench_single_raw", template=base_db)
    url = server.url("bench_single")

    def pg_connect():
        return server.connect("bench_single_raw")

    context.log(f"single events on PostgreSQL: {count:,} per round, {rounds} rounds")
    mine, base = interleave(
        rounds,
        lambda n: _span(record_events(url, customer.external_id, count, f"pg-{n}")),
        lambda n: _span(raw_events(pg_connect, "%s", customer.number + 1, count, f"pg-{n}", None)),
    )
    results.append(Result(SCENARIO, "single events, PostgreSQL", count / median(mine), "txn/s", count / median(base), RATIO,
                          "raw psycopg insert + update + commit, same tables", "record_usage, prepaid customer, one transaction each"))

    # PostgreSQL, 4 writer processes
    writers = prepaid_customers(WRITERS)
    context.log(f"single events on PostgreSQL with {WRITERS} writer processes")
    mine, base = interleave(
        rounds,
        lambda n: _concurrent([(record_events, (url, spec.external_id, count, f"pg4-{n}-{spec.number}")) for spec in writers]),
        lambda n: _concurrent([(_raw_pg_events, (server.conninfo("bench_single_raw"), spec.number + 1, count, f"pg4-{n}-{spec.number}"))
                               for spec in writers]),
    )
    total = count * WRITERS
    results.append(Result(SCENARIO, f"single events, PostgreSQL, {WRITERS} writer processes", total / median(mine), "txn/s",
                          total / median(base), REPORTED, f"{WRITERS} raw psycopg processes, same tables",
                          f"{WRITERS} processes, each its own prepaid customer; total throughput"))
    server.drop("bench_single")
    server.drop("bench_single_raw")
    ledgers.remove_sqlite(ledger)
    ledgers.remove_sqlite(bare)
    return results


def _raw_pg_events(conninfo: str, customer_id: int, count: int, tag: str, start_together=None) -> tuple[float, float]:
    import psycopg

    return raw_events(lambda: psycopg.connect(conninfo), "%s", customer_id, count, tag, None, start_together)


def _concurrent(jobs) -> float:
    """Seconds from the first start to the last end of jobs run together (perf_counter is the system-wide
    monotonic clock on Linux, the same in every process)."""
    spans = run_together(jobs)
    return max(end for _, end in spans) - min(start for start, _ in spans)
