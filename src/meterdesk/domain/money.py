"""Exact money: ISO 4217 currencies, decimal parsing, rounding to minor units and the Money value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from types import MappingProxyType

from meterdesk.domain.errors import InvalidInput, quote_input

# Active ISO 4217 codes with their minor-unit exponent (SIX list one, published 2024-06-25, plus XCG,
# the Caribbean guilder introduced in 2025; ANG stays while it is being phased out). Codes whose
# minor unit is "N.A." (gold, SDR, bond units, XTS, XXX) are left out: nothing can be billed in them.
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {
        "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2,
        "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2,
        "BOB": 2, "BOV": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2,
        "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4, "CLP": 0, "CNY": 2, "COP": 2, "COU": 2,
        "CRC": 2, "CUC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2,
        "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2,
        "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2,
        "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0,
        "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2,
        "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2,
        "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2, "MWK": 2, "MXN": 2,
        "MXV": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2,
        "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2,
        "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2,
        "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2,
        "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2,
        "TZS": 2, "UAH": 2, "UGX": 0, "USD": 2, "USN": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2,
        "VED": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0,
        "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
    }
)  # fmt: skip

#: A prepaid balance is kept exact to this fraction of the currency unit (SPEC: at least 1e-6).
BALANCE_QUANTUM = Decimal("0.000001")
_BALANCE_PLACES = 6

# Every number entering meterdesk has at most this many digits on either side of the point. Nothing real
# comes near it (usage stops at 10^15, prices at 12 places); it keeps exact arithmetic bounded, so the
# contexts below can be exact by construction.
_MAX_DIGITS_EACH_SIDE = 40

# Arithmetic on money and quantities must be exact: a precision far above any bounded input, and Inexact
# trapped so a silent rounding could never slip into a sum or product; it would raise instead.
EXACT_CONTEXT = Context(
    prec=400,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)
# Rounding to a quantum is inexact on purpose, so this one does not trap Inexact; the mode is always
# named explicitly at the call.
ROUNDING_CONTEXT = Context(prec=400, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])

_CURRENCY_CODE_RE = re.compile(r"[A-Z]{3}")
# ASCII digits only: Decimal() itself would also take "1_000", "١٢" (Arabic-Indic digits) and "Infinity".
_DECIMAL_TEXT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE_TEXT_RE = re.compile(r"[+-]?(?:inf|infinity|s?nan[0-9]*)", re.IGNORECASE)


class CurrencyMismatch(InvalidInput):
    """Arithmetic or comparison between amounts of two different currencies."""


def validate_currency(code: object) -> str:
    """Return the upper-case ISO 4217 code for `code` ("eur" is accepted as "EUR")."""
    if not isinstance(code, str):
        raise InvalidInput("currency", f"must be a three-letter ISO 4217 code such as EUR, not {_type_name(code)}")
    normalised = code.strip().upper()
    if not _CURRENCY_CODE_RE.fullmatch(normalised):
        raise InvalidInput("currency", f"must be a three-letter ISO 4217 code such as EUR; got {quote_input(code)}")
    if normalised not in CURRENCY_EXPONENTS:
        raise InvalidInput("currency", f"is not a known ISO 4217 currency: {quote_input(code)}")
    return normalised


def currency_exponent(code: str) -> int:
    """Number of decimal places of the currency's minor unit (EUR 2, JPY 0, BHD 3)."""
    return CURRENCY_EXPONENTS[validate_currency(code)]


