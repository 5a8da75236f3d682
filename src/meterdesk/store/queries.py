"""Reads the services share: lookups that hand out plain frozen rows, never live ORM objects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from meterdesk.domain.errors import NotFound
from meterdesk.domain.periods import Period
from meterdesk.domain.plans import Plan, plan_from_dict
from meterdesk.domain.units import Aggregation, Unit
from meterdesk.store.codec import decode_quantity
from meterdesk.store.schema import (
    customers,
    invoices,
    plan_versions,
    plans,
    subscriptions,
    units,
    usage_daily,
)


@dataclass(frozen=True, slots=True)
class UnitRow:
    id: int
    unit: Unit

    @property
    def code(self) -> str:
        return self.unit.code


@dataclass(frozen=True, slots=True)
class CustomerRow:
    id: int
    external_id: str
    name: str
    email: str | None
    currency: str
    mode: str  # "invoice" | "prepaid"
    credit_limit: int  # micro-units
    stripe_customer_id: str | None

    @property
    def prepaid(self) -> bool:
        return self.mode == "prepaid"


@dataclass(frozen=True, slots=True)
class PlanVersionRow:
    id: int
    plan_id: int
    version: int
    effective_from: int
    plan: Plan


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    id: int
    plan_id: int
    plan_code: str
    starts_on: date
    ends_on: date | None

    def overlaps(self, period: Period) -> bool:
        return self.starts_on <= period.last_day and (self.ends_on is None or self.ends_on > period.first_day)


def customer_from_row(row) -> CustomerRow:
    return CustomerRow(
        id=row.id,
        external_id=row.external_id,
        name=row.name,
        email=row.email,
        currency=row.currency,
        mode=row.mode,
        credit_limit=row.credit_limit,
        stripe_customer_id=row.stripe_customer_id,
    )


def customer_by_external_id(connection: Connection, external_id: str, *, lock: bool = False) -> CustomerRow:
    """The customer, optionally locked (PostgreSQL FOR UPDATE) so writers for one customer serialize."""
    query = select(customers).where(customers.c.external_id == external_id)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"customer: unknown customer {external_id!r}")
    return customer_from_row(row)


def customer_by_id(connection: Connection, customer_id: int, *, lock: bool = False) -> CustomerRow:
    query = select(customers).where(customers.c.id == customer_id)
    if lock:
        query = query.with_for_update()
    return customer_from_row(connection.execute(query).one())


def _unit_row(row) -> UnitRow:
    return UnitRow(row.id, Unit(row.code, row.name, row.decimals, Aggregation(row.aggregation)))


def unit_by_code(connection: Connection, code: str, cache: dict | None = None) -> UnitRow:
    """A unit by code. Units never change once defined, so a per-ledger cache is safe."""
    if cache is not None and (hit := cache.get(("unit", code))):
        return hit
    row = connection.execute(select(units).where(units.c.code == code)).first()
    if row is None:
        raise NotFound(f"unit: unknown unit {code!r}")
    found = _unit_row(row)
    if cache is not None:
        cache[("unit", code)] = cache[("unit_id", found.id)] = found
    return found


def unit_by_id(connection: Connection, unit_id: int, cache: dict | None = None) -> UnitRow:
    if cache is not None and (hit := cache.get(("unit_id", unit_id))):
        return hit
    found = _unit_row(connection.execute(select(units).where(units.c.id == unit_id)).one())
    if cache is not None:
        cache[("unit", found.code)] = cache[("unit_id", unit_id)] = found
    return found


def all_units(connection: Connection) -> list[UnitRow]:
    return [_unit_row(row) for row in connection.execute(select(units).order_by(units.c.code))]


def plan_version_by_id(connection: Connection, version_id: int, cache: dict | None = None) -> PlanVersionRow:
    """A plan version; versions are immutable, so they are cached per ledger."""
    if cache is not None and (hit := cache.get(("plan_version", version_id))):
        return hit
    row = connection.execute(select(plan_versions).where(plan_versions.c.id == version_id)).one()
    found = PlanVersionRow(row.id, row.plan_id, row.version, row.effective_from, plan_from_dict(json.loads(row.definition)))
    if cache is not None:
        cache[("plan_version", version_id)] = found
    return found


def plan_version_in_force(
    connection: Connection, plan_id: int, period_start_us: int, cache: dict | None = None
) -> PlanVersionRow:
    """The version that prices a period: the newest one in force at the period's start."""
    version_id = connection.execute(
        select(plan_versions.c.id)
        .where(plan_versions.c.plan_id == plan_id, plan_versions.c.effective_from <= period_start_us)
        .order_by(plan_versions.c.effective_from.desc(), plan_versions.c.version.desc())
        .limit(1)
    ).scalar()
    if version_id is None:  # every version starts later: the first one prices earlier periods
        version_id = connection.execute(
            select(plan_versions.c.id).where(plan_versions.c.plan_id == plan_id).order_by(plan_versions.c.version).limit(1)
        ).scalar_one()
    return plan_version_by_id(connection, version_id, cache)


