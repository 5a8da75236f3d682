"""Read-outs for the per-customer usage charts: buckets, reversal markers, plan allowances and the prepaid balance over time.

Every number is aggregated in SQL. The usage buckets are `usage_summary`'s series (the same numbers as
`meterdesk usage summary --granularity`); reversals are counted per bucket exactly where that series
places entries; the balance is credit grants minus prepaid charges, summed per hour in SQL and the hourly
sums folded into the chart's buckets (a year of hours is at most 8,784 aggregated rows, never ledger rows).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.periods import Period, from_micros, to_micros
from meterdesk.domain.plans import Charge, PricingModel
from meterdesk.services.context import now_us as clock_now_us
from meterdesk.services.summary import HOUR_US, Summary, parse_granularity, usage_summary
from meterdesk.domain.timeline import parse_instant
from meterdesk.store.codec import decode_money
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import CustomerRow, customer_by_external_id, plan_for_period, unit_by_code, unit_by_id
from meterdesk.store.schema import credit_grants, usage_daily, usage_entries

DAY_US = 24 * HOUR_US
#: Ranges up to this long are drawn by the hour, up to the next limit by the day, longer ones by the month.
HOURLY_UP_TO_US = 4 * DAY_US
DAILY_UP_TO_US = 200 * DAY_US


@dataclass(frozen=True, slots=True)
class UnitAllowance:
    """Where a unit's plan charge changes price, on the axis of the period's cumulative quantity.

    `tier_bounds` are the inclusive upper bounds of each tier but the last, shifted by `included`
    (tiers price the billable quantity, which starts after the included allowance).
    """

    unit: str
    model: str | None
    included: Decimal
    tier_bounds: tuple[Decimal, ...] = ()


@dataclass(frozen=True, slots=True)
class UnitInfo:
    code: str
    name: str
    decimals: int
    aggregation: str


@dataclass(frozen=True, slots=True)
class ReversalMark:
    """How many reversals (the first half of a correction) landed in one bucket of one unit."""

    start_us: int
    unit: str
    reversals: int


@dataclass(frozen=True, slots=True)
class BalancePoint:
    """The prepaid balance at `at_us`: the end of a bucket, or now for the bucket that is running."""

    at_us: int
    balance: Decimal


@dataclass(frozen=True, slots=True)
class BalanceSeries:
    opening: Decimal  # the balance at the start of the range
    points: tuple[BalancePoint, ...]
    credit_limit: Decimal
    current: Decimal  # the balance now (the summary's), exact to 1e-6


@dataclass(frozen=True, slots=True)
class ChartData:
    """Everything one customer's chart shows for one range, read in SQL."""

    summary: Summary
    granularity: str
    timezone: str
    edges_us: tuple[int, ...]  # bucket boundaries: every bucket of the range and the range's end
    period_starts_us: tuple[int, ...]  # where a period begins inside the range (cumulatives restart)
    units: tuple[UnitInfo, ...]
    allowances: tuple[UnitAllowance, ...]
    reversals: tuple[ReversalMark, ...]
    balance: BalanceSeries | None
    now_us: int

    @property
    def customer(self) -> str:
        return self.summary.customer

    @property
    def start_us(self) -> int:
        return self.summary.start_us

    @property
    def end_us(self) -> int:
        return self.summary.end_us

    def allowance(self, unit: str) -> UnitAllowance | None:
        return next((a for a in self.allowances if a.unit == unit), None)


def auto_granularity(start_us: int, end_us: int) -> str:
    """The bucket size that keeps a range readable: hours for a few days, days up to ~6 months, else months."""
    span = end_us - start_us
    if span <= HOURLY_UP_TO_US:
        return "hour"
    if span <= DAILY_UP_TO_US:
        return "day"
    return "month"


def _local_midnight(day: date, ledger: Ledger) -> int:
    return to_micros(datetime.combine(day, time.min, tzinfo=ledger.timezone))


def _local_date(instant_us: int, ledger: Ledger) -> date:
    return from_micros(instant_us).astimezone(ledger.timezone).date()


def align_range(ledger: Ledger, start_us: int, end_us: int, granularity: str) -> tuple[int, int]:
    """Widen [start, end) to whole buckets, so the series and the range's quantity count the same entries:
    local midnights for days and hours, whole periods for months."""
    if granularity == "month":
        timeline = ledger.timeline
        start = timeline.bounds(timeline.period_of(start_us))[0]
        last = timeline.period_of(end_us - 1)
        return start, timeline.bounds(last)[1]
    start = _local_midnight(_local_date(start_us, ledger), ledger)
    last_day = _local_date(end_us - 1, ledger)
    return start, _local_midnight(last_day + timedelta(days=1), ledger)


