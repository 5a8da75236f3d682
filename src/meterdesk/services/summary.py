"""Read-outs per customer and period: quantities, amounts, balance and time series (SPEC: Summary).

Everything is aggregated in SQL from the per-customer/unit/day rollup kept by the writer; only hourly
series and `max` units read ledger rows, and then only the customer's rows of the period (indexed).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.money import EXACT_CONTEXT as _EXACT
from meterdesk.domain.periods import Period, to_micros
from meterdesk.domain.plans import Plan
from meterdesk.domain.pricing import billable_quantity, charge_amount, charge_pricer, prorated_base_fee
from meterdesk.domain.units import Aggregation
from meterdesk.services.context import now_us
from meterdesk.services.shapes import money, plain, timestamp
from meterdesk.domain.timeline import parse_instant
from meterdesk.store.codec import decode_money, decode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import (
    CustomerRow,
    PlanVersionRow,
    SubscriptionRow,
    UnitRow,
    customer_with_balance,
    period_basics,
    period_subscribers,
    plan_for_period,
    rollup_totals,
    unit_by_id,
)
from meterdesk.store.schema import customer_balances, units, usage_daily, usage_entries

GRANULARITIES = ("hour", "day", "month")
_ZERO = Decimal(0)
_NOTHING: dict = {}
HOUR_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class UnitSummary:
    unit: str
    name: str
    quantity: Decimal
    included: Decimal
    billable: Decimal
    amount: Decimal
    entries: int
    corrections: int

    def to_json(self, currency: str) -> dict:
        return {
            "unit": self.unit,
            "name": self.name,
            "quantity": plain(self.quantity),
            "included": plain(self.included),
            "billable": plain(self.billable),
            "amount": money(self.amount, currency),
            "entries": self.entries,
            "corrections": self.corrections,
        }


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    start_us: int
    unit: str
    quantity: Decimal

    def to_json(self) -> dict:
        return {"start": timestamp(self.start_us), "unit": self.unit, "quantity": plain(self.quantity)}


class _PeriodAmounts:
    """What a customer's period comes to, for records that carry its mode, base fee and usage amount."""

    __slots__ = ()
    mode: str
    base_fee: Decimal
    usage_amount: Decimal

    @property
    def total(self) -> Decimal:
        return self.base_fee + self.usage_amount

    @property
    def due(self) -> Decimal:
        """What the period's invoice asks for: prepaid usage is already paid from the balance."""
        return self.base_fee if self.mode == "prepaid" else self.total


@dataclass(frozen=True, slots=True)
class Summary(_PeriodAmounts):
    customer: str
    name: str
    mode: str
    currency: str
    period: str | None
    start_us: int
    end_us: int
    plan: str | None
    plan_version: int | None
    units: tuple[UnitSummary, ...]
    base_fee: Decimal
    usage_amount: Decimal
    balance: Decimal | None
    corrections: int
    granularity: str | None = None
    series: tuple[SeriesPoint, ...] = field(default=())

    def to_json(self) -> dict:
        currency = self.currency
        return {
            "customer": self.customer,
            "name": self.name,
            "mode": self.mode,
            "currency": currency,
            "period": {"start": timestamp(self.start_us), "end": timestamp(self.end_us), "name": self.period},
            "plan": self.plan,
            "plan_version": self.plan_version,
            "units": [unit.to_json(currency) for unit in self.units],
            "base_fee": money(self.base_fee, currency),
            "usage_amount": money(self.usage_amount, currency),
            "total": money(self.total, currency),
            "due": money(self.due, currency),
            "corrections": self.corrections,
            "balance": None if self.balance is None else money(self.balance, currency),
            "granularity": self.granularity,
            "series": [point.to_json() for point in self.series],
        }