def parse_decimal(
    value: object,
    field: str,
    *,
    max_places: int | None = None,
    minimum: Decimal | None = None,
    exclusive_minimum: bool = False,
    maximum: Decimal | None = None,
) -> Decimal:
    """Turn user input (str, int or Decimal) into a finite Decimal, or raise InvalidInput naming `field`.

    Floats and bools are refused: a binary float cannot hold 0.10 exactly, and True is not a quantity.
    Surrounding whitespace is ignored, exponent notation is accepted when the value is finite, -0 becomes 0,
    a positive exponent is written out ("1e3" becomes 1000) and zeros beyond `max_places` are dropped
    ("5.000" with max_places=0 becomes 5); places within the limit are kept as given ("12.50" stays 12.50).
    """
    number = _to_decimal(value, field)
    if number.adjusted() >= _MAX_DIGITS_EACH_SIDE:
        raise InvalidInput(field, f"is too large: {quote_input(value)}")
    places = decimal_places(number)
    if max_places is not None and places > max_places:
        raise InvalidInput(field, f"has {_places_text(places)}; at most {max_places} allowed")
    if places > _MAX_DIGITS_EACH_SIDE:
        raise InvalidInput(field, f"has too many decimal places (more than {_MAX_DIGITS_EACH_SIDE})")
    _check_bounds(number, field, minimum, exclusive_minimum, maximum)
    return _plain(number, max_places)


def decimal_places(value: Decimal) -> int:
    """Significant decimal places of `value`: trailing zeros do not count ("5.000" has 0, "0.10" has 1)."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0 or value.is_zero():
        return 0
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros)


def format_decimal(value: Decimal) -> str:
    """Plain decimal text without exponent notation, as meterdesk writes numbers in JSON ("12.50", "0.000001")."""
    require_decimal(value, "value")
    if value.is_zero():
        value = value.copy_abs()
    return format(value, "f")


def require_decimal(value: object, name: str) -> None:
    """TypeError unless `value` is a Decimal: money and quantities never travel as floats or ints."""
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {_type_name(value)}")


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, ROUND_HALF_UP (0.125 EUR -> 0.13, 2.5 JPY -> 3)."""
    # Every invoice line and report row passes here: a known code skips the validation's regex.
    exponent = CURRENCY_EXPONENTS.get(currency) if type(currency) is str else None
    return _quantize_half_up(amount, currency_exponent(currency) if exponent is None else exponent)


def round_balance(amount: Decimal) -> Decimal:
    """Round a prepaid balance or charge to BALANCE_QUANTUM (1e-6 of the currency unit), ROUND_HALF_UP."""
    return _quantize_half_up(amount, _BALANCE_PLACES)


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Whole minor units (cents) of an amount that is already exact at the minor unit; ValueError otherwise."""
    require_decimal(amount, "amount")
    exponent = currency_exponent(currency)
    with localcontext(EXACT_CONTEXT):
        scaled = amount.scaleb(exponent)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} {currency} is not a whole number of minor units; round it first")
        return int(scaled)  # exact: scaled was just checked to be integral, so int() cannot truncate


def from_minor_units(n: int, currency: str) -> Decimal:
    """The amount for `n` minor units, at the currency's exponent (1250 EUR cents -> Decimal("12.50"))."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"minor units must be an int, not {_type_name(n)}")
    with localcontext(EXACT_CONTEXT):
        return Decimal(n).scaleb(-currency_exponent(currency))


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency. Arithmetic keeps every digit; `.rounded()` rounds to the minor unit."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
            raise TypeError(f"Money amount must be a Decimal or int, not {_type_name(amount)}")
        amount = Decimal(amount)
        if not amount.is_finite():
            raise InvalidInput("amount", f"must be a finite number, not {amount}")
        if amount.is_zero():
            amount = amount.copy_abs()
        object.__setattr__(self, "amount", amount)
        object.__setattr__(self, "currency", validate_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(from_minor_units(0, currency), currency)

    def rounded(self) -> Money:
        return Money(round_money(self.amount, self.currency), self.currency)

    def __str__(self) -> str:
        return f"{format_decimal(self.amount)} {self.currency}"

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "add")
        with localcontext(EXACT_CONTEXT):
            return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "subtract")
        with localcontext(EXACT_CONTEXT):
            return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: object) -> Money:
        if isinstance(factor, float):
            raise TypeError("cannot multiply Money by a float; use a Decimal")
        if isinstance(factor, bool) or not isinstance(factor, (Decimal, int)):
            return NotImplemented
        with localcontext(EXACT_CONTEXT):
            return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "compare")
        return self.amount >= other.amount

    def _require_same_currency(self, other: Money, operation: str) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch("currency", f"cannot {operation} {self} and {other}: different currencies")


