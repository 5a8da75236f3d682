"""Summary of one customer-month (the `/usage/summary` read-out) at 1M and 10M ledger entries, on both databases.

meterdesk: `services.summary.usage_summary` — customer, plan version, per-unit quantities from the daily
rollup (and the peak of `max` units), priced, with the prepaid balance — from a process that keeps its
ledger open, as a server would. Baseline: one `SELECT unit_id, sum(quantity), count(*) ... GROUP BY unit_id`
for the customer and period over the bare table's covering index `(customer_id, period, unit_id, quantity)`.
"""

from __future__ import annotations

import random
import sqlite3
import time

from bench import data, ledgers
from bench.harness import Context, Result, Target, median

SCENARIO = "summary"
TARGET = Target("p50 <= 2 ms", max_value=2.0)
RAW_SUMMARY = "SELECT unit_id, sum(quantity), count(*) FROM raw_usage WHERE customer_id = {mark} AND period = {mark} GROUP BY unit_id"
WARM_UP = 20


def sample_customers(count: int, seed: int) -> list[int]:
    """Customer numbers (0-based), drawn uniformly: most customers are not the busiest."""
    rng = random.Random(seed)
    return [rng.randrange(data.CUSTOMERS) for _ in range(count)]


def time_pairs(numbers: list[int], meterdesk, baseline) -> tuple[list[float], list[float]]:
    """Milliseconds of each call, the two alternating (and alternating which goes first)."""
    ours, theirs = [], []
    for index, number in enumerate(numbers):
        pair = ((meterdesk, ours), (baseline, theirs))
        for work, sink in pair if index % 2 == 0 else reversed(pair):
            start = time.perf_counter()
            work(number)
            sink.append((time.perf_counter() - start) * 1000)
    return ours[WARM_UP:], theirs[WARM_UP:]


def run(context: Context) -> list[Result]:
    from meterdesk.services.summary import usage_summary
    from meterdesk.store.engine import open_ledger

    specs = data.customer_specs()
    numbers = sample_customers(context.sizes.summary_samples + WARM_UP, seed=7)
    results = []
    for size in (context.sizes.ledger_small, context.sizes.ledger_large):
        label = f"{size / 1e6:g}M entries" if size >= 1_000_000 else f"{size:,} entries"
        for backend in ("sqlite", "postgresql"):
            if backend == "sqlite":
                ledger_path, raw_path = ledgers.sqlite_ledger(size, context.log)
                ledger = open_ledger(f"sqlite:///{ledger_path}", upgrade=False)
                raw = sqlite3.connect(raw_path)
                raw.execute("PRAGMA cache_size=-131072")
                query = RAW_SUMMARY.format(mark="?")
                name = "SQLite"
            else:
                server = context.server()
                ledger_db, raw_db = ledgers.pg_ledger(server, size, context.log)
                ledger = open_ledger(server.url(ledger_db), upgrade=False)
                raw = server.connect(raw_db, autocommit=True)
                query = RAW_SUMMARY.format(mark="%s")
                name = "PostgreSQL"
            try:
                def ours(number: int) -> None:
                    usage_summary(ledger, specs[number].external_id, period=data.PERIOD)

                def theirs(number: int) -> None:
                    raw.execute(query, (number + 1, data.PERIOD)).fetchall()

                mine, base = time_pairs(numbers, ours, theirs)
            finally:
                ledger.close()
                raw.close()
            results.append(
                Result(SCENARIO, f"summary p50, {name}, {label}", median(mine), "ms", median(base), TARGET,
                       "raw GROUP BY over the covering index",
                       f"one customer-month, {len(mine)} random customers; p90 {sorted(mine)[int(len(mine) * 0.9)]:.2f} ms")
            )
    return results
