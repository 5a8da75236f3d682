"""Billable units (metrics) and the rules a usage amount and a request id must satisfy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from meterdesk.domain.errors import InvalidInput, quote_input
from meterdesk.domain.money import decimal_places, parse_decimal

#: Unit and plan codes: a lowercase letter, then up to 39 lowercase letters, digits or underscores.
UNIT_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
#: No single usage amount may exceed 10^15 (SPEC section 5).
MAX_AMOUNT = Decimal(10) ** 15
#: The ledger stores quantities as integers scaled by the unit's decimals, in 64 signed bits (SQLite INTEGER,
#: PostgreSQL bigint): an entry, and a period total, must stay within this (SPEC 2 "Exact range").
MAX_SCALED = 2**63 - 1
#: A unit may let usage amounts carry 0..6 decimal places.
MAX_UNIT_DECIMALS = 6
MAX_UNIT_NAME_LENGTH = 200
MAX_REQUEST_ID_LENGTH = 255
#: Request ids starting so belong to the entries corrections write (`correction:<entry id>:reversal`).
CORRECTION_PREFIX = "correction:"


_MAX_EXACT_AMOUNT = [min(MAX_AMOUNT, Decimal(MAX_SCALED).scaleb(-places)) for places in range(MAX_UNIT_DECIMALS + 1)]


class Aggregation(StrEnum):
    """How a period's entries of one unit combine into the billed quantity."""

    SUM = "sum"  # total of the amounts (reversals subtract)
    COUNT = "count"  # number of entries, whatever their amounts
    MAX = "max"  # peak amount, e.g. seats


@dataclass(frozen=True, slots=True)
class Unit:
    """A billable metric such as api_calls, tokens or seats."""

    code: str
    name: str
    decimals: int = 0
    aggregation: Aggregation = Aggregation.SUM

    def __post_init__(self) -> None:
        validate_unit_code(self.code)
        object.__setattr__(self, "name", _validate_name(self.name))
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, int):
            raise InvalidInput("decimals", f"must be a whole number from 0 to {MAX_UNIT_DECIMALS}, not {self.decimals!r}")
        if not 0 <= self.decimals <= MAX_UNIT_DECIMALS:
            raise InvalidInput("decimals", f"must be from 0 to {MAX_UNIT_DECIMALS}, got {self.decimals}")
        object.__setattr__(self, "aggregation", _coerce_aggregation(self.aggregation))


def validate_unit_code(code: object, field: str = "code") -> str:
    """Return `code` if it is a valid unit (or plan) code, else raise InvalidInput naming `field`."""
    if not isinstance(code, str):
        raise InvalidInput(field, f"must be text, not {type(code).__name__}")
    if not UNIT_CODE_RE.fullmatch(code):
        raise InvalidInput(
            field,
            "must be 1 to 40 characters: a lowercase letter, then lowercase letters, digits or underscores; "
            f"got {quote_input(code)}",
        )
    return code


# The shape almost every recorded amount has ("1500", "2.5"): ASCII digits only (r"\d" would also take
# "٥" or "５"), at most 16 whole digits and 6 places. Read here without the general parser, which stays the
# one authority for everything else and for every error message; bulk imports live on this path (their
# column check, services/column_reader.py, is built from this same pattern).
PLAIN_AMOUNT_PATTERN = r"[0-9]{1,16}(?:\.[0-9]{1,6})?"
_PLAIN_AMOUNT = re.compile(PLAIN_AMOUNT_PATTERN)
#: The largest usage amount as an integer scaled by 0..6 decimals (10^15, or less where 64 bits end first).
MAX_SCALED_AMOUNTS = [min(int(MAX_AMOUNT) * 10**places, MAX_SCALED) for places in range(MAX_UNIT_DECIMALS + 1)]


def plain_quantity(value: object, decimals: int) -> int | None:
    """A plain positive amount as an integer scaled by `decimals`: `validate_usage_amount`'s reading of
    text such as "1500" or "2.25", without building a Decimal. None when the text has any other shape, or
    is out of range, or has more places than `decimals`: `validate_usage_amount` then decides and words it."""
    if type(value) is not str or not _PLAIN_AMOUNT.fullmatch(value):
        return None
    whole, _, fraction = value.partition(".")
    if fraction[decimals:].strip("0"):
        return None
    quantity = int(whole) * 10**decimals + (int(fraction[:decimals].ljust(decimals, "0")) if decimals else 0)
    return quantity if 0 < quantity <= MAX_SCALED_AMOUNTS[decimals] else None


