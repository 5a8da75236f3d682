"""Read models for the desktop app: the customers overview and the preview of a correction.

The overview prices every customer's current period in a handful of queries (customers with balances,
subscriptions, the period's rollup, plan versions), whatever the number of customers; the preview tells
what a correction would change before it is written, with the same pricing the services bill with.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from meterdesk.domain.errors import Conflict, NotFound
from meterdesk.domain.periods import Period
from meterdesk.domain.pricing import charge_amount
from meterdesk.domain.units import Aggregation, validate_correction_amount
from meterdesk.services.context import now_us
from meterdesk.services.corrections import parse_entry_id
from meterdesk.services.entries import EntryRow, entries_query, entry_from_row
from meterdesk.services.summary import usage_summary
from meterdesk.store.codec import decode_money, decode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import (
    all_units,
    closed_periods,
    customer_by_external_id,
    period_quantity,
    plan_for_period,
    plan_version_in_force,
    unit_by_code,
)
from meterdesk.store.schema import customer_balances, customers, plans, subscriptions, usage_daily, usage_entries


@dataclass(frozen=True, slots=True)
class CustomerOverview:
    """One row of the customers list: who, on what plan, and how the current period stands."""

    id: str
    name: str
    email: str | None
    currency: str
    mode: str  # "invoice" | "prepaid"
    plan: str | None
    period: str
    usage_amount: Decimal  # the current period's usage, priced (rounded per charge)
    base_fee: Decimal
    balance: Decimal | None  # prepaid only
    credit_limit: Decimal

    @property
    def prepaid(self) -> bool:
        return self.mode == "prepaid"

    @property
    def negative(self) -> bool:
        return self.balance is not None and self.balance < 0

    @property
    def over_limit(self) -> bool:
        """Below -credit_limit: recording reports over_limit and the product may stop serving."""
        return self.balance is not None and self.balance < -self.credit_limit


def customers_overview(ledger: Ledger, *, period: str | Period | None = None) -> list[CustomerOverview]:
    """Every customer with its plan, the period's priced usage (default: the current period) and balance."""
    timeline = ledger.timeline
    chosen = Period.parse(period) if isinstance(period, str) else period or timeline.period_of(now_us())
    start_us, _ = timeline.bounds(chosen)
    with ledger.read() as connection:
        rows = connection.execute(
            select(customers, customer_balances.c.balance)
            .outerjoin(customer_balances, customer_balances.c.customer_id == customers.c.id)
            .order_by(customers.c.external_id)
        ).all()
        units = {row.id: row for row in all_units(connection)}
        subscribed = _subscriptions_in(connection, chosen)
        versions = {
            plan_id: plan_version_in_force(connection, plan_id, start_us, ledger.cache)
            for plan_id in {plan_id for plan_id, _, _, _ in subscribed.values()}
        }
        measured: dict[int, dict[int, Decimal]] = defaultdict(dict)
        for customer_id, unit_id, quantity, entries in connection.execute(
            select(usage_daily.c.customer_id, usage_daily.c.unit_id, func.sum(usage_daily.c.quantity), func.sum(usage_daily.c.entries))
            .where(usage_daily.c.period == str(chosen))
            .group_by(usage_daily.c.customer_id, usage_daily.c.unit_id)
        ):
            unit = units[unit_id]
            aggregation = unit.unit.aggregation
            if aggregation is Aggregation.COUNT:
                value = Decimal(int(entries or 0))
            elif aggregation is Aggregation.MAX:
                value = period_quantity(connection, customer_id, unit, chosen)
            else:
                value = decode_quantity(int(quantity or 0), unit.unit.decimals)
            measured[customer_id][unit_id] = value
    from meterdesk.domain.pricing import prorated_base_fee

    codes = {unit.code: unit_id for unit_id, unit in units.items()}
    result = []
    for row in rows:
        plan_id, plan_code, starts_on, ends_on = subscribed.get(row.id, (None, None, None, None))
        version = versions.get(plan_id)
        usage = fee = Decimal(0)
        if version is not None:
            plan = version.plan
            fee = prorated_base_fee(plan.base_fee, row.currency, chosen, starts_on, ends_on)
            for charge in plan.charges:
                quantity = measured[row.id].get(codes.get(charge.unit), Decimal(0))
                usage += charge_amount(charge, quantity, row.currency)
        result.append(
            CustomerOverview(
                id=row.external_id,
                name=row.name,
                email=row.email,
                currency=row.currency,
                mode=row.mode,
                plan=plan_code,
                period=str(chosen),
                usage_amount=usage,
                base_fee=fee,
                balance=decode_money(row.balance or 0) if row.mode == "prepaid" else None,
                credit_limit=decode_money(row.credit_limit),
            )
        )
    return result


