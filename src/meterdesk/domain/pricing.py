"""Pricing: what a plan's charges and base fee cost for a period's quantities, exact until a line is rounded once."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from functools import lru_cache

from meterdesk.domain.money import (
    EXACT_CONTEXT,
    ROUNDING_CONTEXT,
    currency_exponent,
    format_decimal,
    from_minor_units,
    require_decimal,
    round_balance,
    round_money,
)
from meterdesk.domain.periods import Period
from meterdesk.domain.plans import Charge, Plan, PricingModel, Tier

_ZERO = Decimal(0)
# Exact arithmetic through the context's methods: the same results as inside localcontext(EXACT_CONTEXT)
# (Inexact still traps), without entering and leaving a context for every operation.
_EXACT = EXACT_CONTEXT


@dataclass(frozen=True, slots=True)
class TierDetail:
    """How one tier (or the single rate of a non-tiered charge) contributes to a charge's price.

    `amount == quantity * unit_price + flat_fee`, exact. For a package charge `quantity` counts packages
    and `unit_price` is the package price.
    """

    index: int
    up_to: Decimal | None
    quantity: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PriceLine:
    """One invoice line. `amount` is rounded to the currency's minor unit; `quantity` is the period quantity."""

    kind: str  # "base_fee", "usage", "correction", ...
    unit: str | None
    description: str
    quantity: Decimal
    amount: Decimal
    unit_price: Decimal | None = None
    tiers: tuple[TierDetail, ...] = ()


def billable_quantity(charge: Charge, quantity: Decimal) -> Decimal:
    """max(0, quantity - included): the part of the period's quantity the charge prices."""
    require_decimal(quantity, "quantity")
    billable = _EXACT.subtract(quantity, charge.included)
    return billable if billable > 0 else _ZERO


def charge_breakdown(charge: Charge, quantity: Decimal) -> tuple[TierDetail, ...]:
    """The price of `quantity` split by tier (graduated: one entry per tier entered; other models: one entry).

    The amounts are exact and add up to charge_price().
    """
    billable = billable_quantity(charge, quantity)
    model = charge.model
    if model is PricingModel.PER_UNIT:
        price = _set(charge.unit_price, "unit_price")
        return (TierDetail(0, None, billable, price, _ZERO, _EXACT.multiply(billable, price)),)
    if model is PricingModel.GRADUATED:
        return tuple(
            TierDetail(index, tier.up_to, in_tier, tier.unit_price, tier.flat_fee, _tier_amount(tier, in_tier))
            for index, tier, in_tier in _graduated(charge.tiers, billable)
        )
    if model is PricingModel.VOLUME:
        index, tier = _volume_tier(charge.tiers, billable)
        return (TierDetail(index, tier.up_to, billable, tier.unit_price, tier.flat_fee, _tier_amount(tier, billable)),)
    if model is PricingModel.PACKAGE:
        packages, package_price = _packages(charge, billable)
        return (TierDetail(0, None, packages, package_price, _ZERO, _EXACT.multiply(packages, package_price)),)
    raise ValueError(f"unknown pricing model {charge.model!r}")


def charge_price(charge: Charge, quantity: Decimal) -> Decimal:
    """The exact, unrounded price of a period quantity under one charge: the sum of charge_breakdown()'s
    amounts, computed without building the breakdown (this prices every charge of every customer)."""
    billable = billable_quantity(charge, quantity)
    model = charge.model
    if model is PricingModel.PER_UNIT:
        amount = _EXACT.multiply(billable, _set(charge.unit_price, "unit_price"))
    elif model is PricingModel.GRADUATED:
        amount = _ZERO
        for _, tier, in_tier in _graduated(charge.tiers, billable):
            amount = _EXACT.add(amount, _tier_amount(tier, in_tier))
        return amount
    elif model is PricingModel.VOLUME:
        amount = _tier_amount(_volume_tier(charge.tiers, billable)[1], billable)
    elif model is PricingModel.PACKAGE:
        packages, package_price = _packages(charge, billable)
        amount = _EXACT.multiply(packages, package_price)
    else:
        raise ValueError(f"unknown pricing model {charge.model!r}")
    return _EXACT.add(_ZERO, amount)  # as the breakdown's sum writes it (same value, same exponent)