def bucket_edges(ledger: Ledger, start_us: int, end_us: int, granularity: str) -> tuple[int, ...]:
    """The boundaries of the range's buckets, placed the way `usage_summary` places its series."""
    if granularity == "hour":
        # The series counts whole hours from the range's start (a local midnight): hours of local time.
        edges = list(range(start_us, end_us, HOUR_US))
    elif granularity == "day":
        edges = []
        day = _local_date(start_us, ledger)
        while (instant := _local_midnight(day, ledger)) < end_us:
            if instant >= start_us:
                edges.append(instant)
            day += timedelta(days=1)
    else:
        timeline = ledger.timeline
        edges = [start for start, _ in (timeline.bounds(p) for p in periods_between(ledger, start_us, end_us))]
        edges = [max(edge, start_us) for edge in edges]
    if not edges or edges[0] != start_us:
        edges.insert(0, start_us)
    edges.append(end_us)
    return tuple(edges)


def periods_between(ledger: Ledger, start_us: int, end_us: int) -> list[Period]:
    return ledger.timeline.periods_between(start_us, end_us)


def _instant(value, field: str, ledger: Ledger) -> int:
    return parse_instant(value, field, ledger.timezone)


def chart_data(
    ledger: Ledger,
    customer: str,
    *,
    period: str | Period | None = None,
    start=None,
    end=None,
    granularity: str | None = None,
    now_us: int | None = None,
) -> ChartData:
    """A customer's chart for a period (default: the current one) or a [start, end) range.

    `start` and `end` may be dates (local midnights of the billing time zone), aware datetimes or integer
    microseconds. `granularity` None picks one from the range's length (`auto_granularity`).
    """
    granularity = parse_granularity(granularity)
    now = clock_now_us() if now_us is None else now_us
    if (start is None) != (end is None):
        raise InvalidInput("from" if start is None else "to", "give both ends of the range, or a period")
    if start is None:
        timeline = ledger.timeline
        chosen = period if isinstance(period, Period) else (Period.parse(period) if period else timeline.period_of(now))
        bounds = timeline.bounds(chosen)
        granularity = granularity or auto_granularity(*bounds)
        summary = usage_summary(ledger, customer, period=chosen, granularity=granularity)
    else:
        start_us, end_us = _instant(start, "from", ledger), _instant(end, "to", ledger)
        if end_us <= start_us:
            raise InvalidInput("to", "must be later than the start of the range")
        granularity = granularity or auto_granularity(start_us, end_us)
        start_us, end_us = align_range(ledger, start_us, end_us, granularity)
        summary = usage_summary(ledger, customer, start=from_micros(start_us), end=from_micros(end_us), granularity=granularity)
    start_us, end_us = summary.start_us, summary.end_us
    periods = periods_between(ledger, start_us, end_us)
    timeline = ledger.timeline
    with ledger.read() as connection:
        row = customer_by_external_id(connection, customer)
        units = tuple(_unit_info(connection, ledger, unit.unit) for unit in summary.units)
        allowances = _allowances(connection, ledger, row, periods[0], [u.code for u in units])
        reversals = reversal_marks(connection, ledger, row.id, periods, start_us, end_us, granularity)
        edges = bucket_edges(ledger, start_us, end_us, granularity)
        balance = _balance_series(connection, row, edges, now, summary.balance) if row.prepaid else None
    return ChartData(
        summary=summary,
        granularity=granularity,
        timezone=ledger.timezone.key,
        edges_us=edges,
        period_starts_us=tuple(s for s in (timeline.bounds(p)[0] for p in periods) if start_us < s < end_us),
        units=units,
        allowances=allowances,
        reversals=reversals,
        balance=balance,
        now_us=now,
    )


def _unit_info(connection: Connection, ledger: Ledger, code: str) -> UnitInfo:
    unit = unit_by_code(connection, code, ledger.cache).unit
    return UnitInfo(unit.code, unit.name, unit.decimals, str(unit.aggregation))


def charge_allowance(charge: Charge) -> UnitAllowance:
    """The included allowance and tier boundaries of one charge, as cumulative period quantities."""
    bounds: tuple[Decimal, ...] = ()
    if charge.model in (PricingModel.GRADUATED, PricingModel.VOLUME):
        bounds = tuple(charge.included + tier.up_to for tier in charge.tiers if tier.up_to is not None)
    return UnitAllowance(charge.unit, str(charge.model), charge.included, bounds)


def _allowances(connection: Connection, ledger: Ledger, customer: CustomerRow, period: Period, codes: list[str]) -> tuple[UnitAllowance, ...]:
    """The allowances of the plan that prices the range's first period (the one its summary is priced by)."""
    start = ledger.timeline.bounds(period)[0]
    _, version = plan_for_period(connection, customer.id, period, start, ledger.cache)
    found = []
    for code in codes:
        charge = version.plan.charge_for(code) if version else None
        found.append(charge_allowance(charge) if charge else UnitAllowance(code, None, Decimal(0)))
    return tuple(found)


