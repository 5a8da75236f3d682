"""Invoices: the preview of a period and closing it, which freezes the invoice for good."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from meterdesk.domain.errors import Conflict, InvalidInput
from meterdesk.domain.periods import Period
from meterdesk.domain.pricing import PriceLine, base_fee_line, charge_amount, usage_line
from meterdesk.services.audit import record_audit
from meterdesk.services.context import default_actor, now_us
from meterdesk.services.shapes import money, plain
from meterdesk.services.summary import period_quantities
from meterdesk.store.codec import decode_money, encode_money
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import CustomerRow, customer_by_external_id, customer_by_id, customer_from_row, plan_for_period
from meterdesk.store.schema import customers, invoice_lines, invoices, settlements, subscriptions


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    kind: str
    unit: str | None
    description: str
    quantity: Decimal
    amount: Decimal
    unit_price: Decimal | None = None
    tiers: tuple = ()
    id: int | None = None

    def to_json(self, currency: str) -> dict:
        shape = {
            "kind": self.kind,
            "unit": self.unit,
            "description": self.description,
            "quantity": plain(self.quantity),
            "amount": money(self.amount, currency),
            "unit_price": None if self.unit_price is None else plain(self.unit_price),
        }
        if self.tiers:
            shape["tiers"] = list(self.tiers)
        if self.id is not None:
            shape["id"] = self.id
        return shape


@dataclass(frozen=True, slots=True)
class Invoice:
    customer: str
    customer_name: str
    mode: str
    period: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    id: int | None = None  # set once the period is closed
    plan_version_id: int | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def closed(self) -> bool:
        return self.id is not None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "customer": self.customer,
            "period": self.period,
            "currency": self.currency,
            "closed": self.closed,
            "lines": [line.to_json(self.currency) for line in self.lines],
            "total": money(self.total, self.currency),
        }


def _tiers_json(line: PriceLine) -> tuple:
    return tuple(
        {
            "tier": t.index + 1,
            "up_to": None if t.up_to is None else plain(t.up_to),
            "quantity": plain(t.quantity),
            "unit_price": plain(t.unit_price),
            "flat_fee": plain(t.flat_fee),
            "amount": plain(t.amount),
        }
        for t in line.tiers
    )


def compute_invoice(connection: Connection, ledger: Ledger, customer: CustomerRow, period: Period) -> Invoice:
    """The lines a period would be invoiced with now: base fee, one line per charge, and a line for late
    usage and corrections where there are any. Each line is rounded once; the total is their sum."""
    start_us, _ = ledger.timeline.bounds(period)
    subscription, version = plan_for_period(connection, customer.id, period, start_us, ledger.cache)
    lines: list[InvoiceLine] = []
    if version is not None:
        plan = version.plan
        fee = base_fee_line(plan, period, subscription.starts_on, subscription.ends_on)
        lines.append(InvoiceLine(fee.kind, None, fee.description, fee.quantity, fee.amount))
        if not customer.prepaid:  # prepaid usage was paid from the balance as it was recorded
            quantities = period_quantities(connection, ledger, customer.id, [period])
            by_code = {q.unit.code: q for q in quantities.values()}
            for charge in plan.charges:
                measured = by_code.get(charge.unit)
                total = measured.quantity if measured else Decimal(0)
                adjusted = measured.adjusted if measured else Decimal(0)
                regular = total - adjusted
                line = usage_line(charge, regular, plan.currency)
                lines.append(InvoiceLine("usage", charge.unit, line.description, regular, line.amount, line.unit_price, _tiers_json(line)))
                if adjusted:
                    amount = charge_amount(charge, total, plan.currency) - line.amount
                    description = f"{charge.unit}: late usage and corrections ({plain(adjusted)}); period total {plain(total)}"
                    lines.append(InvoiceLine("correction", charge.unit, description, adjusted, amount))
    return Invoice(customer.external_id, customer.name, customer.mode, str(period), customer.currency, tuple(lines), None, version.id if version else None)


def stored_invoice(connection: Connection, customer: CustomerRow, period: Period) -> Invoice | None:
    row = connection.execute(
        select(invoices).where(invoices.c.customer_id == customer.id, invoices.c.period == str(period))
    ).first()
    if row is None:
        return None
    return _load_invoice(connection, row, customer)


def _load_invoice(connection: Connection, row, customer: CustomerRow) -> Invoice:
    lines = tuple(
        InvoiceLine(
            line.kind,
            line.unit_code,
            line.description,
            Decimal(line.quantity),
            decode_money(line.amount),
            Decimal(line.unit_price) if line.unit_price else None,
            tuple(json.loads(line.detail)) if line.detail else (),
            line.id,
        )
        for line in connection.execute(
            select(invoice_lines).where(invoice_lines.c.invoice_id == row.id).order_by(invoice_lines.c.position)
        )
    )
    return Invoice(customer.external_id, customer.name, customer.mode, row.period, row.currency, lines, row.id, row.plan_version_id)


def preview_invoice(ledger: Ledger, customer: str, period: str | Period) -> Invoice:
    """The invoice of a period: frozen if the period is closed for the customer, else as it stands now."""
    period = period if isinstance(period, Period) else Period.parse(period)
    with ledger.read() as connection:
        row = customer_by_external_id(connection, customer)
        return stored_invoice(connection, row, period) or compute_invoice(connection, ledger, row, period)


def invoice_by_id(connection: Connection, invoice_id: int) -> Invoice:
    row = connection.execute(select(invoices).where(invoices.c.id == invoice_id)).one()
    return _load_invoice(connection, row, customer_by_id(connection, row.customer_id))


@dataclass(frozen=True, slots=True)
class CloseProgress:
    done: int
    total: int
    customer: str


@dataclass
class CloseResult:
    period: str
    invoices: list[Invoice]
    already_closed: list[Invoice]
    cancelled: bool = False

    def to_json(self) -> dict:
        return {
            "period": self.period,
            "invoices": [
                {"id": i.id, "customer": i.customer, "total": money(i.total, i.currency), "currency": i.currency}
                for i in self.invoices + self.already_closed
            ],
            "closed_now": len(self.invoices),
            "already_closed": len(self.already_closed),
            **({"cancelled": True} if self.cancelled else {}),
        }


def close_period(
    ledger: Ledger,
    period: str | Period,
    *,
    customer: str | None = None,
    actor: str | None = None,
    progress: Callable[[CloseProgress], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> CloseResult:
    """Freeze the period's invoice for each customer subscribed in it (or one customer).

    One transaction per customer, holding the customer's lock, so usage recorded at the same moment lands
    either on the frozen invoice or, late, in the next open period — never in between. Closing again is a
    no-op that reports the invoices already frozen.
    """
    actor = actor or default_actor("cli")
    period = period if isinstance(period, Period) else Period.parse(period)
    timeline = ledger.timeline
    _, end_us = timeline.bounds(period)
    if now_us() < end_us:
        raise Conflict(f"period: {period} has not ended yet; close it on or after {period.next().first_day}")
    with ledger.read() as connection:
        if customer is not None:
            targets = [customer_by_external_id(connection, customer)]
        else:
            subscribed = select(subscriptions.c.customer_id).where(
                subscriptions.c.starts_on <= period.last_day.isoformat(),
                (subscriptions.c.ends_on.is_(None)) | (subscriptions.c.ends_on > period.first_day.isoformat()),
            )
            targets = [customer_from_row(r) for r in connection.execute(select(customers).where(customers.c.id.in_(subscribed)).order_by(customers.c.external_id))]
    result = CloseResult(str(period), [], [])
    for index, target in enumerate(targets):
        if cancelled and cancelled():
            result.cancelled = True
            break
        invoice, created = _close_one(ledger, target, period, actor)
        if invoice is not None:
            (result.invoices if created else result.already_closed).append(invoice)
        if progress:
            progress(CloseProgress(index + 1, len(targets), target.external_id))
    return result


def _close_one(ledger: Ledger, customer: CustomerRow, period: Period, actor: str) -> tuple[Invoice | None, bool]:
    with ledger.write() as connection:
        customer = customer_by_id(connection, customer.id, lock=True)
        existing = stored_invoice(connection, customer, period)
        if existing is not None:
            return existing, False
        invoice = compute_invoice(connection, ledger, customer, period)
        if invoice.plan_version_id is None and not invoice.lines:
            raise InvalidInput("customer", f"{customer.external_id!r} has no plan subscription in {period}; nothing to invoice")
        now = now_us()
        try:
            invoice_id = connection.execute(
                invoices.insert()
                .values(
                    customer_id=customer.id,
                    period=str(period),
                    currency=invoice.currency,
                    plan_version_id=invoice.plan_version_id,
                    total=encode_money(invoice.total),
                    created_at=now,
                    created_by=actor,
                )
                .returning(invoices.c.id)
            ).scalar_one()
        except IntegrityError:
            raise Conflict(f"period: {period} was closed for {customer.external_id!r} concurrently") from None
        connection.execute(
            invoice_lines.insert(),
            [
                {
                    "invoice_id": invoice_id,
                    "position": position,
                    "kind": line.kind,
                    "unit_code": line.unit,
                    "description": line.description,
                    "quantity": plain(line.quantity),
                    "unit_price": None if line.unit_price is None else plain(line.unit_price),
                    "amount": encode_money(line.amount),
                    "detail": json.dumps(list(line.tiers)) if line.tiers else None,
                }
                for position, line in enumerate(invoice.lines, start=1)
            ],
        )
        connection.execute(settlements.insert().values(invoice_id=invoice_id, state="pending", attempts=0, updated_at=now))
        record_audit(connection, actor, "period.close", f"customer:{customer.external_id}", period=str(period), invoice_id=invoice_id, total=str(invoice.total))
        return stored_invoice(connection, customer, period), True
