"""Prepaid credit grants (top-ups): idempotent by request id, raising the balance in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, update

from meterdesk.domain.errors import Conflict, InvalidInput
from meterdesk.domain.money import parse_decimal
from meterdesk.domain.units import validate_request_id
from meterdesk.services.audit import record_audit
from meterdesk.services.context import default_actor, now_us
from meterdesk.services.shapes import exact_money, money
from meterdesk.services.recording import parse_occurred_at, validate_note, validate_source
from meterdesk.store.writer import dialect_insert
from meterdesk.store.codec import decode_money, encode_money
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import customer_by_external_id
from meterdesk.store.schema import credit_grants, customer_balances


@dataclass(frozen=True, slots=True)
class GrantResult:
    grant_id: int
    duplicate: bool
    amount: Decimal
    balance: Decimal
    currency: str

    def to_json(self) -> dict:
        return {
            "grant_id": self.grant_id,
            "duplicate": self.duplicate,
            "amount": money(self.amount, self.currency),
            "balance": money(self.balance, self.currency),
            "balance_exact": exact_money(self.balance),
            "currency": self.currency,
        }


def grant_credits(
    ledger: Ledger,
    customer: str,
    amount,
    request_id: str,
    *,
    note: str | None = None,
    granted_at=None,
    source: str = "cli",
    actor: str | None = None,
) -> GrantResult:
    """Raise a prepaid balance, once per request id. `granted_at` (default now) dates the top-up on the
    balance's time line, e.g. when the payment arrived; it may not lie in the future."""
    source = validate_source(source)
    actor = actor or default_actor(source)
    request_id = validate_request_id(request_id)
    note = validate_note(note)
    value = parse_decimal(amount, "amount", max_places=6, minimum=Decimal(0), exclusive_minimum=True, maximum=Decimal(10) ** 15)
    micro = encode_money(value)
    now = now_us()
    granted = parse_occurred_at(granted_at, now, "granted_at", ledger.timezone)
    with ledger.write() as connection:
        row = customer_by_external_id(connection, customer, lock=True)
        if not row.prepaid:
            raise InvalidInput("customer", f"{customer!r} is invoiced at period close (postpaid); credits apply to prepaid customers")
        grant_id = connection.execute(
            dialect_insert(connection, credit_grants)
            .values(
                customer_id=row.id, amount=micro, request_id=request_id, recorded_at=now,
                granted_at=now if granted is None else granted, source=source, actor=actor, note=note,
            )
            .on_conflict_do_nothing(index_elements=["customer_id", "request_id"])
            .returning(credit_grants.c.id)
        ).scalar()
        if grant_id is None:
            stored = connection.execute(
                select(credit_grants.c.id, credit_grants.c.amount).where(
                    credit_grants.c.customer_id == row.id, credit_grants.c.request_id == request_id
                )
            ).one()
            if stored.amount != micro:
                raise Conflict(
                    f"request_id: {request_id!r} already granted {money(decode_money(stored.amount), row.currency)} "
                    f"{row.currency} to {customer!r}; use a new request id for a new grant"
                )
            balance = connection.execute(select(customer_balances.c.balance).where(customer_balances.c.customer_id == row.id)).scalar_one()
            return GrantResult(stored.id, True, value, decode_money(balance), row.currency)
        balance = connection.execute(
            update(customer_balances)
            .where(customer_balances.c.customer_id == row.id)
            .values(granted=customer_balances.c.granted + micro, balance=customer_balances.c.balance + micro)
            .returning(customer_balances.c.balance)
        ).scalar_one()
        record_audit(connection, actor, "credits.grant", f"customer:{customer}", amount=str(value), request_id=request_id)
        return GrantResult(grant_id, False, value, decode_money(balance), row.currency)
