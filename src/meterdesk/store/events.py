"""Recording one usage event per transaction, fast: the common case of `record_usage`, straight on the driver.

A server that records events one by one pays for everything around the write, so the common case — a new
request id, billed in its own open period — is written here with the few statements it needs and nothing
else: the customer's event context (`store.queries.event_context`, read after locking the customer on
PostgreSQL), the entry, its day in the rollup and the prepaid balance, then the commit. Everything else (a
retried or conflicting request id, usage in a closed period, an unknown unit or customer, bad input) returns
None here and takes the general path in `services.recording`, which is the authority for those rules; nothing
this path started is left written when it does.

What the event context says is remembered between events only where a cheap check proves it unchanged:
- SQLite: per connection, while `PRAGMA data_version` (which moves whenever another connection, in any
  process, commits) and the ledger's own write counter (other transactions of this process on the same
  connection) both say that nothing but this path wrote since. The remembered totals and balances are moved
  by this path's own commits.
- PostgreSQL: other desks write all the time, so the context is read again in every event, in the
  statement after the one that locks the customer (under READ COMMITTED a statement that waited for the
  lock keeps its snapshot from before the wait; the catalog rows it names come from per-ledger caches of
  immutable rows: units and plan versions). Both go out with the BEGIN, and the writes — one statement of
  data-modifying CTEs — go out with the COMMIT: two round trips per event.
"""

from __future__ import annotations

import json
from bisect import bisect_right

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.plans import plan_from_dict
from meterdesk.domain.pricing import RunningCharge
from meterdesk.domain.timeline import local_midnight
from meterdesk.domain.units import MAX_SCALED, Aggregation, validate_usage_amount
from meterdesk.store.writer import ENTRY_COLUMNS, INSERT_ONE, PEAK_UPDATE, ROLLUP_NAMES, ROLLUP_UPSERT
from meterdesk.store.codec import encode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import LOCK_CUSTOMER, CustomerRow, PlanVersionRow, UnitRow, _event_sql, _percent_style, fetch

SESSION_KEY = "meterdesk_event_session"
PERIOD_KEY = "event_period"
MAX_REMEMBERED_CONTEXTS = 10_000


class _Context:
    """One customer, unit and period as an event sees them: mutable, moved by this path's own commits."""

    __slots__ = ("customer", "prepaid", "last_closed", "charge", "total", "running", "starts", "quantity")

    def __init__(self, customer: CustomerRow, last_closed: str | None, charge, total: int, running: RunningCharge | None,
                 starts: int | None = None) -> None:
        self.customer = customer
        # The first instant of the subscription pricing the period; None without one. Usage before it
        # takes the general path, which refuses it or finds an earlier subscription that covers it.
        self.starts = starts
        # The period's summed scaled quantity, which must stay within the exact range (SPEC 2): the total of
        # a `sum` unit, read apart (`PERIOD_QUANTITY`) for the others.
        self.quantity = total
        self.prepaid = customer.prepaid
        self.last_closed = last_closed
        self.charge = charge  # the plan's charge for the unit, None when nothing prices it
        self.total = total  # scaled quantity (sum), entries (count) or peak (max) of the period so far
        self.running = running  # a prepaid customer's pricer at `total`


class _Session:
    """What a SQLite connection remembers between events (see the module docstring)."""

    __slots__ = ("data_version", "ledger_writes", "contexts", "balances")

    def __init__(self) -> None:
        self.data_version = None
        self.ledger_writes = -1
        self.contexts: dict[tuple[str, int, str], _Context] = {}
        self.balances: dict[int, int | None] = {}

    def forget(self) -> None:
        self.contexts.clear()
        self.balances.clear()