def _to_decimal(value: object, field: str) -> Decimal:
    # bool is an int subclass, so it has to be refused before ints are accepted.
    if isinstance(value, bool):
        raise InvalidInput(field, f"must be a number, not a boolean ({value})")
    if isinstance(value, float):
        raise InvalidInput(field, "must be given as a decimal string, not a binary float")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if _NON_FINITE_TEXT_RE.fullmatch(text):
            raise InvalidInput(field, f"must be a finite number, not {quote_input(value)}")
        if not _DECIMAL_TEXT_RE.fullmatch(text):
            raise InvalidInput(field, f"is not a number: {quote_input(value)}")
        number = Decimal(text)
    elif value is None:
        raise InvalidInput(field, "is missing; a number is required")
    else:
        raise InvalidInput(field, f"must be a decimal number, not {_type_name(value)}")
    if not number.is_finite():
        raise InvalidInput(field, f"must be a finite number, not {number}")
    if number.is_zero():
        # -0 and 0 are the same amount (never show "-0"); an absurd exponent on a zero ("0e-99999") is dropped.
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        number = Decimal((0, (0,), min(0, max(exponent, -_MAX_DIGITS_EACH_SIDE))))
    return number


def _check_bounds(
    number: Decimal, field: str, minimum: Decimal | None, exclusive_minimum: bool, maximum: Decimal | None
) -> None:
    shown = format_decimal(number)
    if minimum is not None:
        if exclusive_minimum and number <= minimum:
            wanted = "must be positive" if minimum == 0 else f"must be greater than {format_decimal(minimum)}"
            raise InvalidInput(field, f"{wanted}, got {shown}")
        if not exclusive_minimum and number < minimum:
            wanted = "must not be negative" if minimum == 0 else f"must be at least {format_decimal(minimum)}"
            raise InvalidInput(field, f"{wanted}, got {shown}")
    if maximum is not None and number > maximum:
        raise InvalidInput(field, f"must be at most {format_decimal(maximum)}, got {shown}")


def _plain(number: Decimal, max_places: int | None) -> Decimal:
    """Rewrite `number` exactly with exponent 0 if it was positive, and without zeros beyond `max_places`."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite, checked by the caller
    if exponent > 0:
        return Decimal((sign, digits + (0,) * exponent, 0))
    if max_places is not None and -exponent > max_places:
        excess = -exponent - max_places  # only zeros, the caller checked decimal_places()
        kept = digits[:-excess] or (0,)
        return Decimal((sign, kept, -max_places))
    return number


def _quantize_half_up(amount: Decimal, places: int) -> Decimal:
    require_decimal(amount, "amount")
    if not amount.is_finite():
        raise ValueError(f"cannot round a non-finite amount: {amount}")
    # The context is passed, not entered, and positionally (keywords cost Decimal.quantize four times the
    # rounding itself): every invoice line of every customer of a period report comes through here.
    quantum = _QUANTA.get(places) or Decimal((0, (1,), -places))
    rounded = amount.quantize(quantum, ROUND_HALF_UP, ROUNDING_CONTEXT)
    return rounded.copy_abs() if rounded.is_zero() else rounded


# 1, 0.1, 0.01, ... down to the balance quantum: what the roundings above quantize to.
_QUANTA = {places: Decimal((0, (1,), -places)) for places in range(_BALANCE_PLACES + 1)}


def _places_text(places: int) -> str:
    return "1 decimal place" if places == 1 else f"{places} decimal places"


def _type_name(value: object) -> str:
    return type(value).__name__