def subscriptions_of(connection: Connection, customer_id: int) -> list[SubscriptionRow]:
    return subscriptions_of_many(connection, [customer_id]).get(customer_id, [])


def subscriptions_of_many(connection: Connection, customer_ids: list[int]) -> dict[int, list[SubscriptionRow]]:
    """Each customer's subscriptions, oldest first, in one query."""
    found: dict[int, list[SubscriptionRow]] = {}
    rows = connection.execute(
        select(subscriptions, plans.c.code)
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .where(subscriptions.c.customer_id.in_(customer_ids))
        .order_by(subscriptions.c.customer_id, subscriptions.c.starts_on, subscriptions.c.id)
    )
    for row in rows:
        found.setdefault(row.customer_id, []).append(
            SubscriptionRow(
                row.id,
                row.plan_id,
                row.code,
                date.fromisoformat(row.starts_on),
                date.fromisoformat(row.ends_on) if row.ends_on else None,
            )
        )
    return found


def subscription_for(connection: Connection, customer_id: int, period: Period) -> SubscriptionRow | None:
    """The subscription that prices a period: the latest-starting one overlapping it."""
    overlapping = [s for s in subscriptions_of(connection, customer_id) if s.overlaps(period)]
    return overlapping[-1] if overlapping else None


def closed_periods(connection: Connection, customer_id: int, since: Period | None = None) -> set[str]:
    query = select(invoices.c.period).where(invoices.c.customer_id == customer_id)
    if since is not None:
        query = query.where(invoices.c.period >= str(since))
    return set(connection.execute(query).scalars())


def last_closed_period(connection: Connection, customer_id: int) -> str | None:
    return connection.execute(select(func.max(invoices.c.period)).where(invoices.c.customer_id == customer_id)).scalar()


__all__ = [
    "CustomerRow",
    "PlanVersionRow",
    "SubscriptionRow",
    "UnitRow",
    "all_units",
    "closed_periods",
    "customer_by_external_id",
    "customer_by_id",
    "customer_with_balance",
    "event_context",
    "fetch",
    "fetch_alone",
    "fetch_together",
    "period_basics",
    "period_subscribers",
    "rollup_totals",
    "run",
    "run_many",
    "last_closed_period",
    "plan_version_by_id",
    "plan_versions_in_force",
    "plan_for_period",
    "plan_version_in_force",
    "subscription_for",
    "subscriptions_of",
    "unit_by_code",
    "unit_by_id",
]


def plan_for_period(
    connection: Connection, customer_id: int, period: Period, period_start_us: int, cache: dict | None = None
) -> tuple[SubscriptionRow | None, PlanVersionRow | None]:
    """The subscription and the plan version that price a customer's period (None, None without one):
    the latest-starting subscription overlapping the period, and its plan's newest version in force at the
    period's start — in one query."""
    rows = fetch(connection, SUBSCRIPTION_IN_FORCE, (period_start_us, customer_id, period.last_day.isoformat(), period.first_day.isoformat()))
    if not rows:
        return None, None
    subscription, version_id = _subscription(rows[0])
    if version_id is None:  # every version starts later: plan_version_in_force knows what prices it
        return subscription, plan_version_in_force(connection, subscription.plan_id, period_start_us, cache)
    return subscription, plan_version_by_id(connection, version_id, cache)