def record_event(
    ledger: Ledger,
    external_id: str,
    unit: UnitRow,
    amount,
    request_id: str,
    occurred: int | None,
    now: int,
    note: str | None,
    source: str,
    actor: str,
) -> tuple[CustomerRow, int, int | None, int | None, str] | None:
    """Record a new event billed in its own open period, in one transaction: (customer, entry id, charged,
    balance after, period), the money in micro-units (None for a postpaid customer). None when the event is
    anything else; nothing is written then, and the general path decides what it is."""
    try:
        number = validate_usage_amount(unit.unit, amount)
    except InvalidInput:
        return None  # the general path reports it, in its order of checks
    quantity = int(number) if unit.unit.decimals == 0 else encode_quantity(number, unit.unit.decimals)
    instant = now if occurred is None else occurred
    # The period and local day of the instant; the current period's are remembered.
    known = ledger.cache.get(PERIOD_KEY)
    if known is None or not known[0] <= instant < known[1]:
        known = ledger.cache[PERIOD_KEY] = _period_at(ledger, instant)
    _, _, period, name, starts, days = known
    day = days[bisect_right(starts, instant) - 1]
    with ledger.driver_transaction() as (connection, driver):
        if ledger.engine.dialect.name == "postgresql":
            return _record_postgresql(ledger, connection, driver, external_id, unit, quantity, instant, now, period, name, day,
                                      request_id, note, source, actor)
        return _record_sqlite(ledger, connection, driver, external_id, unit, quantity, instant, now, period, name, day,
                              request_id, note, source, actor)


def _period_at(ledger: Ledger, instant: int) -> tuple:
    timeline = ledger.timeline
    period = timeline.period_of(instant)
    start, end = timeline.bounds(period)
    return (start, end, period, timeline.name(period), *timeline.days(period))


def _context_sql(ledger: Ledger, external_id: str, unit: UnitRow, period) -> tuple[str, tuple]:
    """The event context query (store.queries.event_context) and its parameters."""
    start, _ = ledger.timeline.bounds(period)
    return _event_sql(unit.unit.aggregation), (
        start, str(period), unit.id, period.last_day.isoformat(), period.first_day.isoformat(), external_id
    )


def _context_from_row(ledger: Ledger, connection, row, unit: UnitRow) -> tuple[_Context, int | None]:
    """(context, balance in micro-units) from a row of the event context query."""
    customer = CustomerRow(*row[:8])
    charge = running = None
    total = int(row[15] or 0)
    if customer.prepaid and row[9] is not None:
        if row[14] is None:
            charge = _NEEDS_GENERAL_PATH  # every plan version starts later: the general path knows what prices it
        else:
            charge = _plan_version(ledger, connection, row[14]).plan.charge_for(unit.code)
    if customer.prepaid and charge is not _NEEDS_GENERAL_PATH:
        running = RunningCharge(charge, 0 if unit.unit.aggregation is Aggregation.COUNT else unit.unit.decimals, total)
    starts = local_midnight(row[12], ledger.timezone) if row[9] is not None else None
    return _Context(customer, row[8], charge, total, running, starts), row[16]


_NEEDS_GENERAL_PATH = object()


def _plan_version(ledger: Ledger, connection, version_id: int) -> PlanVersionRow:
    """store.queries.plan_version_by_id, through the driver (this path runs no SQLAlchemy transaction);
    versions are immutable, so they share that function's per-ledger cache."""
    key = ("plan_version", version_id)
    found = ledger.cache.get(key)
    if found is None:
        (row,) = fetch(connection, "SELECT id, plan_id, version, effective_from, definition FROM plan_versions WHERE id = ?",
                       (version_id,))
        found = ledger.cache[key] = PlanVersionRow(*row[:4], plan_from_dict(json.loads(row[4])))
    return found


def _priced(context: _Context, unit: UnitRow, quantity: int) -> tuple[int | None, int]:
    """(charged micro-units or None for a postpaid customer, the period total after the entry): the
    domain's price(total after) - price(total before), each rounded to the balance quantum. Nothing moves
    until the entry is committed (`_Context.running.move_to`)."""
    before = context.total
    aggregation = unit.unit.aggregation
    if aggregation is Aggregation.SUM:
        after = before + quantity
    elif aggregation is Aggregation.COUNT:
        after = before + 1
    else:
        after = max(before, quantity)
    if not context.prepaid:
        return None, after
    return context.running.charge_to(after), after


