"""Pricing: what a plan's charges and base fee cost for a period's quantities, exact until a line is rounded once."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction

from meterdesk.domain.money import (
    EXACT_CONTEXT,
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
    with localcontext(EXACT_CONTEXT):
        billable = quantity - charge.included
    return billable if billable > 0 else _ZERO


def charge_breakdown(charge: Charge, quantity: Decimal) -> tuple[TierDetail, ...]:
    """The price of `quantity` split by tier (graduated: one entry per tier entered; other models: one entry).

    The amounts are exact and add up to charge_price().
    """
    billable = billable_quantity(charge, quantity)
    with localcontext(EXACT_CONTEXT):
        if charge.model is PricingModel.PER_UNIT:
            price = _set(charge.unit_price, "unit_price")
            return (TierDetail(0, None, billable, price, _ZERO, billable * price),)
        if charge.model is PricingModel.GRADUATED:
            return _graduated(charge.tiers, billable)
        if charge.model is PricingModel.VOLUME:
            index, tier = _volume_tier(charge.tiers, billable)
            amount = billable * tier.unit_price + tier.flat_fee
            return (TierDetail(index, tier.up_to, billable, tier.unit_price, tier.flat_fee, amount),)
        if charge.model is PricingModel.PACKAGE:
            size = _set(charge.package_size, "package_size")
            package_price = _set(charge.package_price, "package_price")
            # divmod on Decimals is exact: a whole quotient and the remainder, no rounding involved.
            whole, rest = divmod(billable, size)
            packages = whole + (1 if rest else 0)
            return (TierDetail(0, None, packages, package_price, _ZERO, packages * package_price),)
    raise ValueError(f"unknown pricing model {charge.model!r}")


def charge_price(charge: Charge, quantity: Decimal) -> Decimal:
    """The exact, unrounded price of a period quantity under one charge."""
    details = charge_breakdown(charge, quantity)
    with localcontext(EXACT_CONTEXT):
        return sum((detail.amount for detail in details), _ZERO)


def charge_amount(charge: Charge, quantity: Decimal, currency: str) -> Decimal:
    """The invoice amount of a charge: its price rounded once to the currency's minor unit, ROUND_HALF_UP."""
    return round_money(charge_price(charge, quantity), currency)


def incremental_charge(charge: Charge, before: Decimal, after: Decimal) -> Decimal:
    """What a prepaid balance is charged when the period quantity moves from `before` to `after`.

    Both prices are rounded to the balance quantum before subtracting, so the charges of any sequence of
    recordings telescope exactly to the price of the final quantity: nothing is lost or gained in rounding.
    Negative when a correction lowers the quantity.
    """
    with localcontext(EXACT_CONTEXT):
        return round_balance(charge_price(charge, after)) - round_balance(charge_price(charge, before))


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


def _graduated(tiers: tuple[Tier, ...], billable: Decimal) -> tuple[TierDetail, ...]:
    # Tier i covers (previous up_to, up_to]; the first tier is entered at 0, every later tier once the
    # billable quantity exceeds the previous bound (100 stays in the tier up to 100, 100.5 enters the next).
    details: list[TierDetail] = []
    lower = _ZERO
    for index, tier in enumerate(tiers):
        if index > 0 and billable <= lower:
            break
        upper = billable if tier.up_to is None or billable < tier.up_to else tier.up_to
        in_tier = max(upper - lower, _ZERO)
        amount = in_tier * tier.unit_price + tier.flat_fee
        details.append(TierDetail(index, tier.up_to, in_tier, tier.unit_price, tier.flat_fee, amount))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return tuple(details)


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