def _subscriptions_in(connection, period: Period) -> dict[int, tuple[int, str, date, date | None]]:
    """customer id -> (plan id, plan code, starts_on, ends_on) of the latest-starting subscription overlapping the period."""
    found: dict[int, tuple[int, str, date, date | None]] = {}
    rows = connection.execute(
        select(subscriptions.c.customer_id, subscriptions.c.plan_id, plans.c.code, subscriptions.c.starts_on, subscriptions.c.ends_on)
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .where(
            subscriptions.c.starts_on <= period.last_day.isoformat(),
            subscriptions.c.ends_on.is_(None) | (subscriptions.c.ends_on > period.first_day.isoformat()),
        )
        .order_by(subscriptions.c.starts_on, subscriptions.c.id)
    )
    for customer_id, plan_id, code, starts_on, ends_on in rows:
        found[customer_id] = (plan_id, code, date.fromisoformat(starts_on), date.fromisoformat(ends_on) if ends_on else None)
    return found


# -- correction preview ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CorrectionPreview:
    """What correcting an entry to `new_amount` changes in the period it will be billed in."""

    entry: EntryRow
    new_amount: Decimal
    period: str  # the period the reversal and replacement are billed in
    late: bool  # the entry's own period is closed: the correction lands in a later, open one
    unit: str
    currency: str
    quantity_before: Decimal
    quantity_after: Decimal
    amount_before: Decimal
    amount_after: Decimal
    prepaid: bool

    @property
    def quantity_change(self) -> Decimal:
        return self.quantity_after - self.quantity_before

    @property
    def amount_change(self) -> Decimal:
        return self.amount_after - self.amount_before


def entry_by_id(ledger: Ledger, entry_id) -> EntryRow:
    entry_id = parse_entry_id(entry_id)
    with ledger.read() as connection:
        row = connection.execute(entries_query().where(usage_entries.c.id == entry_id)).first()
    if row is None:
        raise NotFound(f"entry_id: no ledger entry {entry_id}")
    return entry_from_row(row)


def correction_target(ledger: Ledger, entry_id) -> EntryRow:
    """The entry to correct; Conflict (naming the replacement to correct instead) when it cannot be."""
    entry = entry_by_id(ledger, entry_id)
    with ledger.read() as connection:
        done = connection.execute(
            select(usage_entries.c.id, usage_entries.c.kind).where(usage_entries.c.corrects_id == entry.id)
        ).all()
    if entry.kind == "reversal":
        raise Conflict(f"entry_id: entry {entry.id} is a reversal; correct the entry it reverses instead")
    if done:
        replacement = next((row.id for row in done if row.kind == "usage"), None)
        hint = f"correct its replacement, entry {replacement}" if replacement else "it was corrected to 0"
        raise Conflict(f"entry_id: entry {entry.id} was already corrected; {hint}")
    return entry