def _rollup_row(customer_id: int, name: str, unit: UnitRow, day: str, quantity: int) -> tuple:
    peak = quantity if unit.unit.aggregation is Aggregation.MAX else 0
    return (customer_id, name, unit.id, day, quantity, 1, 0, 0, 0, peak)


# -- SQLite ---------------------------------------------------------------------------------------------

def _record_sqlite(ledger, connection, driver, external_id, unit, quantity, instant, now, period, name, day,
                   request_id, note, source, actor) -> tuple | None:
    execute = driver.execute
    execute("BEGIN IMMEDIATE")
    session = connection.info.get(SESSION_KEY)
    if session is None:
        session = connection.info[SESSION_KEY] = _Session()
    version = execute("PRAGMA data_version").fetchone()[0]
    if version != session.data_version or ledger.writes != session.ledger_writes:
        session.forget()
        session.data_version, session.ledger_writes = version, ledger.writes
    key = (external_id, unit.id, name)
    context = session.contexts.get(key)
    if context is None:
        rows = execute(*_context_sql(ledger, external_id, unit, period)).fetchall()
        if not rows:
            return None  # unknown customer: the general path says so
        context, balance = _context_from_row(ledger, connection, rows[0], unit)
        if unit.unit.aggregation is not Aggregation.SUM:
            context.quantity = int(execute(PERIOD_QUANTITY, (name, context.customer.id, unit.id)).fetchone()[0] or 0)
        if len(session.contexts) >= MAX_REMEMBERED_CONTEXTS:
            session.forget()
        session.contexts[key] = context
        session.balances[context.customer.id] = balance
    customer = context.customer
    if context.last_closed is not None and name <= context.last_closed or context.charge is _NEEDS_GENERAL_PATH:
        return None  # late usage: placed by the general path
    if context.starts is None or instant < context.starts:
        return None  # before the subscription's start: the general path decides
    balance = session.balances[customer.id]
    prepaid = context.prepaid
    if prepaid and balance is None:
        return None
    if context.quantity + quantity > MAX_SCALED:
        return None  # beyond the exact range: the general path refuses it
    charged, after = _priced(context, unit, quantity)
    # No RETURNING: the statement's change count says whether the request id was free, the rowid is the
    # entry's id, and the balance after the charge is known (nobody else wrote: see _Session).
    inserted = execute(
        SQLITE_INSERT, (customer.id, unit.id, quantity, instant, now, instant, name, False, request_id, "usage", None, source,
                        actor, note, charged)
    )
    if inserted.rowcount != 1:
        return None  # the request id is taken: a retry or a conflict, which the general path tells apart
    entry_id = inserted.lastrowid
    execute(SQLITE_ROLLUP, _rollup_row(customer.id, name, unit, day, quantity))
    if charged:
        execute(SQLITE_CHARGE, (charged, charged, customer.id))
        balance -= charged
    execute("COMMIT")
    context.total = after
    context.quantity += quantity
    if context.running is not None:
        context.running.move_to(after)
    if prepaid:
        session.balances[customer.id] = balance
    return customer, entry_id, charged, balance, name


SQLITE_INSERT = INSERT_ONE.removesuffix(" RETURNING id")
# The summed scaled quantity of a customer's unit in a period (the total of a `sum` unit comes with the context).
PERIOD_QUANTITY = "SELECT sum(quantity) FROM usage_daily WHERE period = ? AND customer_id = ? AND unit_id = ?"
PERIOD_QUANTITY_BY_EXTERNAL_ID = (
    "SELECT sum(d.quantity) FROM usage_daily d JOIN customers c ON c.id = d.customer_id "
    "WHERE d.period = ? AND c.external_id = ? AND d.unit_id = ?"
)
SQLITE_ROLLUP = f"INSERT INTO usage_daily ({ROLLUP_NAMES}) VALUES ({', '.join('?' * 10)}) {ROLLUP_UPSERT} max({PEAK_UPDATE})"
SQLITE_CHARGE = "UPDATE customer_balances SET charged = charged + ?, balance = balance - ? WHERE customer_id = ?"