def period_quantity(connection: Connection, customer_id: int, unit: UnitRow, period: Period) -> Decimal:
    """A unit's aggregated period quantity from the daily rollup, reversed originals counted out (SPEC:
    corrections): `sum` adds reversals, `count` counts entries minus reversals, `max` is the largest of the
    days' peaks, which leave reversed originals out."""
    aggregation = unit.unit.aggregation
    column = {
        Aggregation.SUM: func.sum(usage_daily.c.quantity),
        Aggregation.COUNT: func.sum(usage_daily.c.entries),
        Aggregation.MAX: func.max(usage_daily.c.peak),
    }[aggregation]
    value = connection.execute(
        select(column).where(
            usage_daily.c.period == str(period),
            usage_daily.c.customer_id == customer_id,
            usage_daily.c.unit_id == unit.id,
        )
    ).scalar()
    if aggregation is Aggregation.COUNT:
        return Decimal(int(value or 0))
    return decode_quantity(int(value or 0), unit.unit.decimals)


# -- hot paths, straight to the driver ---------------------------------------------------------------
#
# Recording one event and summarising one customer are a few small indexed queries each; through SQLAlchemy
# every one of them costs several times the query itself. These run on the driver connection under the
# SQLAlchemy one (inside its transaction), written once with `?` placeholders.

def _driver_sql(connection: Connection, sql: str) -> str:
    return _percent_style(sql) if connection.dialect.name == "postgresql" else sql


@lru_cache(maxsize=512)
def _percent_style(sql: str) -> str:
    return sql.replace("?", "%s")


def fetch(connection: Connection, sql: str, params: Sequence = ()) -> list[tuple]:
    """The rows of a query (`?` placeholders), run by the driver inside `connection`'s transaction."""
    return connection.connection.driver_connection.execute(_driver_sql(connection, sql), params).fetchall()


def fetch_together(connection: Connection, statements: Sequence[tuple[str, Sequence]]) -> list[list[tuple]]:
    """The rows of several independent queries; PostgreSQL gets them all at once (psycopg's pipeline
    mode: one round trip instead of one each)."""
    if connection.dialect.name != "postgresql":
        return [fetch(connection, sql, params) for sql, params in statements]
    driver = connection.connection.driver_connection
    with driver.pipeline():
        cursors = [driver.execute(_percent_style(sql), params) for sql, params in statements]
    return [cursor.fetchall() for cursor in cursors]


def fetch_alone(connection: Connection, sql: str, params: Sequence = ()) -> list[tuple]:
    """The rows of one statement that is all a read needs, run as a transaction of its own.

    On PostgreSQL a single statement sees one snapshot however it is run, so when `connection` has not
    started its transaction yet the statement goes in autocommit mode: psycopg's BEGIN and the COMMIT,
    a round trip each, are left out (later statements of the same read begin a transaction as usual).
    SQLite: as fetch().
    """
    if connection.dialect.name != "postgresql":
        return fetch(connection, sql, params)
    from psycopg.pq import TransactionStatus  # the driver of PostgreSQL ledgers only

    driver = connection.connection.driver_connection
    if driver.autocommit or driver.info.transaction_status != TransactionStatus.IDLE:
        return fetch(connection, sql, params)
    driver.autocommit = True
    try:
        return driver.execute(_percent_style(sql), params).fetchall()
    finally:
        if driver.info.transaction_status == TransactionStatus.IDLE:  # a broken connection is left to fail its next use
            driver.autocommit = False


def run(connection: Connection, sql: str, params: Sequence = ()) -> None:
    connection.connection.driver_connection.execute(_driver_sql(connection, sql), params)


def run_many(connection: Connection, sql: str, rows: Sequence[Sequence]) -> None:
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(_driver_sql(connection, sql), rows)
    finally:
        cursor.close()


CUSTOMER_COLUMNS = "c.id, c.external_id, c.name, c.email, c.currency, c.mode, c.credit_limit, c.stripe_customer_id"
# The latest-starting subscription overlapping a period, its plan code, and its plan's newest version in force
# at the period's start. Parameters: period start (us), customer id, period's last day, period's first day.
SUBSCRIPTION_IN_FORCE = """
SELECT s.id, s.plan_id, p.code, s.starts_on, s.ends_on,
       (SELECT v.id FROM plan_versions v WHERE v.plan_id = s.plan_id AND v.effective_from <= ?
        ORDER BY v.effective_from DESC, v.version DESC LIMIT 1)
FROM subscriptions s JOIN plans p ON p.id = s.plan_id
WHERE s.customer_id = ? AND s.starts_on <= ? AND (s.ends_on IS NULL OR s.ends_on > ?)
ORDER BY s.starts_on DESC, s.id DESC LIMIT 1
"""


