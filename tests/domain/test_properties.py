"""Properties of pricing and money that must hold for any plan and any quantities (hypothesis)."""

import dataclasses
import json
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from meterdesk.domain.money import (
    EXACT_CONTEXT,
    Money,
    format_decimal,
    parse_decimal,
    round_balance,
    round_money,
)
from meterdesk.domain.periods import Period, format_timestamp, from_micros, parse_timestamp, to_micros
from meterdesk.domain.plans import Charge, Plan, PricingModel, Tier, plan_from_dict, plan_to_dict
from meterdesk.domain.pricing import (
    base_fee_line,
    charge_amount,
    charge_breakdown,
    charge_price,
    charge_pricer,
    incremental_charge,
    usage_line,
)

# Quick enough for every run, and no deadline: a slow first example (imports, caches) is not a failure.
# A decorator, not a loaded profile, so the settings of other test packages are left alone.
quick = settings(max_examples=60, deadline=None)

quantities = st.decimals(min_value=0, max_value=10**9, places=6)
unit_prices = st.decimals(min_value=0, max_value=1000, places=12)
fees = st.decimals(min_value=0, max_value=10_000, places=4)
included = st.one_of(st.just(Decimal(0)), st.decimals(min_value=0, max_value=10**6, places=3))


@st.composite
def tier_lists(draw) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.decimals(min_value="0.000001", max_value=10**8, places=6), max_size=5)))
    tiers = [Tier(bound, draw(unit_prices), draw(fees)) for bound in bounds]
    tiers.append(Tier(None, draw(unit_prices), draw(fees)))
    return tuple(tiers)


per_unit_charges = st.builds(
    Charge, unit=st.just("api_calls"), model=st.just(PricingModel.PER_UNIT), included=included, unit_price=unit_prices
)
graduated_charges = st.builds(
    Charge, unit=st.just("api_calls"), model=st.just(PricingModel.GRADUATED), included=included, tiers=tier_lists()
)
volume_charges = st.builds(
    Charge, unit=st.just("api_calls"), model=st.just(PricingModel.VOLUME), included=included, tiers=tier_lists()
)
package_charges = st.builds(
    Charge,
    unit=st.just("api_calls"),
    model=st.just(PricingModel.PACKAGE),
    included=included,
    package_size=st.decimals(min_value="0.001", max_value=10**6, places=3),
    package_price=unit_prices,
)
any_charge = st.one_of(per_unit_charges, graduated_charges, volume_charges, package_charges)
currencies = st.sampled_from(["EUR", "USD", "JPY", "KRW", "BHD", "KWD", "CLF"])


def floats_in(value, path="result"):
    """Every place a float hides in a (nested) result: dataclasses, dicts, lists and tuples are walked."""
    if isinstance(value, float):
        return [path]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [hit for f in dataclasses.fields(value) for hit in floats_in(getattr(value, f.name), f"{path}.{f.name}")]
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in floats_in(key, path) + floats_in(item, f"{path}[{key!r}]")]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [hit for index, item in enumerate(value) for hit in floats_in(item, f"{path}[{index}]")]
    return []


@quick
@given(per_unit_charges, quantities, quantities)
def test_per_unit_prices_never_decrease(charge, a, b):
    low, high = sorted((a, b))
    assert charge_price(charge, low) <= charge_price(charge, high)


@quick
@given(graduated_charges, quantities, quantities)
def test_graduated_prices_never_decrease(charge, a, b):
    low, high = sorted((a, b))
    assert charge_price(charge, low) <= charge_price(charge, high)


@quick
@given(package_charges, quantities, quantities)
def test_package_prices_never_decrease(charge, a, b):
    low, high = sorted((a, b))
    assert charge_price(charge, low) <= charge_price(charge, high)


@quick
@given(any_charge, st.lists(st.decimals(min_value="0.000001", max_value=10**7, places=6), min_size=1, max_size=12))
def test_incremental_charges_of_any_split_add_up_exactly(charge, parts):
    total, charged = Decimal(0), Decimal(0)
    for part in parts:
        charged += incremental_charge(charge, total, total + part)
        total += part
    assert charged == round_balance(charge_price(charge, total)) - round_balance(charge_price(charge, Decimal(0)))


