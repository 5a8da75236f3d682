"""Use cases for what usage is priced by: units, plans (versioned) and customers with their subscriptions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError

from meterdesk.domain.errors import Conflict, InvalidInput, NotFound
from meterdesk.domain.money import parse_decimal
from meterdesk.domain.periods import Period, to_micros
from meterdesk.domain.plans import Plan, plan_from_dict, plan_to_dict
from meterdesk.domain.units import Aggregation, Unit, validate_id
from meterdesk.services.audit import record_audit
from meterdesk.services.context import default_actor, now_us
from meterdesk.services.shapes import money
from meterdesk.store.codec import decode_money, encode_money
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import (
    CustomerRow,
    UnitRow,
    all_units,
    customer_by_external_id,
    plan_version_by_id,
    subscriptions_of,
    unit_by_code,
)
from meterdesk.store.schema import (
    customer_balances,
    customers,
    invoices,
    plan_versions,
    plans,
    subscriptions,
    units,
    usage_entries,
)

OPEN_START = date(1970, 1, 1)
"""A subscription given no start date covers every period from the beginning."""
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_NAME = 200


# -- units ----------------------------------------------------------------------------------------

def unit_json(row: UnitRow) -> dict:
    unit = row.unit
    return {"code": unit.code, "name": unit.name, "decimals": unit.decimals, "aggregation": str(unit.aggregation)}


def add_unit(ledger: Ledger, code: str, name: str, decimals: int = 0, aggregation: str = "sum", *, actor: str | None = None) -> UnitRow:
    actor = actor or default_actor("cli")
    if isinstance(decimals, str):
        if not decimals.strip().isdigit():
            raise InvalidInput("decimals", f"must be a whole number from 0 to 6, not {decimals!r}")
        decimals = int(decimals)
    try:
        aggregation = Aggregation(aggregation)
    except ValueError:
        raise InvalidInput("aggregation", f"must be sum, count or max, not {aggregation!r}") from None
    unit = Unit(code, (name or "").strip(), decimals, aggregation)
    with ledger.write() as connection:
        if connection.execute(select(units.c.id).where(units.c.code == unit.code)).first():
            raise Conflict(f"unit: {unit.code!r} already exists; units cannot be redefined")
        unit_id = connection.execute(
            units.insert()
            .values(code=unit.code, name=unit.name, decimals=unit.decimals, aggregation=str(unit.aggregation), created_at=now_us(), created_by=actor)
            .returning(units.c.id)
        ).scalar_one()
        record_audit(connection, actor, "unit.add", f"unit:{unit.code}", name=unit.name, decimals=unit.decimals, aggregation=str(unit.aggregation))
    return UnitRow(unit_id, unit)


def list_units(ledger: Ledger) -> list[UnitRow]:
    with ledger.read() as connection:
        return all_units(connection)


# -- plans ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlanInfo:
    id: int
    version_id: int
    version: int
    effective_from: int
    plan: Plan
    versions: int
    in_use: bool

    def to_json(self) -> dict:
        shape = plan_to_dict(self.plan)
        shape.update(version=self.version, versions=self.versions, in_use=self.in_use)
        return shape


def _plan_used(connection, plan_id: int) -> bool:
    """A plan is in use once an invoice or a prepaid charge was priced by it."""
    version_ids = select(plan_versions.c.id).where(plan_versions.c.plan_id == plan_id)
    if connection.execute(select(exists().where(invoices.c.plan_version_id.in_(version_ids)))).scalar():
        return True
    subscribed = select(subscriptions.c.customer_id).where(subscriptions.c.plan_id == plan_id)
    return bool(
        connection.execute(
            select(exists().where(usage_entries.c.customer_id.in_(subscribed), usage_entries.c.charged.is_not(None)))
        ).scalar()
    )


def save_plan(ledger: Ledger, plan: Plan | dict, *, actor: str | None = None) -> PlanInfo:
    """Create a plan, or a new version of it. A plan in use is never changed in place: the new version
    prices periods from the next one on; an unused plan's new version applies at once."""
    actor = actor or default_actor("cli")
    plan = plan if isinstance(plan, Plan) else plan_from_dict(plan)
    with ledger.write() as connection:
        for index, charge in enumerate(plan.charges):
            try:
                unit_by_code(connection, charge.unit)
            except NotFound:
                raise InvalidInput(f"charges[{index}].unit", f"unknown unit {charge.unit!r}; add it first with `meterdesk unit add`") from None
        existing = connection.execute(select(plans).where(plans.c.code == plan.code)).first()
        now = now_us()
        if existing is None:
            plan_id = connection.execute(
                plans.insert().values(code=plan.code, name=plan.name, currency=plan.currency, created_at=now, created_by=actor).returning(plans.c.id)
            ).scalar_one()
            version, effective_from = 1, 0
        else:
            plan_id = existing.id
            if existing.currency != plan.currency:
                raise InvalidInput("currency", f"plan {plan.code!r} is priced in {existing.currency}; a new version cannot change its currency")
            latest = connection.execute(
                select(plan_versions).where(plan_versions.c.plan_id == plan_id).order_by(plan_versions.c.version.desc()).limit(1)
            ).one()
            if plan_from_dict(json.loads(latest.definition)) == plan:
                return _plan_info(connection, plan_id, ledger)
            version = latest.version + 1
            if _plan_used(connection, plan_id):
                timeline = ledger.timeline
                effective_from = timeline.bounds(timeline.period_of(now).next())[0]
            else:
                effective_from = 0
            connection.execute(update(plans).where(plans.c.id == plan_id).values(name=plan.name))
        connection.execute(
            plan_versions.insert().values(
                plan_id=plan_id,
                version=version,
                effective_from=effective_from,
                definition=json.dumps(plan_to_dict(plan), sort_keys=True),
                created_at=now,
                created_by=actor,
            )
        )
        record_audit(connection, actor, "plan.save", f"plan:{plan.code}", version=version, effective_from=effective_from)
        return _plan_info(connection, plan_id, ledger)