def _subscription(row: Sequence) -> tuple[SubscriptionRow, int | None]:
    subscription_id, plan_id, code, starts_on, ends_on, version_id = row
    return (
        SubscriptionRow(subscription_id, plan_id, code, date.fromisoformat(starts_on), date.fromisoformat(ends_on) if ends_on else None),
        version_id,
    )


def customer_with_balance(connection: Connection, external_id: str) -> tuple[CustomerRow, int | None]:
    """A customer and its prepaid balance in micro-units (None without a balance row), in one query."""
    rows = fetch(
        connection,
        f"SELECT {CUSTOMER_COLUMNS}, b.balance FROM customers c LEFT JOIN customer_balances b ON b.customer_id = c.id "
        "WHERE c.external_id = ?",
        (external_id,),
    )
    if not rows:
        raise NotFound(f"customer: unknown customer {external_id!r}")
    return CustomerRow(*rows[0][:8]), rows[0][8]


@dataclass(frozen=True, slots=True)
class PeriodBasics:
    """What a customer's period summary is built from, read together."""

    customer: CustomerRow
    balance: int | None  # micro-units; None without a balance row
    subscription: SubscriptionRow | None  # the one pricing the period
    version: PlanVersionRow | None
    rollup: list[tuple]  # rollup_totals' rows for the period


# A customer with its balance, the subscription pricing a period with its plan code and plan version in force,
# and the period's rollup per unit (one row per unit; one row of NULL rollup columns without usage).
# Parameters: period start (us), the period's last day, its first day, the period, external id (twice).
_PERIOD_BASICS = f"""
SELECT {CUSTOMER_COLUMNS}, b.balance,
       s.id, s.plan_id, p.code, s.starts_on, s.ends_on,
       (SELECT v.id FROM plan_versions v WHERE v.plan_id = s.plan_id AND v.effective_from <= ?
        ORDER BY v.effective_from DESC, v.version DESC LIMIT 1),
       r.unit_id, r.quantity, r.entries, r.reversals, r.adjusted_quantity, r.adjusted_entries, r.peak
FROM customers c
LEFT JOIN customer_balances b ON b.customer_id = c.id
LEFT JOIN subscriptions s ON s.id = (
    SELECT s2.id FROM subscriptions s2 WHERE s2.customer_id = c.id AND s2.starts_on <= ?
    AND (s2.ends_on IS NULL OR s2.ends_on > ?) ORDER BY s2.starts_on DESC, s2.id DESC LIMIT 1)
LEFT JOIN plans p ON p.id = s.plan_id
LEFT JOIN (
    SELECT customer_id, unit_id, sum(quantity) AS quantity, sum(entries) AS entries, sum(reversals) AS reversals,
           sum(adjusted_quantity) AS adjusted_quantity, sum(adjusted_entries) AS adjusted_entries, max(peak) AS peak
    FROM usage_daily
    WHERE period = ? AND customer_id = (SELECT id FROM customers WHERE external_id = ?)
    GROUP BY customer_id, unit_id
) r ON r.customer_id = c.id
WHERE c.external_id = ?
"""


def period_basics(connection: Connection, external_id: str, period: Period, period_start_us: int, cache: dict | None = None) -> PeriodBasics:
    """A customer with its balance, the subscription and plan version pricing `period`, and the period's
    rollup per unit: one statement, run on its own (fetch_alone: one round trip on PostgreSQL, and one
    snapshot for all of it). Plan versions are immutable and parsed once per ledger (`cache`)."""
    rows = fetch_alone(
        connection,
        _PERIOD_BASICS,
        (period_start_us, period.last_day.isoformat(), period.first_day.isoformat(), str(period), external_id, external_id),
    )
    if not rows:
        raise NotFound(f"customer: unknown customer {external_id!r}")
    first = rows[0]
    subscription = version = None
    if first[9] is not None:
        subscription, version_id = _subscription(first[9:15])
        if version_id is None:  # every version starts later: plan_version_in_force knows what prices it
            version = plan_version_in_force(connection, subscription.plan_id, period_start_us, cache)
        else:
            version = plan_version_by_id(connection, version_id, cache)
    rollup = [row[15:] for row in rows if row[15] is not None]
    return PeriodBasics(CustomerRow(*first[:8]), first[8], subscription, version, rollup)