# -- PostgreSQL -----------------------------------------------------------------------------------------

def _record_postgresql(ledger, connection, driver, external_id, unit, quantity, instant, now, period, name, day,
                       request_id, note, source, actor) -> tuple | None:
    sql, params = _context_sql(ledger, external_id, unit, period)
    # The lock first, the context in the next statement: a statement that waited for the lock would
    # still see the snapshot from before the wait (READ COMMITTED). Sent together: one round trip.
    summed = unit.unit.aggregation is not Aggregation.SUM
    with driver.pipeline():
        driver.execute("BEGIN")
        driver.execute(_percent_style(LOCK_CUSTOMER), (external_id,))
        cursor = driver.execute(_percent_style(sql), params)
        if summed:  # after the customer's lock, in the same round trip
            sums = driver.execute(_percent_style(PERIOD_QUANTITY_BY_EXTERNAL_ID), (name, external_id, unit.id))
    rows = cursor.fetchall()
    if not rows:
        return None
    context, balance = _context_from_row(ledger, connection, rows[0], unit)
    if summed:
        context.quantity = int(sums.fetchone()[0] or 0)
    if context.quantity + quantity > MAX_SCALED:
        return None
    customer = context.customer
    if context.last_closed is not None and name <= context.last_closed or context.charge is _NEEDS_GENERAL_PATH:
        return None
    if context.starts is None or instant < context.starts:
        return None
    if customer.prepaid and balance is None:
        return None
    charged, _ = _priced(context, unit, quantity)
    entry = (customer.id, unit.id, quantity, instant, now, instant, name, False, request_id, "usage", None, source, actor,
             note, charged)
    rollup = _rollup_row(customer.id, name, unit, day, quantity)
    with driver.pipeline():
        if charged:
            cursor = driver.execute(PG_RECORD_CHARGED, (*entry, *rollup, charged, charged, customer.id))
        else:
            cursor = driver.execute(PG_RECORD, (*entry, *rollup))
        driver.execute("COMMIT")
    found = cursor.fetchall()
    if not found or found[0][0] is None:
        return None  # committed nothing but the lock: the request id is taken
    if charged:
        balance = found[0][1]
    return customer, found[0][0], charged, balance, name


# The entry, then its day in the rollup and the charge only when the entry went in (a taken request id
# inserts nothing, so nothing else moves). The types are spelt out where a parameter reaches a column
# through a SELECT rather than VALUES.
_PG_ENTRY = (
    f"entry AS (INSERT INTO usage_entries ({', '.join(ENTRY_COLUMNS)}) VALUES ({', '.join(['%s'] * len(ENTRY_COLUMNS))}) "
    "ON CONFLICT (customer_id, request_id) DO NOTHING RETURNING id)"
)
_PG_ROLLUP = (
    f"daily AS (INSERT INTO usage_daily ({ROLLUP_NAMES}) SELECT %s::integer, %s::varchar, %s::integer, %s::varchar, "
    "%s::bigint, %s::integer, %s::integer, %s::bigint, %s::integer, %s::bigint FROM entry "
    f"{ROLLUP_UPSERT} greatest({PEAK_UPDATE}))"
)
PG_RECORD = f"WITH {_PG_ENTRY}, {_PG_ROLLUP} SELECT id FROM entry"
PG_RECORD_CHARGED = (
    f"WITH {_PG_ENTRY}, {_PG_ROLLUP}, charge AS (UPDATE customer_balances SET charged = charged + %s::bigint, "
    "balance = balance - %s::bigint WHERE customer_id = %s AND EXISTS (SELECT FROM entry) RETURNING balance) "
    "SELECT (SELECT id FROM entry), (SELECT balance FROM charge)"
)
