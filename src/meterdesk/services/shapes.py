"""Plain-text forms of exact values for JSON and display (SPEC section 4: decimals as strings)."""

from __future__ import annotations

from decimal import Decimal

from meterdesk.domain.money import round_money
from meterdesk.domain.periods import format_timestamp, from_micros


def plain(value: Decimal) -> str:
    """A decimal without exponent notation or trailing zeros: Decimal('12.500') -> '12.5'."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def money(value: Decimal, currency: str) -> str:
    """Money rounded once to the currency's minor unit, ROUND_HALF_UP: '12.50'."""
    return format(round_money(value, currency), "f")


def exact_money(value: Decimal) -> str:
    """Money at the ledger's full precision (1e-6), for balances and prepaid charges."""
    return format(value.quantize(Decimal("0.000001")), "f")


def timestamp(instant_us: int) -> str:
    return format_timestamp(from_micros(instant_us))
