"""A usage file's plain amounts ("1500", "2.25") as integers scaled by the unit's decimals, read without the
general parser: shared by the general import path (usage.py) and the fast lane (bulk_import.py)."""

from __future__ import annotations

import re

from meterdesk.domain.units import MAX_AMOUNT, MAX_SCALED

_PLAIN_AMOUNT = re.compile(r"(\d{1,16})(?:\.(\d{1,6}))?")
_MAX_SCALED = [min(int(MAX_AMOUNT) * 10**places, MAX_SCALED) for places in range(7)]  # also the exact range


def _plain_quantity(value, decimals: int) -> int | None:
    """A plain positive amount as an integer scaled by `decimals`; None when the general parser must decide."""
    if type(value) is not str or not (match := _PLAIN_AMOUNT.fullmatch(value)):
        return None
    whole, fraction = match[1], match[2] or ""
    if fraction[decimals:].strip("0"):
        return None  # more places than the unit allows: the general parser words the error
    quantity = int(whole) * 10**decimals + (int(fraction[:decimals].ljust(decimals, "0")) if decimals else 0)
    return quantity if 0 < quantity <= _MAX_SCALED[decimals] else None