@dataclass(frozen=True, slots=True)
class EventContext:
    """What recording one event for a customer needs to know, read in one query."""

    customer: CustomerRow
    last_closed: str | None  # the customer's latest closed period
    subscription: SubscriptionRow | None  # the one pricing the event's period
    version_id: int | None  # its plan's version in force (None: see plan_version_in_force)
    total: int  # the unit's period total so far: scaled quantity (sum), entries (count) or peak (max)
    balance: int | None  # the prepaid balance before the event (micro-units)


_ROLLUP_TOTAL = {Aggregation.SUM: "sum(d.quantity)", Aggregation.COUNT: "sum(d.entries)", Aggregation.MAX: "max(d.peak)"}


def event_context(
    connection: Connection, external_id: str, unit: UnitRow | None, period: Period, period_start_us: int, *, lock: bool
) -> EventContext:
    """The customer (PostgreSQL: locked FOR UPDATE, so writers for one customer serialize), its last closed
    period, the subscription and plan version pricing `period`, and `unit`'s total in it — one round trip
    for what a prepaid charge is priced from.

    The lock is taken by a statement of its own and the context read by the next one (both sent together):
    under READ COMMITTED a statement that waits for a row lock keeps the snapshot it took before the wait,
    so a context read in the locking statement would miss what the previous lock holder committed."""
    context = (
        _event_sql(unit.unit.aggregation if unit is not None else None),
        (period_start_us, str(period), unit.id if unit is not None else 0, period.last_day.isoformat(), period.first_day.isoformat(), external_id),
    )
    if lock:
        _, rows = fetch_together(connection, [(LOCK_CUSTOMER, (external_id,)), context])
    else:
        rows = fetch(connection, *context)
    if not rows:
        raise NotFound(f"customer: unknown customer {external_id!r}")
    row = rows[0]
    subscription, version_id = _subscription(row[9:15]) if row[9] is not None else (None, None)
    return EventContext(CustomerRow(*row[:8]), row[8], subscription, version_id, int(row[15] or 0), row[16])


# Locks a customer for the rest of the transaction (PostgreSQL); what the lock protects is read by the
# statements after it, never in the same one (see event_context).
LOCK_CUSTOMER = "SELECT id FROM customers WHERE external_id = ? FOR UPDATE"


@lru_cache(maxsize=16)
def _event_sql(aggregation: Aggregation | None) -> str:
    total = _ROLLUP_TOTAL[aggregation] if aggregation is not None else "0"
    return f"""SELECT {CUSTOMER_COLUMNS}, (SELECT max(i.period) FROM invoices i WHERE i.customer_id = c.id),
               s.id, s.plan_id, p.code, s.starts_on, s.ends_on,
               (SELECT v.id FROM plan_versions v WHERE v.plan_id = s.plan_id AND v.effective_from <= ?
                ORDER BY v.effective_from DESC, v.version DESC LIMIT 1),
               (SELECT coalesce({total}, 0) FROM usage_daily d WHERE d.period = ? AND d.customer_id = c.id AND d.unit_id = ?),
               (SELECT b.balance FROM customer_balances b WHERE b.customer_id = c.id)
        FROM customers c
        LEFT JOIN subscriptions s ON s.id = (
            SELECT s2.id FROM subscriptions s2 WHERE s2.customer_id = c.id AND s2.starts_on <= ?
            AND (s2.ends_on IS NULL OR s2.ends_on > ?) ORDER BY s2.starts_on DESC, s2.id DESC LIMIT 1)
        LEFT JOIN plans p ON p.id = s.plan_id
        WHERE c.external_id = ?"""