@quick
@given(any_charge, quantities)
def test_breakdown_adds_up_to_the_price(charge, quantity):
    details = charge_breakdown(charge, quantity)
    with localcontext(EXACT_CONTEXT):  # the default context's 28 digits would round a long exact price
        assert sum(detail.amount for detail in details) == charge_price(charge, quantity)
        for detail in details:
            assert detail.amount == detail.quantity * detail.unit_price + detail.flat_fee


@quick
@given(graduated_charges, quantities)
def test_graduated_tier_quantities_cover_the_billable_quantity(charge, quantity):
    billable = max(Decimal(0), quantity - charge.included)
    assert sum(detail.quantity for detail in charge_breakdown(charge, quantity)) == billable


@quick
@given(any_charge, quantities, currencies)
def test_line_amount_is_the_price_rounded_once(charge, quantity, currency):
    exact = charge_price(charge, quantity)
    amount = charge_amount(charge, quantity, currency)
    assert amount == round_money(exact, currency)
    step = Decimal(1).scaleb(amount.as_tuple().exponent)
    assert abs(amount - exact) <= step / 2


@quick
@given(any_charge, st.lists(quantities, min_size=1, max_size=5), currencies)
def test_a_charge_pricer_prices_as_charge_amount_digit_for_digit(charge, some_quantities, currency):
    price = charge_pricer(charge, currency)
    bounds = [charge.included + tier.up_to for tier in charge.tiers if tier.up_to is not None]
    for quantity in some_quantities + [Decimal(0), charge.included] + bounds:
        expected = charge_amount(charge, quantity, currency)
        assert str(price(quantity)) == str(expected)


@quick
@given(any_charge, quantities, currencies)
def test_no_float_in_pricing_results(charge, quantity, currency):
    results = [
        usage_line(charge, quantity, currency),
        charge_breakdown(charge, quantity),
        charge_price(charge, quantity),
        incremental_charge(charge, Decimal(0), quantity),
    ]
    assert floats_in(results) == []


@st.composite
def plans(draw) -> Plan:
    units = draw(st.lists(st.sampled_from(["api_calls", "tokens", "seats", "storage_gb", "gpu_h100_s"]), unique=True, max_size=4))
    charges = tuple(dataclasses.replace(draw(any_charge), unit=unit) for unit in units)
    currency = draw(currencies)
    base_fee = round_money(draw(st.decimals(min_value=0, max_value=10_000, places=4)), currency)
    return Plan(code="plan", name="A plan", currency=currency, base_fee=base_fee, charges=charges)


@quick
@given(plans(), st.integers(min_value=2000, max_value=2100), st.integers(min_value=1, max_value=12))
def test_plans_round_trip_through_json_without_floats(plan, year, month):
    as_dict = plan_to_dict(plan)
    assert floats_in(as_dict) == []
    text = json.dumps(as_dict)
    assert "E" not in text.replace("EUR", "").replace("USD", "")  # no exponent notation anywhere
    assert plan_from_dict(json.loads(text)) == plan
    line = base_fee_line(plan, Period(year, month), date(year, month, 1) + timedelta(days=3))
    assert floats_in(line) == []


@quick
@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20, places=8))
def test_parse_decimal_reads_back_what_format_decimal_writes(value):
    text = format_decimal(value)
    assert parse_decimal(text, "amount") == value
    assert "E" not in text


@quick
@given(st.lists(st.decimals(min_value=-1000, max_value=1000, places=6), max_size=20))
def test_money_sums_are_exact(amounts):
    total = sum((Money(amount, "EUR") for amount in amounts), Money.zero("EUR"))
    assert total.amount == sum(amounts, Decimal(0))


@quick
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
def test_timestamps_round_trip(naive):
    instant = parse_timestamp(naive)
    assert parse_timestamp(format_timestamp(instant)) == instant
    assert from_micros(to_micros(instant)) == instant