def reversal_marks(
    connection: Connection, ledger: Ledger, customer_id: int, periods: list[Period], start_us: int, end_us: int, granularity: str
) -> tuple[ReversalMark, ...]:
    """Reversals per unit and bucket, counted in SQL where the summary's series puts those entries:
    hours from ledger rows by billed_at, days and months from the daily rollup."""
    names = [str(p) for p in periods]
    marks = []
    if granularity == "hour":
        bucket = (usage_entries.c.billed_at - start_us) // HOUR_US
        rows = connection.execute(
            select(usage_entries.c.unit_id, bucket.label("bucket"), func.count())
            .where(
                usage_entries.c.customer_id == customer_id,
                usage_entries.c.period.in_(names),
                usage_entries.c.billed_at >= start_us,
                usage_entries.c.billed_at < end_us,
                usage_entries.c.kind == "reversal",
            )
            .group_by(usage_entries.c.unit_id, "bucket")
            .order_by("bucket", usage_entries.c.unit_id)
        ).all()
        for unit_id, number, count in rows:
            marks.append(ReversalMark(start_us + int(number) * HOUR_US, _unit_code(connection, ledger, unit_id), int(count)))
        return tuple(marks)
    key = usage_daily.c.day if granularity == "day" else usage_daily.c.period
    rows = connection.execute(
        select(key, usage_daily.c.unit_id, func.sum(usage_daily.c.reversals))
        .where(usage_daily.c.customer_id == customer_id, usage_daily.c.period.in_(names), usage_daily.c.reversals > 0)
        .group_by(key, usage_daily.c.unit_id)
        .order_by(key, usage_daily.c.unit_id)
    ).all()
    timeline = ledger.timeline
    for label, unit_id, count in rows:
        if granularity == "day":
            start = _local_midnight(date.fromisoformat(label), ledger)
        else:
            start = timeline.bounds(Period.parse(label))[0]
        if start_us <= start < end_us:
            marks.append(ReversalMark(start, _unit_code(connection, ledger, unit_id), int(count)))
    return tuple(marks)


def _unit_code(connection: Connection, ledger: Ledger, unit_id: int) -> str:
    return unit_by_id(connection, unit_id, ledger.cache).code


def _hourly_sums(connection: Connection, time_column, amount_column, customer_column, customer_id: int, start_us: int, end_us: int):
    hour = (time_column - start_us) // HOUR_US
    return connection.execute(
        select(hour.label("hour"), func.sum(amount_column))
        .where(customer_column == customer_id, time_column >= start_us, time_column < end_us, amount_column.is_not(None))
        .group_by("hour")
    ).all()


def _total_before(connection: Connection, time_column, amount_column, customer_column, customer_id: int, before_us: int) -> int:
    return int(
        connection.execute(
            select(func.coalesce(func.sum(amount_column), 0)).where(customer_column == customer_id, time_column < before_us)
        ).scalar_one()
    )


def _balance_series(connection: Connection, customer: CustomerRow, edges: tuple[int, ...], now: int, current: Decimal) -> BalanceSeries:
    """grants - charges over time: a grant when it was granted, a charge where its usage sits on the
    chart's time axis (billed_at, as the bars). Live usage is charged as it happens, so the two agree;
    for usage imported after the fact this shows when the credit was consumed, not when the import ran.
    The last point is always the balance now."""
    start_us, end_us = edges[0], edges[-1]
    grants = (func.coalesce(credit_grants.c.granted_at, credit_grants.c.recorded_at), credit_grants.c.amount, credit_grants.c.customer_id)
    charges = (usage_entries.c.billed_at, usage_entries.c.charged, usage_entries.c.customer_id)
    # usage may be stamped up to 5 minutes ahead of the clock: it counts in the bucket of now.
    now_index = bisect_right(edges, now) - 1
    opening = _total_before(connection, *grants, customer.id, start_us) - _total_before(connection, *charges, customer.id, start_us)
    deltas = [0] * (len(edges) - 1)
    for sign, columns in ((1, grants), (-1, charges)):
        for hour, amount in _hourly_sums(connection, *columns, customer.id, start_us, end_us):
            index = bisect_right(edges, start_us + int(hour) * HOUR_US) - 1
            deltas[min(index, now_index) if now_index >= 0 else index] += sign * int(amount)
    points = []
    running = opening
    for index, delta in enumerate(deltas):
        if edges[index] > now:
            break
        running += delta
        points.append(BalancePoint(min(edges[index + 1], now), decode_money(running)))
    return BalanceSeries(decode_money(opening), tuple(points), decode_money(customer.credit_limit), current)