def _plan_info(connection, plan_id: int, ledger: Ledger) -> PlanInfo:
    """The plan as last saved (its newest version) and how many versions it has."""
    newest_id, count = connection.execute(
        select(func.max(plan_versions.c.id), func.count()).where(plan_versions.c.plan_id == plan_id)
    ).one()
    newest = plan_version_by_id(connection, newest_id, ledger.cache)
    return PlanInfo(plan_id, newest.id, newest.version, newest.effective_from, newest.plan, count, _plan_used(connection, plan_id))


def list_plans(ledger: Ledger) -> list[PlanInfo]:
    with ledger.read() as connection:
        ids = connection.execute(select(plans.c.id).order_by(plans.c.code)).scalars().all()
        return [_plan_info(connection, plan_id, ledger) for plan_id in ids]


def get_plan(ledger: Ledger, code: str) -> PlanInfo:
    with ledger.read() as connection:
        plan_id = connection.execute(select(plans.c.id).where(plans.c.code == code)).scalar()
        if plan_id is None:
            raise NotFound(f"plan: unknown plan {code!r}")
        return _plan_info(connection, plan_id, ledger)


# -- customers ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CustomerInfo:
    customer: CustomerRow
    plan_code: str | None
    starts_on: date | None
    ends_on: date | None
    balance: Decimal | None  # prepaid only

    def to_json(self) -> dict:
        c = self.customer
        return {
            "id": c.external_id,
            "name": c.name,
            "email": c.email,
            "currency": c.currency,
            "mode": c.mode,
            "plan": self.plan_code,
            "start": None if self.starts_on in (None, OPEN_START) else self.starts_on.isoformat(),
            "end": self.ends_on.isoformat() if self.ends_on else None,
            "credit_limit": money(decode_money(c.credit_limit), c.currency),
            "balance": None if self.balance is None else money(self.balance, c.currency),
            "stripe_customer_id": c.stripe_customer_id,
        }


def validate_customer_id(value: str, field: str = "id") -> str:
    """A customer id (SPEC 2 "Ids"); `field` names it in the error ("customer" where usage refers to one)."""
    return validate_id(value, field)


def validate_name(value: str, field: str = "name") -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(field, "is required")
    if len(value) > MAX_NAME:
        raise InvalidInput(field, f"is longer than {MAX_NAME} characters")
    return value