def preview_correction(ledger: Ledger, entry_id, new_amount) -> CorrectionPreview:
    """The period quantity and amount of the entry's unit before and after correcting it to `new_amount`.

    Computed from usage_summary and the plan's pricing, as the correction itself would be billed; nothing
    is written. Raises like correct_entry would (unknown entry, a reversal, already corrected, bad amount).
    """
    entry = correction_target(ledger, entry_id)
    with ledger.read() as connection:
        customer = customer_by_external_id(connection, entry.customer)
        unit = unit_by_code(connection, entry.unit, ledger.cache)
        amount = validate_correction_amount(unit.unit, new_amount)
        # Placed like the writer places it: the period of occurred_at, or the next open one when closed.
        own = ledger.timeline.period_of(entry.occurred_at_us)
        closed = closed_periods(connection, customer.id)
        billed = own
        while str(billed) in closed:
            billed = billed.next()
        start_us, _ = ledger.timeline.bounds(billed)
        _, version = plan_for_period(connection, customer.id, billed, start_us, ledger.cache)
        others_peak = None
        if unit.unit.aggregation is Aggregation.MAX:
            others_peak = _peak_without(connection, customer.id, unit, billed, entry.id)
    summary = usage_summary(ledger, entry.customer, period=billed)
    line = next((u for u in summary.units if u.unit == entry.unit), None)
    before = line.quantity if line else Decimal(0)
    old = abs(entry.amount)
    aggregation = unit.unit.aggregation
    if aggregation is Aggregation.COUNT:
        after = before - 1 + (1 if amount else 0)  # the reversal counts -1, a replacement +1
    elif aggregation is Aggregation.MAX:
        after = max(others_peak or Decimal(0), amount)
    else:
        after = before - old + amount
    charge = version.plan.charge_for(entry.unit) if version else None
    amount_before = line.amount if line else Decimal(0)
    amount_after = charge_amount(charge, after, customer.currency) if charge else Decimal(0)
    return CorrectionPreview(
        entry=entry,
        new_amount=amount,
        period=str(billed),
        late=billed != own,
        unit=entry.unit,
        currency=customer.currency,
        quantity_before=before,
        quantity_after=after,
        amount_before=amount_before,
        amount_after=amount_after,
        prepaid=customer.prepaid,
    )


def _peak_without(connection, customer_id: int, unit, period: Period, excluded_id: int) -> Decimal:
    """The peak of a `max` unit's period without one entry (and without entries already reversed)."""
    reversal = usage_entries.alias("reversal")
    value = connection.execute(
        select(func.max(usage_entries.c.quantity)).where(
            usage_entries.c.customer_id == customer_id,
            usage_entries.c.unit_id == unit.id,
            usage_entries.c.period == str(period),
            usage_entries.c.kind == "usage",
            usage_entries.c.id != excluded_id,
            ~select(reversal.c.id).where(reversal.c.corrects_id == usage_entries.c.id, reversal.c.kind == "reversal").exists(),
        )
    ).scalar()
    return decode_quantity(value, unit.unit.decimals)


def customer_periods(ledger: Ledger, customer: str) -> list[str]:
    """Periods with usage for a customer, newest first, always including the current one."""
    current = str(ledger.timeline.period_of(now_us()))
    with ledger.read() as connection:
        row = customer_by_external_id(connection, customer)
        found = set(
            connection.execute(select(usage_daily.c.period).where(usage_daily.c.customer_id == row.id).distinct()).scalars()
        )
    found.add(current)
    return sorted(found, reverse=True)


# -- which ledger is at a URL -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LedgerProbe:
    """What a settings dialog needs to know about a URL before switching to it."""

    url: str
    name: str
    exists: bool  # a meterdesk schema is there already (its billing time zone is then fixed)
    timezone: str | None


def probe_ledger(url: str | None) -> LedgerProbe:
    """Connect to `url` without creating or migrating anything; Unavailable when it cannot be reached."""
    from pathlib import Path

    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from meterdesk.domain.errors import Unavailable
    from meterdesk.store.engine import describe_url, make_engine, resolve_url
    from meterdesk.store.schema import ledger_settings

    resolved = resolve_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        return LedgerProbe(resolved, describe_url(resolved), False, None)
    engine = make_engine(resolved)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(ledger_settings.name):
                return LedgerProbe(resolved, describe_url(resolved), False, None)
            zone = connection.execute(
                select(ledger_settings.c.value).where(ledger_settings.c.key == "billing_timezone")
            ).scalar()
            return LedgerProbe(resolved, describe_url(resolved), True, zone or "UTC")
    except DBAPIError as error:
        first = (str(error.orig) or type(error.orig).__name__).strip().splitlines()[0] if error.orig else str(error)
        raise Unavailable(f"cannot connect to {describe_url(resolved)}: {first}") from error
    finally:
        engine.dispose()