def charge_amount(charge: Charge, quantity: Decimal, currency: str) -> Decimal:
    """The invoice amount of a charge: its price rounded once to the currency's minor unit, ROUND_HALF_UP."""
    return round_money(charge_price(charge, quantity), currency)


def charge_pricer(charge: Charge, currency: str) -> Callable[[Decimal], Decimal]:
    """charge_amount(charge, ·, currency) as a function of the quantity alone, for pricing many quantities
    under one charge (every customer of a plan in a period report): the same Decimal, digit for digit.

    What does not depend on the quantity (prices, tier bounds, the rounding quantum) is looked up once,
    and each model is priced inline, without the breakdown or the helper calls charge_amount goes through.
    """
    exponent = currency_exponent(currency)
    quantum = Decimal((0, (1,), -exponent))
    included, model = charge.included, charge.model
    subtract, multiply, add = _EXACT.subtract, _EXACT.multiply, _EXACT.add

    def rounded(price: Decimal) -> Decimal:
        if not price.is_finite():
            return round_money(price, currency)  # which says why it cannot be rounded
        amount = price.quantize(quantum, ROUND_HALF_UP, ROUNDING_CONTEXT)
        return amount.copy_abs() if amount.is_zero() else amount

    def billable_of(quantity: Decimal) -> Decimal:
        require_decimal(quantity, "quantity")
        billable = subtract(quantity, included)
        return billable if billable > 0 else _ZERO

    if model is PricingModel.PER_UNIT:
        unit_price = _set(charge.unit_price, "unit_price")
        zero = rounded(_ZERO)

        def per_unit_amount(quantity: Decimal) -> Decimal:
            require_decimal(quantity, "quantity")
            billable = subtract(quantity, included)
            return rounded(multiply(billable, unit_price)) if billable > 0 else zero

        return per_unit_amount
    tiers = tuple((tier.up_to, tier.unit_price, tier.flat_fee) for tier in charge.tiers)
    if model is PricingModel.GRADUATED and tiers:

        def graduated_amount(quantity: Decimal) -> Decimal:
            billable = billable_of(quantity)
            price = lower = _ZERO
            entered = False
            for up_to, unit_price, flat_fee in tiers:  # as _graduated walks them
                if entered and billable <= lower:
                    break
                entered = True
                upper = billable if up_to is None or billable < up_to else up_to
                in_tier = subtract(upper, lower)
                if _ZERO > in_tier:
                    in_tier = _ZERO
                price = add(price, add(multiply(in_tier, unit_price), flat_fee))
                if up_to is None:
                    break
                lower = up_to
            return rounded(price)

        return graduated_amount
    if model is PricingModel.VOLUME and tiers:

        def volume_amount(quantity: Decimal) -> Decimal:
            billable = billable_of(quantity)
            for up_to, unit_price, flat_fee in tiers:  # as _volume_tier: the first tier holding it, else the last
                if up_to is None or billable <= up_to:
                    break
            return rounded(add(multiply(billable, unit_price), flat_fee))

        return volume_amount
    if model is PricingModel.PACKAGE:
        size = _set(charge.package_size, "package_size")
        package_price = _set(charge.package_price, "package_price")

        def package_amount(quantity: Decimal) -> Decimal:
            whole, rest = _EXACT.divmod(billable_of(quantity), size)
            return rounded(multiply(add(whole, 1 if rest else 0), package_price))

        return package_amount
    return lambda quantity: charge_amount(charge, quantity, currency)


def incremental_charge(charge: Charge, before: Decimal, after: Decimal) -> Decimal:
    """What a prepaid balance is charged when the period quantity moves from `before` to `after`.

    Both prices are rounded to the balance quantum before subtracting, so the charges of any sequence of
    recordings telescope exactly to the price of the final quantity: nothing is lost or gained in rounding.
    Negative when a correction lowers the quantity.
    """
    with localcontext(EXACT_CONTEXT):
        return round_balance(charge_price(charge, after)) - round_balance(charge_price(charge, before))