ROLLUP_TOTALS = (
    "SELECT unit_id, sum(quantity), sum(entries), sum(reversals), sum(adjusted_quantity), sum(adjusted_entries), max(peak) "
    "FROM usage_daily WHERE period IN ({periods}) AND customer_id = {customer} GROUP BY unit_id"
)


def rollup_totals(connection: Connection, customer_id: int, periods: Sequence[str]) -> list[tuple]:
    """Per unit over whole periods: (unit id, quantity, entries, reversals, adjusted quantity, adjusted
    entries, peak), summed from the daily rollup (the peak is the largest day's)."""
    return fetch(connection, ROLLUP_TOTALS.format(periods=", ".join("?" * len(periods)), customer="?"), (*periods, customer_id))


# -- every customer's period at once ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PeriodSubscribers:
    """What pricing every customer's period starts from, read together: each subscribed customer with
    the subscription pricing the period, the plan versions in force, and the period's rollup totals."""

    customers: dict[int, tuple[CustomerRow, SubscriptionRow]]  # customer id -> (customer, subscription)
    versions: dict[int, PlanVersionRow]  # plan id -> the version in force at the period's start
    usage: list[tuple]  # (customer id, unit id, quantity, entries, peak) per customer and unit


# Every subscription overlapping a period with its customer and plan code; the latest-starting one of a
# customer comes last. Parameters: the period's last day, its first day.
_SUBSCRIBERS = f"""
SELECT {CUSTOMER_COLUMNS}, s.id, s.plan_id, p.code, s.starts_on, s.ends_on
FROM subscriptions s JOIN customers c ON c.id = s.customer_id JOIN plans p ON p.id = s.plan_id
WHERE s.starts_on <= ? AND (s.ends_on IS NULL OR s.ends_on > ?)
ORDER BY s.starts_on, s.id
"""
_PLAN_VERSIONS = "SELECT id, plan_id, version, effective_from FROM plan_versions"
# Per customer and unit over one period: (customer id, unit id, quantity, entries, peak).
_PERIOD_USAGE = (
    "SELECT customer_id, unit_id, sum(quantity), sum(entries), max(peak) FROM usage_daily WHERE period = ? "
    "GROUP BY customer_id, unit_id"
)


def period_subscribers(connection: Connection, period: Period, period_start_us: int, cache: dict | None = None) -> PeriodSubscribers:
    """Every customer subscribed in `period` with what prices it, and the period's usage: three queries,
    sent together (one round trip on PostgreSQL) whatever the number of customers. Plan versions are
    immutable, so each is parsed once per ledger (`cache`)."""
    subscriber_rows, version_rows, usage = fetch_together(
        connection,
        [
            (_SUBSCRIBERS, (period.last_day.isoformat(), period.first_day.isoformat())),
            (_PLAN_VERSIONS, ()),
            (_PERIOD_USAGE, (str(period),)),
        ],
    )
    found: dict[int, tuple[CustomerRow, SubscriptionRow]] = {}
    for row in subscriber_rows:  # the latest-starting subscription of a customer comes last, and wins
        customer = CustomerRow(*row[:8])
        subscription_id, plan_id, code, starts_on, ends_on = row[8:]
        ends = date.fromisoformat(ends_on) if ends_on else None
        found[customer.id] = (customer, SubscriptionRow(subscription_id, plan_id, code, date.fromisoformat(starts_on), ends))
    in_force = plan_versions_in_force(version_rows, period_start_us)
    versions = {
        plan_id: plan_version_by_id(connection, in_force[plan_id], cache)
        for plan_id in {subscription.plan_id for _, subscription in found.values()}
    }
    return PeriodSubscribers(found, versions, usage)


def plan_versions_in_force(rows: Sequence[tuple], period_start_us: int) -> dict[int, int]:
    """plan id -> id of the version pricing a period that starts at `period_start_us`, from (id, plan id,
    version, effective from) rows: the newest in force at the start, else the plan's first version (as
    plan_version_in_force)."""
    best: dict[int, tuple] = {}
    for version_id, plan_id, version, effective_from in rows:
        key = (1, effective_from, version) if effective_from <= period_start_us else (0, 0, -version)
        if plan_id not in best or key > best[plan_id][0]:
            best[plan_id] = (key, version_id)
    return {plan_id: version_id for plan_id, (_, version_id) in best.items()}

