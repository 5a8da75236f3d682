"""How exact values are encoded in the ledger's integer columns (see store/schema.py)."""

from __future__ import annotations

from decimal import Decimal

from meterdesk.store.schema import MONEY_SCALE

def encode_quantity(amount: Decimal, decimals: int) -> int:
    """A usage amount as an integer scaled by its unit's decimals; the amount is already validated."""
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than {decimals} decimal places")
    return int(scaled)


def decode_quantity(value: int | None, decimals: int) -> Decimal:
    return Decimal(value or 0).scaleb(-decimals) if decimals else Decimal(value or 0)


def encode_money(amount: Decimal) -> int:
    """Money as integer micro-units; the amount must already be exact to 1e-6."""
    scaled = amount * MONEY_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} is not exact to 1e-6")
    return int(scaled)


def decode_money(value: int | None) -> Decimal:
    return Decimal(value or 0).scaleb(-6)