def validate_email(value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if not EMAIL_RE.match(value) or len(value) > 320:
        raise InvalidInput("email", f"{value!r} is not an e-mail address")
    return value


def parse_credit_limit(value) -> int:
    if value is None or value == "":
        return 0
    return encode_money(parse_decimal(value, "credit_limit", max_places=6, minimum=Decimal(0), maximum=Decimal(10) ** 15))


def parse_date(value, field: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(field, f"{value!r} is not a date (YYYY-MM-DD)") from None


def _plan_row(connection, code: str):
    row = connection.execute(select(plans).where(plans.c.code == code)).first()
    if row is None:
        raise NotFound(f"plan: unknown plan {code!r}")
    return row


def add_customer(
    ledger: Ledger,
    customer_id: str,
    name: str,
    plan: str,
    *,
    email: str | None = None,
    prepaid: bool = False,
    credit_limit=None,
    start=None,
    actor: str | None = None,
) -> CustomerInfo:
    actor = actor or default_actor("cli")
    customer_id = validate_customer_id(customer_id)
    name = validate_name(name)
    email = validate_email(email)
    limit = parse_credit_limit(credit_limit)
    starts_on = parse_date(start, "start") or OPEN_START
    with ledger.write() as connection:
        plan_row = _plan_row(connection, plan)
        if connection.execute(select(customers.c.id).where(customers.c.external_id == customer_id)).first():
            raise Conflict(f"id: customer {customer_id!r} already exists")
        now = now_us()
        try:
            new_id = connection.execute(
                customers.insert()
                .values(
                    external_id=customer_id,
                    name=name,
                    email=email,
                    currency=plan_row.currency,
                    mode="prepaid" if prepaid else "invoice",
                    credit_limit=limit,
                    created_at=now,
                    created_by=actor,
                )
                .returning(customers.c.id)
            ).scalar_one()
        except IntegrityError:
            raise Conflict(f"id: customer {customer_id!r} already exists") from None
        connection.execute(
            subscriptions.insert().values(
                customer_id=new_id, plan_id=plan_row.id, starts_on=starts_on.isoformat(), created_at=now, created_by=actor
            )
        )
        connection.execute(customer_balances.insert().values(customer_id=new_id, granted=0, charged=0, balance=0))
        record_audit(connection, actor, "customer.add", f"customer:{customer_id}", plan=plan, prepaid=prepaid, start=starts_on.isoformat())
        return _customer_info(connection, customer_by_external_id(connection, customer_id))


def update_customer(
    ledger: Ledger,
    customer_id: str,
    *,
    name: str | None = None,
    email: str | None = None,
    credit_limit=None,
    actor: str | None = None,
) -> CustomerInfo:
    """Change a customer's name, e-mail or credit limit (audited; the ledger itself is untouched)."""
    actor = actor or default_actor("cli")
    values = {}
    if name is not None:
        values["name"] = validate_name(name)
    if email is not None:
        values["email"] = validate_email(email)
    if credit_limit is not None:
        values["credit_limit"] = parse_credit_limit(credit_limit)
    with ledger.write() as connection:
        customer = customer_by_external_id(connection, customer_id, lock=True)
        if values:
            connection.execute(update(customers).where(customers.c.id == customer.id).values(**values))
            record_audit(connection, actor, "customer.update", f"customer:{customer_id}", **values)
        return _customer_info(connection, customer_by_external_id(connection, customer_id))


def assign_plan(ledger: Ledger, customer_id: str, plan: str, *, start=None, actor: str | None = None) -> CustomerInfo:
    """Move a customer to another plan (same currency) from `start`, by default the next period."""
    actor = actor or default_actor("cli")
    with ledger.write() as connection:
        customer = customer_by_external_id(connection, customer_id, lock=True)
        plan_row = _plan_row(connection, plan)
        if plan_row.currency != customer.currency:
            raise InvalidInput("plan", f"plan {plan!r} is priced in {plan_row.currency}; customer {customer_id!r} is billed in {customer.currency}")
        timeline = ledger.timeline
        starts_on = parse_date(start, "start") or timeline.period_of(now_us()).next().first_day
        current = subscriptions_of(connection, customer.id)
        for subscription in current:
            if subscription.ends_on is None or subscription.ends_on > starts_on:
                if subscription.starts_on >= starts_on:
                    raise Conflict(f"start: customer {customer_id!r} already has a plan starting {subscription.starts_on}")
                connection.execute(update(subscriptions).where(subscriptions.c.id == subscription.id).values(ends_on=starts_on.isoformat()))
        connection.execute(
            subscriptions.insert().values(customer_id=customer.id, plan_id=plan_row.id, starts_on=starts_on.isoformat(), created_at=now_us(), created_by=actor)
        )
        record_audit(connection, actor, "customer.assign_plan", f"customer:{customer_id}", plan=plan, start=starts_on.isoformat())
        return _customer_info(connection, customer)


def _customer_info(connection, customer: CustomerRow) -> CustomerInfo:
    subscription_list = subscriptions_of(connection, customer.id)
    today = date.today()
    current = [s for s in subscription_list if s.starts_on <= today and (s.ends_on is None or s.ends_on > today)]
    shown = current[-1] if current else (subscription_list[-1] if subscription_list else None)
    balance = None
    if customer.prepaid:
        balance = decode_money(
            connection.execute(select(customer_balances.c.balance).where(customer_balances.c.customer_id == customer.id)).scalar()
        )
    return CustomerInfo(
        customer,
        shown.plan_code if shown else None,
        shown.starts_on if shown else None,
        shown.ends_on if shown else None,
        balance,
    )


def get_customer(ledger: Ledger, customer_id: str) -> CustomerInfo:
    with ledger.read() as connection:
        return _customer_info(connection, customer_by_external_id(connection, customer_id))


def list_customers(ledger: Ledger) -> list[CustomerInfo]:
    from meterdesk.store.queries import customer_from_row

    with ledger.read() as connection:
        rows = connection.execute(select(customers).order_by(customers.c.external_id)).all()
        return [_customer_info(connection, customer_from_row(row)) for row in rows]


def period_start_us(ledger: Ledger, period: Period) -> int:
    return to_micros(period.start(ledger.timezone))