class RunningCharge:
    """The one prepaid pricer: a customer's period total of one unit and the price at it, moved entry by entry.

    Each move is charged price(after) - price(before), both rounded to the balance quantum (as
    `incremental_charge`), so the charges of any sequence of entries telescope exactly to the price of the
    final total. Totals are scaled integers (the unit's decimals; entries for `count`), money is in
    micro-units. Prices come from `balance_micros_pricer` where the charge allows, else from `charge_price`;
    single events, batches and imports all price through this class. `charge` None: nothing prices the
    unit, every move costs 0.
    """

    __slots__ = ("charge", "scale", "total", "price", "_pricer", "_quoted")

    def __init__(self, charge: Charge | None, scale: int, total: int, price: int | None = None) -> None:
        """`price`: the price at `total` when already known (a pure function of the charge and the total)."""
        self.charge = charge
        self.scale = scale
        self.total = total
        self._pricer = None if charge is None else _micros_pricer(charge, scale)
        self._quoted: tuple[int, int] | None = None
        self.price = 0 if charge is None else price if price is not None else self.price_at(total)

    def price_at(self, total: int) -> int:
        """The rounded price of a total, in micro-units."""
        if self.charge is None:
            return 0
        quoted = self._quoted
        if quoted is not None and quoted[0] == total:
            return quoted[1]
        pricer = self._pricer
        if pricer is not None:
            price = pricer(total)
        else:
            quantity = Decimal(total).scaleb(-self.scale) if self.scale else Decimal(total)
            price = int(round_balance(charge_price(self.charge, quantity)).scaleb(_BALANCE_DIGITS))
        self._quoted = (total, price)
        return price

    def charge_to(self, after: int) -> int:
        """What moving the total to `after` costs, in micro-units (negative when it falls); nothing moves."""
        return self.price_at(after) - self.price if after != self.total else 0

    def move_to(self, after: int) -> int:
        """Move the total to `after` and return what that costs (`charge_to`)."""
        if after == self.total:
            return 0
        price = self.price_at(after)
        charged = price - self.price
        self.total, self.price = after, price
        return charged


_BALANCE_DIGITS = 6  # micro-units: BALANCE_QUANTUM


@lru_cache(maxsize=4096)
def _micros_pricer(charge: Charge, scale: int) -> Callable[[int], int] | None:
    """balance_micros_pricer, built once per charge and scale (charges are immutable)."""
    return balance_micros_pricer(charge, scale)


