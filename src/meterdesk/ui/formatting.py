"""How numbers, money and instants look on screen: exact Decimals formatted with Babel, never floats."""

from __future__ import annotations

import os
from datetime import datetime, tzinfo
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal
from PySide6.QtCore import QLocale

from meterdesk.domain.money import round_money
from meterdesk.domain.periods import format_timestamp, from_micros


NO_LOCALE = {"", "C", "POSIX"}


@lru_cache(maxsize=1)
def display_locale() -> Locale:
    """The locale for numbers: Qt's idea of the user's locale, else en_US. The C and POSIX locales say no
    locale was chosen (Babel 2.19 reads them as en_US_POSIX, which writes "€\xa017.00"): en_US too."""
    name = os.environ.get("METERDESK_LOCALE") or QLocale.system().name()
    if name.split(".")[0].upper() in NO_LOCALE:
        name = "en_US"
    try:
        locale = Locale.parse(name)
        locale.number_symbols  # noqa: B018 - a locale without number data is no use here
        return locale
    except (UnknownLocaleError, ValueError, TypeError, AttributeError):
        return Locale.parse("en_US")


def money_text(amount: Decimal | None, currency: str) -> str:
    """Rounded once to the currency's minor unit (ROUND_HALF_UP), then written the locale's way."""
    if amount is None:
        return ""
    return format_currency(round_money(amount, currency), currency, locale=display_locale(), currency_digits=True)


def exact_money_text(amount: Decimal, currency: str) -> str:
    """A balance or charge at full precision (1e-6), for tooltips."""
    return f"{format_decimal(amount, locale=display_locale(), decimal_quantization=False)} {currency}"


def quantity_text(value: Decimal | int | None) -> str:
    """A usage quantity with grouping and every significant digit (12,500.25)."""
    if value is None:
        return ""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = value.quantize(Decimal(1))
    return format_decimal(value, locale=display_locale(), decimal_quantization=False)


def local_time_text(instant_us: int, zone: tzinfo) -> str:
    """An instant in the ledger's billing time zone, to the second."""
    return from_micros(instant_us).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def utc_text(instant_us: int) -> str:
    return format_timestamp(from_micros(instant_us))


def zone_label(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


def now_local(zone: tzinfo) -> datetime:
    return datetime.now(zone)
