"""Ledgers for the benchmarks: the seeded catalog written through the services, and big ledgers loaded fast.

A ledger of 1M or 10M entries is not imported through the services each run (that is what the import
scenario measures). It is loaded directly with bulk SQL — executemany into SQLite, COPY into PostgreSQL,
secondary indexes dropped during the load and rebuilt after it — and holds exactly what the services
would have written for the same events: the usage_entries rows (prepaid charges priced entry by entry in
ledger order), the usage_daily rollup aggregated from them, and the customer balances minus the charges.
`bench.verify` proves it: it loads the same events both ways and compares every row.

Ledgers are cached under bench/.data/, keyed by the data version and the schema revision.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np

from bench import data
from bench.data import UNITS, Events
from meterdesk.store import migrate

DATA_DIR = Path(__file__).with_name(".data")
RECORDED_LAG_US = 2_000_000  # loaded entries are recorded two seconds after they occurred
LOAD_SOURCE = "import"
LOAD_ACTOR = "import:bench"


def cache_key() -> str:
    return f"data{data.DATA_VERSION}-schema{migrate.HEAD_REVISION}"


def _same_data(mark: str | None) -> bool:
    """Cached with the same generated data, whatever the schema revision then (migrations bring it up)."""
    return mark is not None and mark.split("-schema")[0] == f"data{data.DATA_VERSION}"


def _marks() -> dict:
    path = DATA_DIR / "cache.json"
    return json.loads(path.read_text()) if path.exists() else {}


def is_cached(name: str) -> bool:
    return _marks().get(name) == cache_key()


def is_cached_data(name: str) -> bool:
    """For generated files, which have no schema: cached with the same data."""
    return _same_data(_marks().get(name))


def _cached_upgraded(name: str, url: str) -> bool:
    """Whether `name` is cached; a ledger cached at an older schema revision is migrated in place (as a team's
    ledger would be), not rebuilt."""
    mark = _marks().get(name)
    if mark == cache_key():
        return True
    if not _same_data(mark):
        return False
    from meterdesk.store.engine import open_ledger

    open_ledger(url, upgrade=True).close()
    mark_cached(name)
    return True


def mark_cached(name: str, valid: bool = True) -> None:
    marks = _marks()
    if valid:
        marks[name] = cache_key()
    else:
        marks.pop(name, None)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    (DATA_DIR / "cache.json").write_text(json.dumps(marks, indent=2, sort_keys=True))


# -- the catalog, through the services -----------------------------------------------------------------

def build_catalog(url: str) -> None:
    """Units, plans, 1,000 customers and their prepaid credits, written the way a billing team would."""
    from meterdesk.services.catalog import add_customer, add_unit, save_plan
    from meterdesk.services.credits import grant_credits
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url)
    try:
        for unit in UNITS:
            add_unit(ledger, unit.code, unit.name, unit.decimals, unit.aggregation, actor=data.ACTOR)
        for plan in data.PLANS:
            save_plan(ledger, plan, actor=data.ACTOR)
        for spec in data.customer_specs():
            add_customer(ledger, spec.external_id, f"Customer {spec.number + 1}", spec.plan, email=f"billing+{spec.number + 1}@example.com",
                         prepaid=spec.prepaid, credit_limit="100" if spec.prepaid else None, start=data.SUBSCRIPTION_START, actor=data.ACTOR)
            if spec.prepaid:
                grant_credits(ledger, spec.external_id, data.PREPAID_GRANT, f"welcome-{spec.external_id}", source="cli", actor=data.ACTOR)
    finally:
        ledger.close()


def sqlite_path(name: str) -> Path:
    return DATA_DIR / f"{name}.sqlite3"


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_sqlite(source: Path, target: Path) -> None:
    remove_sqlite(target)
    with sqlite3.connect(source) as connection:  # fold the WAL into the file before copying it
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(source, target)


def sqlite_base() -> Path:
    """The migrated SQLite ledger with the catalog and no usage (cached)."""
    path = sqlite_path("base")
    if not (path.exists() and _cached_upgraded("sqlite-base", f"sqlite:///{path}")):
        remove_sqlite(path)
        build_catalog(f"sqlite:///{path}")
        mark_cached("sqlite-base")
    return path


def pg_base(server) -> str:
    """The migrated PostgreSQL ledger with the catalog (a database other ledgers are copied from)."""
    name = "bench_base"
    if not (server.exists(name) and _cached_upgraded("pg-base", server.url(name))):
        server.create(name)
        build_catalog(server.url(name))
        mark_cached("pg-base")
    return name


# -- loading events fast ------------------------------------------------------------------------------

ENTRY_COLUMNS = (
    "customer_id", "unit_id", "quantity", "occurred_at", "recorded_at", "billed_at", "period", "late",
    "request_id", "kind", "corrects_id", "source", "actor", "note", "charged",
)


def _ids(rows) -> dict:
    return {key: value for value, key in rows}


def catalog_ids(connection) -> tuple[list[int], list[int]]:
    """The ledger's ids of the generated customers and units, in generation order (sqlite3 or psycopg)."""
    customer_ids = [i for i, in connection.execute("SELECT id FROM customers ORDER BY id")]
    by_code = _ids(connection.execute("SELECT id, code FROM units"))
    return customer_ids, [by_code[u.code] for u in UNITS]