def balance_micros_pricer(charge: Charge, decimals: int) -> Callable[[int], int] | None:
    """round_balance(charge_price(charge, total / 10**decimals)) in micro-units (1e-6 of the currency), as a
    function of the period total as a scaled integer — for pricing a prepaid customer's every line of a
    bulk import in integers. None when a term of the charge is not exact at that scale, is negative or is
    missing: then charge_price (the reference this mirrors, model by model) prices it.

    Every price and fee is an integer numerator over 10**money, quantities over 10**decimals; the exact
    price is N / 10**(money + decimals), rounded half up to micro-units once, as round_balance does.
    """

    def scaled(value: Decimal | None, places: int) -> int | None:
        if value is None or not value.is_finite() or value < 0:
            return None
        exact = value.scaleb(places, EXACT_CONTEXT)
        return int(exact) if exact == exact.to_integral_value() else None

    model, tiers = charge.model, charge.tiers
    prices = [charge.unit_price, charge.package_price] + [t.unit_price for t in tiers] + [t.flat_fee for t in tiers]
    exponents = [value.as_tuple().exponent for value in prices if value is not None]
    if any(not isinstance(exponent, int) for exponent in exponents):
        return None
    money = max([6] + [-exponent for exponent in exponents])
    step = 10 ** (money + decimals - 6)
    fee_scale = 10**decimals
    included = scaled(charge.included, decimals)
    if included is None:
        return None

    def rounded(numerator: int) -> int:
        return numerator if step == 1 else (numerator + step // 2) // step

    if model is PricingModel.PER_UNIT:
        price = scaled(charge.unit_price, money)
        if price is None:
            return None
        return lambda total: rounded((total - included) * price) if total > included else 0
    if model is PricingModel.PACKAGE:
        size, package_price = scaled(charge.package_size, decimals), scaled(charge.package_price, money)
        if not size or package_price is None:
            return None
        return lambda total: rounded(-(-max(total - included, 0) // size) * package_price * fee_scale)
    terms = [(scaled(t.up_to, decimals) if t.up_to is not None else None, scaled(t.unit_price, money), scaled(t.flat_fee, money)) for t in tiers]
    if any(price is None or fee is None or (t.up_to is not None and up_to is None) for t, (up_to, price, fee) in zip(tiers, terms)):
        return None
    terms = [(up_to, price, fee * fee_scale) for up_to, price, fee in terms]
    if model is PricingModel.GRADUATED:

        def graduated(total: int) -> int:
            billable = total - included if total > included else 0
            numerator = lower = 0
            for index, (up_to, price, fee) in enumerate(terms):  # as _graduated walks them
                if index > 0 and billable <= lower:
                    break
                upper = billable if up_to is None or billable < up_to else up_to
                numerator += (upper - lower if upper > lower else 0) * price + fee
                if up_to is None:
                    break
                lower = up_to
            return rounded(numerator)

        return graduated
    if model is PricingModel.VOLUME and terms:

        def volume(total: int) -> int:
            billable = total - included if total > included else 0
            for up_to, price, fee in terms:  # as _volume_tier picks the tier
                if up_to is None or billable <= up_to:
                    break
            return rounded(billable * price + fee)

        return volume
    return None


def active_days(period: Period, active_from: date | None = None, active_until: date | None = None) -> int:
    """Days of `period` on which a subscription running [active_from, active_until) is active."""
    for name, value in (("active_from", active_from), ("active_until", active_until)):
        # A datetime would need a time zone to become a day; the caller knows it, this function does not.
        if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
            raise TypeError(f"{name} must be a date, not {type(value).__name__}")
    start = period.first_day
    end = period.last_day + timedelta(days=1)
    if active_from is not None and active_from > start:
        start = active_from
    if active_until is not None and active_until < end:
        end = active_until
    return max(0, (end - start).days)


def prorated_base_fee(
    base_fee: Decimal,
    currency: str,
    period: Period,
    active_from: date | None = None,
    active_until: date | None = None,
) -> Decimal:
    """The period's base fee, prorated by active days when the subscription starts or ends inside it.

    Rounded once to the currency's minor unit, ROUND_HALF_UP. `active_until` is exclusive (the first day
    no longer covered).
    """
    require_decimal(base_fee, "base_fee")
    days = active_days(period, active_from, active_until)
    if days == period.days:
        return round_money(base_fee, currency)
    # Fractions keep base_fee * days / days_in_month exact (a Decimal division would round), so the
    # single rounding below is the only one.
    exponent = currency_exponent(currency)
    share = Fraction(base_fee) * days / period.days * 10**exponent
    minor_units = _round_half_up(share)
    return from_minor_units(minor_units, currency)


def usage_line(
    charge: Charge,
    quantity: Decimal,
    currency: str,
    *,
    kind: str = "usage",
    description: str | None = None,
) -> PriceLine:
    """The invoice line of one charge for a period quantity, rounded once."""
    details = charge_breakdown(charge, quantity)
    return PriceLine(
        kind=kind,
        unit=charge.unit,
        description=description if description is not None else describe_usage(charge, quantity),
        quantity=quantity,
        amount=charge_amount(charge, quantity, currency),
        unit_price=charge.unit_price if charge.model is PricingModel.PER_UNIT else None,
        tiers=details if charge.model is PricingModel.GRADUATED else (),
    )


def base_fee_line(
    plan: Plan, period: Period, active_from: date | None = None, active_until: date | None = None
) -> PriceLine:
    """The base fee line of a plan for a period, prorated by days when the subscription covers only part."""
    days = active_days(period, active_from, active_until)
    description = f"Base fee, {plan.name}, {period}"
    if days != period.days:
        description += f" (prorated: {days} of {period.days} days)"
    return PriceLine(
        kind="base_fee",
        unit=None,
        description=description,
        quantity=Decimal(1),
        amount=prorated_base_fee(plan.base_fee, plan.currency, period, active_from, active_until),
    )


def lines_total(lines: Iterable[PriceLine], currency: str) -> Decimal:
    """An invoice total: the sum of its already rounded lines (SPEC: totals are sums of rounded lines)."""
    with localcontext(EXACT_CONTEXT):
        total = sum((line.amount for line in lines), _ZERO)
    return round_money(total, currency)  # exact already; this only writes it at the currency's exponent


def describe_usage(charge: Charge, quantity: Decimal) -> str:
    """A one-line, human description of how a charge priced a quantity (for invoice lines)."""
    billable = billable_quantity(charge, quantity)
    text = f"{charge.unit}: {format_decimal(quantity)}"
    if charge.included:
        text += f", {format_decimal(charge.included)} included, {format_decimal(billable)} billable"
    details = charge_breakdown(charge, quantity)
    if charge.model is PricingModel.PER_UNIT:
        return text + f" at {format_decimal(details[0].unit_price)} each"
    if charge.model is PricingModel.GRADUATED:
        return text + f", graduated over {len(details)} tier{'s' if len(details) != 1 else ''}"
    if charge.model is PricingModel.VOLUME:
        detail = details[0]
        text += f" at {format_decimal(detail.unit_price)} each (volume tier {detail.index + 1})"
        if detail.flat_fee:
            text += f" plus {format_decimal(detail.flat_fee)}"
        return text
    size = _set(charge.package_size, "package_size")
    packages = details[0].quantity
    return text + (
        f" in {format_decimal(packages)} package{'s' if packages != 1 else ''} of {format_decimal(size)}"
        f" at {format_decimal(details[0].unit_price)}"
    )


def _graduated(tiers: tuple[Tier, ...], billable: Decimal) -> Iterator[tuple[int, Tier, Decimal]]:
    """(index, tier, quantity inside it) for each tier the billable quantity has entered."""
    # Tier i covers (previous up_to, up_to]; the first tier is entered at 0, every later tier once the
    # billable quantity exceeds the previous bound (100 stays in the tier up to 100, 100.5 enters the next).
    lower = _ZERO
    for index, tier in enumerate(tiers):
        if index > 0 and billable <= lower:
            return
        upper = billable if tier.up_to is None or billable < tier.up_to else tier.up_to
        yield index, tier, max(_EXACT.subtract(upper, lower), _ZERO)
        if tier.up_to is None:
            return
        lower = tier.up_to


def _tier_amount(tier: Tier, quantity: Decimal) -> Decimal:
    """quantity * unit_price + flat_fee, exact."""
    return _EXACT.add(_EXACT.multiply(quantity, tier.unit_price), tier.flat_fee)


def _packages(charge: Charge, billable: Decimal) -> tuple[Decimal, Decimal]:
    """(packages started, package price): ceil(billable / package_size) whole packages."""
    size = _set(charge.package_size, "package_size")
    package_price = _set(charge.package_price, "package_price")
    # divmod on Decimals is exact: a whole quotient and the remainder, no rounding involved.
    whole, rest = _EXACT.divmod(billable, size)
    return _EXACT.add(whole, 1 if rest else 0), package_price


def _volume_tier(tiers: tuple[Tier, ...], billable: Decimal) -> tuple[int, Tier]:
    for index, tier in enumerate(tiers):
        if tier.up_to is None or billable <= tier.up_to:
            return index, tier
    # A validated plan always ends with an open-ended tier; price beyond a closed last tier at its rate.
    return len(tiers) - 1, tiers[-1]


def _round_half_up(value: Fraction) -> int:
    """Round a fraction to the nearest integer, halves away from zero (ROUND_HALF_UP, as decimal names it)."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return -magnitude if value < 0 else magnitude


def _set(value: Decimal | None, name: str) -> Decimal:
    if value is None:
        raise ValueError(f"the charge has no {name}")
    return value

