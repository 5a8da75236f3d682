"""A customer's standing now: prepaid balance against its credit limit, and what is left of each unit's
included quantity in the current period (the usage API's `GET /v1/customers/{id}/balance`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from meterdesk.services.catalog import get_customer
from meterdesk.services.shapes import money, plain
from meterdesk.services.summary import Summary, usage_summary
from meterdesk.store.codec import decode_money
from meterdesk.store.engine import Ledger


@dataclass(frozen=True, slots=True)
class CustomerBalance:
    summary: Summary
    credit_limit: Decimal

    @property
    def over_limit(self) -> bool:
        balance = self.summary.balance
        return balance is not None and balance < -self.credit_limit

    def to_json(self) -> dict:
        s = self.summary
        prepaid = s.mode == "prepaid"
        return {
            "customer": s.customer,
            "currency": s.currency,
            "mode": s.mode,
            "balance": money(s.balance, s.currency) if prepaid and s.balance is not None else None,
            "credit_limit": money(self.credit_limit, s.currency) if prepaid else None,
            "over_limit": self.over_limit,
            "period": s.period,
            "units": [
                {
                    "unit": unit.unit,
                    "quantity": plain(unit.quantity),
                    "included": plain(unit.included),
                    "remaining_included": plain(max(Decimal(0), unit.included - unit.quantity)),
                }
                for unit in s.units
            ],
        }


def customer_balance(ledger: Ledger, customer: str) -> CustomerBalance:
    """NotFound for an unknown customer."""
    info = get_customer(ledger, customer)
    return CustomerBalance(usage_summary(ledger, customer), decode_money(info.customer.credit_limit))