def entry_rows(events: Events, customer_ids: list[int], unit_ids: list[int], start: int, stop: int, *, late=False):
    """The usage_entries rows of events[start:stop], as the services write them (see module docstring)."""
    prepaid = np.array([spec.prepaid for spec in data.customer_specs()])
    charged = _charges(events)
    occurred = events.occurred_us()[start:stop].tolist()
    customers = events.customer[start:stop].tolist()
    units = events.unit[start:stop].tolist()
    quantities = events.quantity[start:stop].tolist()
    charges = charged[start:stop].tolist()
    flags = prepaid[events.customer[start:stop]].tolist()
    request_ids = events.request_ids(start, stop)
    period = data.PERIOD
    for c, u, q, t, r, ch, p in zip(customers, units, quantities, occurred, request_ids, charges, flags):
        yield (customer_ids[c], unit_ids[u], q, t, t + RECORDED_LAG_US, t, period, late, r, "usage", None,
               LOAD_SOURCE, LOAD_ACTOR, None, ch if p else None)


_charged: list[tuple[Events, np.ndarray]] = []  # the last events priced (held, so their identity stays theirs)


def _charges(events: Events) -> np.ndarray:
    if not (_charged and _charged[0][0] is events):
        _charged[:] = [(events, data.prepaid_charges(events))]
    return _charged[0][1]


# Every loaded entry is plain usage (no reversals, nothing late), so a day's peak is its largest entry.
ROLLUP_SQLITE = """
INSERT INTO usage_daily (customer_id, period, unit_id, day, quantity, entries, reversals, adjusted_quantity, adjusted_entries, peak)
SELECT e.customer_id, e.period, e.unit_id, date(e.billed_at / 1000000, 'unixepoch'), sum(e.quantity), count(*), 0, 0, 0,
       CASE WHEN u.aggregation = 'max' THEN max(e.quantity) ELSE 0 END
FROM usage_entries e JOIN units u ON u.id = e.unit_id
GROUP BY e.customer_id, e.period, e.unit_id, date(e.billed_at / 1000000, 'unixepoch')
"""
ROLLUP_PG = """
INSERT INTO usage_daily (customer_id, period, unit_id, day, quantity, entries, reversals, adjusted_quantity, adjusted_entries, peak)
SELECT e.customer_id, e.period, e.unit_id, to_char(date '1970-01-01' + (e.billed_at / 86400000000)::int, 'YYYY-MM-DD'),
       sum(e.quantity), count(*), 0, 0, 0, CASE WHEN min(u.aggregation) = 'max' THEN max(e.quantity) ELSE 0 END
FROM usage_entries e JOIN units u ON u.id = e.unit_id GROUP BY 1, 2, 3, 4
"""
BALANCES = """
UPDATE customer_balances SET charged = customer_balances.charged + s.total, balance = customer_balances.balance - s.total
FROM (SELECT customer_id, sum(charged) AS total FROM usage_entries WHERE charged IS NOT NULL GROUP BY customer_id) AS s
WHERE customer_balances.customer_id = s.customer_id
"""


