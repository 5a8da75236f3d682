"""Period report for all customers at 10M ledger entries: every customer's period aggregated and priced.

meterdesk: `services.summary.period_report` — what closing a period aggregates and what the top-customers
list shows — read from the daily rollup. Baseline: the raw `GROUP BY customer_id, unit_id` over the bare
table (through its covering index), which is what the report would cost without a rollup.
"""

from __future__ import annotations

import sqlite3

from bench import data, ledgers
from bench.harness import Context, Result, Target, interleave, median, seconds

SCENARIO = "period report"
TARGET = Target("<= 200 ms", max_value=200.0)
RAW_REPORT = "SELECT customer_id, unit_id, sum(quantity), count(*) FROM raw_usage WHERE period = {mark} GROUP BY customer_id, unit_id"


def run(context: Context) -> list[Result]:
    from meterdesk.services.summary import period_report
    from meterdesk.store.engine import open_ledger

    size = context.sizes.ledger_large
    label = f"{size / 1e6:g}M entries" if size >= 1_000_000 else f"{size:,} entries"
    rounds = context.sizes.report_rounds
    results = []
    for backend in ("sqlite", "postgresql"):
        if backend == "sqlite":
            ledger_path, raw_path = ledgers.sqlite_ledger(size, context.log)
            ledger = open_ledger(f"sqlite:///{ledger_path}", upgrade=False)
            raw = sqlite3.connect(raw_path)
            raw.execute("PRAGMA cache_size=-131072")
            query, name = RAW_REPORT.format(mark="?"), "SQLite"
        else:
            server = context.server()
            ledger_db, raw_db = ledgers.pg_ledger(server, size, context.log)
            ledger = open_ledger(server.url(ledger_db), upgrade=False)
            raw = server.connect(raw_db, autocommit=True)
            query, name = RAW_REPORT.format(mark="%s"), "PostgreSQL"
        try:
            rows = period_report(ledger, data.PERIOD)  # warm-up, and a check of what it reports
            if len(rows) != data.CUSTOMERS:
                raise RuntimeError(f"period_report found {len(rows)} customers, expected {data.CUSTOMERS}")
            raw.execute(query, (data.PERIOD,)).fetchall()
            context.log(f"period report on {name}: {label}, {rounds} rounds")
            mine, base = interleave(
                rounds,
                lambda _: seconds(lambda: period_report(ledger, data.PERIOD)) * 1000,
                lambda _: seconds(lambda: raw.execute(query, (data.PERIOD,)).fetchall()) * 1000,
            )
        finally:
            ledger.close()
            raw.close()
        results.append(Result(SCENARIO, f"period report, all customers, {name}, {label}", median(mine), "ms", median(base), TARGET,
                              "raw GROUP BY over the ledger rows", f"{data.CUSTOMERS:,} customers priced, largest total first"))
    return results