def parse_granularity(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in GRANULARITIES:
        raise InvalidInput("granularity", f"must be hour, day or month, not {value!r}")
    return value


def parse_period(value: str | Period | None, ledger: Ledger) -> Period:
    if isinstance(value, Period):
        return value
    if not value:
        return ledger.timeline.period_of(now_us())
    return Period.parse(value)


def usage_summary(
    ledger: Ledger,
    customer: str,
    *,
    period: str | Period | None = None,
    start=None,
    end=None,
    granularity: str | None = None,
) -> Summary:
    """The summary of a customer's period (default: the current one), or of a [start, end) range."""
    granularity = parse_granularity(granularity)
    if (start is None) != (end is None):
        raise InvalidInput("from" if start is None else "to", "give both --from and --to, or --period")
    if start is not None and period:
        raise InvalidInput("period", "give either --period or --from/--to, not both")
    timeline = ledger.timeline
    with ledger.read() as connection:
        if start is not None:
            row, balance = customer_with_balance(connection, customer)
            start_us, end_us = parse_instant(start, "from", ledger.timezone), parse_instant(end, "to", ledger.timezone)
            if end_us <= start_us:
                raise InvalidInput("to", "must be later than --from")
            return _range_summary(connection, ledger, row, start_us, end_us, granularity)
        try:
            chosen = parse_period(period, ledger)
        except InvalidInput:
            customer_with_balance(connection, customer)  # an unknown customer is the first thing to say
            raise
        start_us, end_us = timeline.bounds(chosen)
        basics = period_basics(connection, customer, chosen, start_us, ledger.cache)
        row, balance, subscription, version = basics.customer, basics.balance, basics.subscription, basics.version
        quantities = _period_quantities(connection, ledger, row.id, [chosen], basics.rollup)
        units = _unit_summaries(connection, ledger, row, chosen, quantities, version.plan if version else None)
        series = _series(connection, ledger, row.id, [chosen], start_us, end_us, granularity) if granularity else ()
        return Summary(
            customer=row.external_id,
            name=row.name,
            mode=row.mode,
            currency=row.currency,
            period=str(chosen),
            start_us=start_us,
            end_us=end_us,
            plan=subscription.plan_code if subscription else None,
            plan_version=version.version if version else None,
            units=units,
            base_fee=base_fee(version, subscription, chosen, row.currency),
            usage_amount=sum((unit.amount for unit in units), Decimal(0)),
            balance=decode_money(balance) if row.prepaid else None,
            corrections=sum(unit.corrections for unit in units),
            granularity=granularity,
            series=tuple(series),
        )


def base_fee(version: PlanVersionRow | None, subscription: SubscriptionRow | None, period: Period, currency: str) -> Decimal:
    if version is None or subscription is None:
        return Decimal(0)
    return prorated_base_fee(version.plan.base_fee, currency, period, subscription.starts_on, subscription.ends_on)


def _balance(connection: Connection, customer: CustomerRow) -> Decimal | None:
    if not customer.prepaid:
        return None
    return decode_money(
        connection.execute(select(customer_balances.c.balance).where(customer_balances.c.customer_id == customer.id)).scalar()
    )


@dataclass(frozen=True, slots=True)
class PeriodQuantity:
    unit: UnitRow
    quantity: Decimal
    entries: int
    corrections: int
    adjusted: Decimal  # the part of `quantity` from late entries and corrections


def period_quantities(connection: Connection, ledger: Ledger, customer_id: int, periods: list[Period]) -> dict[int, PeriodQuantity]:
    """Aggregated quantity per unit over whole periods, from the daily rollup (a `max` unit's is the
    largest of its days' peaks, which leave reversed originals out)."""
    return _period_quantities(connection, ledger, customer_id, periods, rollup_totals(connection, customer_id, [str(p) for p in periods]))


def _period_quantities(connection: Connection, ledger: Ledger, customer_id: int, periods: list[Period], rollup: list[tuple]) -> dict[int, PeriodQuantity]:
    found = {}
    for unit_id, quantity, entries, reversals, adjusted_quantity, adjusted_entries, peak in rollup:
        unit = unit_by_id(connection, unit_id, ledger.cache)
        aggregation = unit.unit.aggregation
        if aggregation is Aggregation.COUNT:
            total, adjusted = Decimal(int(entries)), Decimal(int(adjusted_entries))
        elif aggregation is Aggregation.MAX:
            total, adjusted = decode_quantity(int(peak or 0), unit.unit.decimals), Decimal(0)
        else:
            total = decode_quantity(int(quantity), unit.unit.decimals)
            adjusted = decode_quantity(int(adjusted_quantity), unit.unit.decimals)
        found[unit_id] = PeriodQuantity(unit, total, int(entries), int(reversals), adjusted)
    return found


def _unit_summaries(connection, ledger, customer: CustomerRow, period, quantities: dict[int, PeriodQuantity], plan: Plan | None):
    from meterdesk.store.queries import unit_by_code

    summaries = []
    by_code = {q.unit.code: q for q in quantities.values()}
    codes = list(by_code)
    if plan:
        codes += [charge.unit for charge in plan.charges if charge.unit not in by_code]
    for code in sorted(codes):
        measured = by_code.get(code)
        unit = measured.unit if measured else unit_by_code(connection, code, ledger.cache)
        quantity = measured.quantity if measured else Decimal(0)
        charge = plan.charge_for(code) if plan else None
        summaries.append(
            UnitSummary(
                unit=code,
                name=unit.unit.name,
                quantity=quantity,
                included=charge.included if charge else Decimal(0),
                billable=billable_quantity(charge, quantity) if charge else quantity,
                amount=charge_amount(charge, quantity, customer.currency) if charge else Decimal(0),
                entries=measured.entries if measured else 0,
                corrections=measured.corrections if measured else 0,
            )
        )
    return tuple(summaries)


def _series(connection: Connection, ledger: Ledger, customer_id: int, periods: list[Period], start_us: int, end_us: int, granularity: str):
    """Quantity per unit and bucket; buckets are local hours, days or months of the billing time zone.

    `sum` and `count` units add up within a bucket; a `max` unit (seats) shows each bucket's peak of the
    entries that still count (reversed originals and their reversals left out), as the summary does.
    """
    timeline = ledger.timeline
    names = [str(p) for p in periods]
    points: list[SeriesPoint] = []
    peaks = _peak_series(connection, ledger, customer_id, names, start_us, end_us, granularity)
    peak_units = {point.unit for point in peaks}
    if granularity == "hour":
        anchor = start_us  # local midnight: hour buckets stay aligned to local hours across offsets
        bucket = (usage_entries.c.billed_at - anchor) // HOUR_US
        rows = connection.execute(
            select(
                usage_entries.c.unit_id,
                bucket.label("bucket"),
                func.sum(usage_entries.c.quantity),
                func.sum(case((usage_entries.c.kind == "usage", 1), else_=-1)),
            )
            .where(
                usage_entries.c.customer_id == customer_id,
                usage_entries.c.period.in_(names),
                usage_entries.c.billed_at >= start_us,
                usage_entries.c.billed_at < end_us,
            )
            .group_by(usage_entries.c.unit_id, "bucket")
            .order_by("bucket", usage_entries.c.unit_id)
        ).all()
        for unit_id, number, quantity, entries in rows:
            unit = unit_by_id(connection, unit_id, ledger.cache)
            if unit.unit.aggregation is not Aggregation.MAX:
                points.append(SeriesPoint(anchor + int(number) * HOUR_US, unit.code, _bucket_value(unit, quantity, entries)))
    else:
        key = usage_daily.c.day if granularity == "day" else usage_daily.c.period
        rows = connection.execute(
            select(key, usage_daily.c.unit_id, func.sum(usage_daily.c.quantity), func.sum(usage_daily.c.entries))
            .where(usage_daily.c.customer_id == customer_id, usage_daily.c.period.in_(names))
            .group_by(key, usage_daily.c.unit_id)
            .order_by(key, usage_daily.c.unit_id)
        ).all()
        for label, unit_id, quantity, entries in rows:
            unit = unit_by_id(connection, unit_id, ledger.cache)
            if unit.unit.aggregation is Aggregation.MAX:
                continue
            if granularity == "day":
                start = to_micros(datetime.combine(date.fromisoformat(label), time.min, tzinfo=ledger.timezone))
            else:
                start = timeline.bounds(Period.parse(label))[0]
            if start_us <= start < end_us:
                points.append(SeriesPoint(start, unit.code, _bucket_value(unit, quantity, entries)))
    if peak_units:
        points = sorted(points + peaks, key=lambda point: (point.start_us, point.unit))
    return points


def _peak_series(connection: Connection, ledger: Ledger, customer_id: int, names: list[str], start_us: int, end_us: int, granularity: str) -> list[SeriesPoint]:
    """Per-bucket peaks of the customer's `max` units: hourly peaks in SQL, folded into days or months."""
    original, reversal = usage_entries.alias("original"), usage_entries.alias("reversal")
    max_units = select(units.c.id).where(units.c.aggregation == "max")
    hour = ((original.c.billed_at - start_us) // HOUR_US).label("hour")
    rows = connection.execute(
        select(original.c.unit_id, hour, func.max(original.c.quantity))
        .where(
            original.c.customer_id == customer_id,
            original.c.period.in_(names),
            original.c.unit_id.in_(max_units),
            original.c.kind == "usage",
            original.c.billed_at >= start_us,
            original.c.billed_at < end_us,
            ~select(reversal.c.id).where(reversal.c.corrects_id == original.c.id, reversal.c.kind == "reversal").exists(),
        )
        .group_by(original.c.unit_id, "hour")
    ).all()
    if not rows:
        return []
    timeline = ledger.timeline
    peaks: dict[tuple[int, int], int] = {}
    for unit_id, number, quantity in rows:
        instant = start_us + int(number) * HOUR_US
        if granularity == "day":
            bucket = to_micros(datetime.combine(date.fromisoformat(timeline.day_of(instant)), time.min, tzinfo=ledger.timezone))
        elif granularity == "month":
            bucket = timeline.bounds(timeline.period_of(instant))[0]
        else:
            bucket = instant
        peaks[(unit_id, bucket)] = max(peaks.get((unit_id, bucket), quantity), quantity)
    result = []
    for (unit_id, bucket), quantity in peaks.items():
        unit = unit_by_id(connection, unit_id, ledger.cache)
        result.append(SeriesPoint(max(bucket, start_us), unit.code, decode_quantity(int(quantity), unit.unit.decimals)))
    return result


def _bucket_value(unit: UnitRow, quantity, entries) -> Decimal:
    if unit.unit.aggregation is Aggregation.COUNT:
        return Decimal(int(entries))
    return decode_quantity(int(quantity), unit.unit.decimals)


def _range_summary(connection, ledger: Ledger, customer: CustomerRow, start_us: int, end_us: int, granularity: str | None) -> Summary:
    """A custom range: quantities of entries billed in [start, end), priced as one period of the plan in
    force at its start (an estimate; invoices are always per period)."""
    timeline = ledger.timeline
    periods = timeline.periods_between(start_us, end_us)
    rows = connection.execute(
        select(
            usage_entries.c.unit_id,
            func.sum(usage_entries.c.quantity),
            func.sum(case((usage_entries.c.kind == "usage", 1), else_=-1)),
            func.sum(case((usage_entries.c.kind == "reversal", 1), else_=0)),
        )
        .where(
            usage_entries.c.customer_id == customer.id,
            usage_entries.c.period.in_([str(p) for p in periods]),
            usage_entries.c.billed_at >= start_us,
            usage_entries.c.billed_at < end_us,
        )
        .group_by(usage_entries.c.unit_id)
    ).all()
    quantities = {}
    for unit_id, quantity, entries, reversals in rows:
        unit = unit_by_id(connection, unit_id, ledger.cache)
        quantities[unit_id] = PeriodQuantity(unit, _bucket_value(unit, quantity, entries), int(entries), int(reversals), Decimal(0))
    first = periods[0]
    subscription, version = plan_for_period(connection, customer.id, first, timeline.bounds(first)[0], ledger.cache)
    units = _unit_summaries(connection, ledger, customer, first, quantities, version.plan if version else None)
    series = _series(connection, ledger, customer.id, periods, start_us, end_us, granularity) if granularity else ()
    return Summary(
        customer=customer.external_id,
        name=customer.name,
        mode=customer.mode,
        currency=customer.currency,
        period=None,
        start_us=start_us,
        end_us=end_us,
        plan=subscription.plan_code if subscription else None,
        plan_version=version.version if version else None,
        units=units,
        base_fee=Decimal(0),
        usage_amount=sum((unit.amount for unit in units), Decimal(0)),
        balance=_balance(connection, customer),
        corrections=sum(unit.corrections for unit in units),
        granularity=granularity,
        series=tuple(series),
    )



# -- every customer's period ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CustomerPeriod(_PeriodAmounts):
    """One customer's period in the period report: usage per unit, priced as its invoice would be."""

    customer: str
    name: str
    mode: str
    currency: str
    plan: str | None
    units: tuple[tuple[str, Decimal, Decimal], ...]  # (unit code, quantity, amount) per charge of the plan
    base_fee: Decimal
    usage_amount: Decimal

    def to_json(self) -> dict:
        currency = self.currency
        return {
            "customer": self.customer,
            "name": self.name,
            "mode": self.mode,
            "currency": currency,
            "plan": self.plan,
            "units": [{"unit": code, "quantity": plain(quantity), "amount": money(amount, currency)} for code, quantity, amount in self.units],
            "base_fee": money(self.base_fee, currency),
            "usage_amount": money(self.usage_amount, currency),
            "total": money(self.total, currency),
            "due": money(self.due, currency),
        }


def period_report(ledger: Ledger, period: str | Period | None = None) -> list[CustomerPeriod]:
    """Every customer subscribed in a period with its usage priced, largest total first.

    This is the aggregation behind closing a period and the top-customers list, done in one round trip
    whatever the number of customers (store.queries.period_subscribers: the subscriptions in force with
    their customers, the plan versions, the period's rollup grouped by customer and unit in SQL); plan
    versions are parsed once per ledger, and each distinct base fee is prorated once.
    """
    timeline = ledger.timeline
    chosen = parse_period(period, ledger)
    start_us, _ = timeline.bounds(chosen)
    with ledger.read() as connection:
        read = period_subscribers(connection, chosen, start_us, ledger.cache)
        units = {unit_id: unit_by_id(connection, unit_id, ledger.cache) for unit_id in {row[1] for row in read.usage}}
    # Per unit: its code, which rollup column is its aggregated quantity, and how that column is scaled.
    column = {Aggregation.SUM: 2, Aggregation.COUNT: 3, Aggregation.MAX: 4}
    decoding = {
        unit_id: (row.code, column[row.unit.aggregation], 0 if row.unit.aggregation is Aggregation.COUNT else -row.unit.decimals)
        for unit_id, row in units.items()
    }
    measured: defaultdict[int, dict[str, Decimal]] = defaultdict(dict)
    for row in read.usage:
        code, index, scale = decoding[row[1]]
        value = Decimal(row[index])  # an integer (PostgreSQL: an integral numeric); never NULL in a group
        measured[row[0]][code] = value.scaleb(scale) if scale else value
    pricers: dict[tuple[int, str], tuple] = {}  # (plan version, currency) -> (unit code, pricer) per charge
    fees: dict[tuple, Decimal] = {}
    report = []
    for customer, subscription in read.customers.values():
        version = read.versions[subscription.plan_id]
        currency = customer.currency
        charges = pricers.get((version.id, currency))
        if charges is None:
            charges = pricers[(version.id, currency)] = tuple(
                (charge.unit, charge_pricer(charge, currency)) for charge in version.plan.charges
            )
        found = measured.get(customer.id, _NOTHING)
        priced = []
        usage_amount = _ZERO
        for code, price in charges:
            quantity = found.get(code, _ZERO)
            amount = price(quantity)
            usage_amount = _EXACT.add(usage_amount, amount)
            priced.append((code, quantity, amount))
        fee_key = (version.id, currency, subscription.starts_on, subscription.ends_on)
        fee = fees.get(fee_key)
        if fee is None:  # most subscriptions run through the whole period: one proration per plan version
            fee = fees[fee_key] = base_fee(version, subscription, chosen, currency)
        report.append(
            CustomerPeriod(
                customer=customer.external_id,
                name=customer.name,
                mode=customer.mode,
                currency=currency,
                plan=subscription.plan_code,
                units=tuple(priced),
                base_fee=fee,
                usage_amount=usage_amount,
            )
        )
    report.sort(key=lambda row: (-row.total, row.customer))
    return report


def top_customers(ledger: Ledger, period: str | Period | None = None, *, limit: int = 10) -> list[CustomerPeriod]:
    """The customers with the largest period totals (mixed currencies compare by amount only)."""
    return period_report(ledger, period)[:limit]