def load_sqlite(path: Path, events: Events, *, chunk: int = 250_000) -> None:
    """Append the events to a ledger that has the catalog and no usage yet."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-2000000")
        connection.execute("PRAGMA temp_store=MEMORY")
        customer_ids, unit_ids = catalog_ids(connection)
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage_entries' AND sql IS NOT NULL"
        ).fetchall()
        connection.execute("BEGIN")
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        marks = ", ".join("?" * len(ENTRY_COLUMNS))
        statement = f"INSERT INTO usage_entries ({', '.join(ENTRY_COLUMNS)}) VALUES ({marks})"
        for start in range(0, len(events), chunk):
            stop = min(start + chunk, len(events))
            connection.executemany(statement, entry_rows(events, customer_ids, unit_ids, start, stop))
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute(ROLLUP_SQLITE)
        connection.execute(BALANCES)
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    return str(value)


def load_pg(server, database: str, events: Events, *, chunk: int = 250_000) -> None:
    with server.connect(database) as connection:
        connection.execute("SET session_replication_role = replica")  # no FK triggers during the load
        connection.execute("SET maintenance_work_mem = '1GB'")
        customer_ids, unit_ids = catalog_ids(connection)
        constraints = connection.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'usage_entries'::regclass AND contype = 'u'"
        ).fetchall()
        indexes = connection.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'usage_entries'::regclass AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        ).fetchall()
        for name, _ in constraints:
            connection.execute(f'ALTER TABLE usage_entries DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY usage_entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN") as copy:
                for start in range(0, len(events), chunk):
                    stop = min(start + chunk, len(events))
                    rows = entry_rows(events, customer_ids, unit_ids, start, stop)
                    copy.write("".join("\t".join(map(_copy_text, row)) + "\n" for row in rows))
        for name, definition in constraints:
            connection.execute(f'ALTER TABLE usage_entries ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            connection.execute(definition)
        connection.execute(ROLLUP_PG)
        connection.execute(BALANCES)
        connection.execute("SET session_replication_role = origin")
        connection.commit()
    with server.connect(database, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")  # what autovacuum does to a grown table; index-only scans need it


# -- raw baseline tables ------------------------------------------------------------------------------

# The parsed rows of the usage file, its unique key, and nothing else: what the baselines insert into and
# (with RAW_COVERING_INDEX) read from.
RAW_TABLE = """
CREATE TABLE raw_usage (
    id {id} PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    unit_id INTEGER NOT NULL,
    quantity BIGINT NOT NULL,
    occurred_at BIGINT NOT NULL,
    period VARCHAR(7) NOT NULL,
    request_id VARCHAR(255) NOT NULL,
    UNIQUE (customer_id, request_id)
)
"""
RAW_COLUMNS = "customer_id, unit_id, quantity, occurred_at, period, request_id"
RAW_COVERING_INDEX = "CREATE INDEX raw_usage_summary ON raw_usage (customer_id, period, unit_id, quantity)"


def raw_rows(events: Events, start: int, stop: int):
    """The events as parsed rows (customer and unit ids as the catalog numbers them: 1, 2, ...)."""
    customers = (events.customer[start:stop] + 1).tolist()
    units = (events.unit[start:stop] + 1).tolist()
    return zip(customers, units, events.quantity[start:stop].tolist(), events.occurred_us()[start:stop].tolist(),
               [data.PERIOD] * (stop - start), events.request_ids(start, stop))


def build_raw_sqlite(path: Path, ledger: Path) -> None:
    """The bare baseline table holding the same rows as a loaded ledger, copied from it in SQL."""
    remove_sqlite(path)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-2000000")
        connection.execute(RAW_TABLE.format(id="INTEGER"))
        connection.execute("ATTACH DATABASE ? AS ledger", (str(ledger),))
        connection.execute("BEGIN")
        connection.execute(f"INSERT INTO raw_usage ({RAW_COLUMNS}) SELECT {RAW_COLUMNS} FROM ledger.usage_entries ORDER BY id")
        connection.execute(RAW_COVERING_INDEX)
        connection.execute("COMMIT")
        connection.execute("DETACH DATABASE ledger")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def build_raw_pg(server, database: str) -> None:
    """The bare baseline table, in the ledger's own database (a table meterdesk does not know about)."""
    with server.connect(database) as connection:
        connection.execute("DROP TABLE IF EXISTS raw_usage")
        connection.execute(RAW_TABLE.format(id="BIGSERIAL"))
        connection.execute(f"INSERT INTO raw_usage ({RAW_COLUMNS}) SELECT {RAW_COLUMNS} FROM usage_entries ORDER BY id")
        connection.execute(RAW_COVERING_INDEX)
        connection.commit()
    with server.connect(database, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE raw_usage")


# -- cached big ledgers -------------------------------------------------------------------------------

def sqlite_ledger(n: int, log=print) -> tuple[Path, Path]:
    """(ledger, raw baseline) SQLite files holding `n` generated events; built once and cached."""
    ledger, raw = sqlite_path(f"ledger-{n}"), sqlite_path(f"raw-{n}")
    name = f"sqlite-{n}"
    if not (ledger.exists() and raw.exists() and _cached_upgraded(name, f"sqlite:///{ledger}")):
        mark_cached(name, False)
        log(f"building the SQLite ledger of {n:,} entries (cached under {DATA_DIR} for later runs)")
        events = data.generate_events(n)
        copy_sqlite(sqlite_base(), ledger)
        load_sqlite(ledger, events)
        build_raw_sqlite(raw, ledger)
        mark_cached(name)
    return ledger, raw


def pg_ledger(server, n: int, log=print) -> tuple[str, str]:
    """(ledger, raw baseline) PostgreSQL databases holding `n` generated events; built once and cached.
    The baseline's table lives in the ledger's database, so both are the same database."""
    ledger = f"bench_ledger_{n}"
    name = f"pg-{n}"
    if not (server.exists(ledger) and _cached_upgraded(name, server.url(ledger))):
        mark_cached(name, False)
        log(f"building the PostgreSQL ledger of {n:,} entries (cached in the benchmark server for later runs)")
        events = data.generate_events(n)
        server.create(ledger, template=pg_base(server))
        load_pg(server, ledger, events)
        build_raw_pg(server, ledger)
        mark_cached(name)
    else:
        with server.connect(ledger) as connection:
            has_raw = connection.execute("SELECT to_regclass('raw_usage') IS NOT NULL").fetchone()[0]
        if not has_raw:  # an interrupted build (or someone's cleanup) left the ledger without its baseline table
            log(f"rebuilding the baseline table of the PostgreSQL ledger of {n:,} entries")
            build_raw_pg(server, ledger)
    return ledger, ledger