def validate_usage_amount(unit: Unit, value: object, field: str = "amount") -> Decimal:
    """A recorded usage amount: finite, positive, at most 10^15, no more decimal places than the unit
    allows, written with ASCII digits (surrounding whitespace is ignored). Every path that records usage
    reads its amount here (imports through `plain_quantity` first, which agrees with it)."""
    if type(value) is str and _PLAIN_AMOUNT.fullmatch(value):
        whole, _, fraction = value.partition(".")
        if not fraction[unit.decimals :].strip("0"):
            fraction = fraction[: unit.decimals]
            number = Decimal(f"{whole}.{fraction}" if fraction else whole)
            if 0 < number <= _MAX_EXACT_AMOUNT[unit.decimals]:
                return number
    number = parse_decimal(value, field, minimum=Decimal(0), exclusive_minimum=True, maximum=MAX_AMOUNT)
    return _fit_exact_range(unit, _fit_unit_places(unit, number, field), field)


def validate_correction_amount(unit: Unit, value: object, field: str = "new_amount") -> Decimal:
    """The new amount of a corrected entry: like a usage amount, except that 0 (drop the usage) is allowed."""
    number = parse_decimal(value, field, minimum=Decimal(0), maximum=MAX_AMOUNT)
    return _fit_exact_range(unit, _fit_unit_places(unit, number, field), field)


def max_exact_amount(decimals: int) -> Decimal:
    """The largest amount the ledger stores exactly for a unit with `decimals` places (and at most 10^15)."""
    return _MAX_EXACT_AMOUNT[decimals]


def check_exact_total(unit: Unit, total: int, field: str = "amount") -> None:
    """Refuse a period (or day) total, in scaled units, that the ledger could not store exactly."""
    if not -MAX_SCALED <= total <= MAX_SCALED:
        limit = format(Decimal(MAX_SCALED).scaleb(-unit.decimals), "f")
        raise InvalidInput(
            field,
            f"would take the period total of unit '{unit.code}' to {format(Decimal(total).scaleb(-unit.decimals), 'f')}, "
            f"beyond the {limit} the ledger stores exactly",
        )


def _fit_exact_range(unit: Unit, number: Decimal, field: str) -> Decimal:
    if number > _MAX_EXACT_AMOUNT[unit.decimals]:
        limit = format(_MAX_EXACT_AMOUNT[unit.decimals], "f")
        raise InvalidInput(
            field, f"{format(number, 'f')} is more than unit '{unit.code}' ({unit.decimals} decimals) stores exactly: at most {limit}"
        )
    return number


def validate_request_id(value: object, field: str = "request_id") -> str:
    """A request id of usage or credits: an id (`validate_id`) outside the namespace meterdesk keeps for the
    entries a correction writes (CORRECTION_PREFIX), so that no request id can ever take one of theirs."""
    value = validate_id(value, field)
    if value.startswith(CORRECTION_PREFIX):
        raise InvalidInput(
            field, f"must not start with {CORRECTION_PREFIX!r}: meterdesk keeps those for the entries of corrections"
        )
    return value


def validate_id(value: object, field: str = "id") -> str:
    """A customer id or request id (SPEC 2 "Ids"): 1..255 printable characters with no leading or trailing
    whitespace. Kept exactly as given (it is a key): nothing is stripped, a padded id is refused."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be text, not {type(value).__name__}")
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > MAX_REQUEST_ID_LENGTH:
        raise InvalidInput(field, f"is {len(value)} characters long; at most {MAX_REQUEST_ID_LENGTH} allowed")
    if value.isprintable():
        if value[0] == " " or value[-1] == " ":  # the one whitespace character str.isprintable lets through
            raise InvalidInput(field, f"must not begin or end with a space; got {value!r}")
        return value
    for position, character in enumerate(value):
        if not character.isprintable():
            raise InvalidInput(
                field, f"must contain only printable characters; found {character!r} at position {position}"
            )
    return value


def _fit_unit_places(unit: Unit, number: Decimal, field: str) -> Decimal:
    places = decimal_places(number)
    if places > unit.decimals:
        plural = "place" if places == 1 else "places"
        raise InvalidInput(field, f"has {places} decimal {plural}; unit '{unit.code}' allows {unit.decimals}")
    # Only zeros lie beyond the unit's places now; this drops them ("5.000" -> 5 for a whole-number unit).
    return parse_decimal(number, field, max_places=unit.decimals)


def _validate_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidInput("name", f"must be text, not {type(name).__name__}")
    stripped = name.strip()
    if not stripped:
        raise InvalidInput("name", "must not be empty")
    if len(stripped) > MAX_UNIT_NAME_LENGTH:
        raise InvalidInput("name", f"is {len(stripped)} characters long; at most {MAX_UNIT_NAME_LENGTH} allowed")
    if not stripped.isprintable():
        raise InvalidInput("name", "must contain only printable characters (no tabs, newlines or control characters)")
    return stripped


def _coerce_aggregation(value: object) -> Aggregation:
    if isinstance(value, Aggregation):
        return value
    choices = ", ".join(member.value for member in Aggregation)
    if isinstance(value, str):
        try:
            return Aggregation(value.strip().lower())
        except ValueError:
            pass
    raise InvalidInput("aggregation", f"must be one of {choices}; got {quote_input(value)}")
