"""Pricing with literal plans: every model at and around its tier boundaries, rounding, proration."""

from datetime import date
from decimal import Decimal

import pytest

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.periods import Period
from meterdesk.domain.plans import Charge, Plan, PricingModel, Tier
from meterdesk.domain.pricing import (
    PriceLine,
    TierDetail,
    active_days,
    base_fee_line,
    billable_quantity,
    charge_amount,
    charge_breakdown,
    charge_price,
    charge_pricer,
    incremental_charge,
    lines_total,
    prorated_base_fee,
    usage_line,
)

D = Decimal

TIERS = (
    Tier(up_to=D("100"), unit_price=D("1.00"), flat_fee=D("5")),
    Tier(up_to=D("200"), unit_price=D("0.50"), flat_fee=D("2")),
    Tier(up_to=None, unit_price=D("0.10"), flat_fee=D("1")),
)
GRADUATED = Charge(unit="api_calls", model=PricingModel.GRADUATED, tiers=TIERS)
VOLUME = Charge(unit="seats", model=PricingModel.VOLUME, tiers=TIERS)
PER_UNIT = Charge(unit="storage_gb", model=PricingModel.PER_UNIT, unit_price=D("0.10"))
PACKAGE = Charge(
    unit="sms", model=PricingModel.PACKAGE, included=D("100"), package_size=D("1000"), package_price=D("9.99")
)


def price(charge: Charge, quantity: str) -> Decimal:
    return charge_price(charge, D(quantity))


# --- per unit ---------------------------------------------------------------------------------------------


def test_per_unit():
    assert price(PER_UNIT, "0") == 0
    assert price(PER_UNIT, "12.5") == D("1.25")
    assert price(PER_UNIT, "0.001") == D("0.0001")  # exact, not rounded
    assert charge_amount(PER_UNIT, D("0.001"), "EUR") == D("0.00")


def test_included_allowance_larger_than_usage_costs_nothing():
    charge = Charge(unit="storage_gb", model=PricingModel.PER_UNIT, included=D("1000"), unit_price=D("0.10"))
    assert billable_quantity(charge, D("300")) == 0
    assert price(charge, "300") == 0
    assert price(charge, "1000") == 0
    assert price(charge, "1001") == D("0.10")


# --- graduated --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("0", "5"),  # the first tier is entered at 0: its flat fee is due with no usage
     ("50", "55"), ("100", "105"),  # up_to is inclusive: 100 is still in the first tier
     ("100.5", "107.25"),  # 100 * 1.00 + 5, then 0.5 * 0.50 + 2 for entering the second tier
     ("200", "157"), ("200.000001", "158.0000001"), ("250", "163")],
)  # fmt: skip
def test_graduated_tier_boundaries(quantity, expected):
    assert price(GRADUATED, quantity) == D(expected)


def test_graduated_breakdown_lists_each_entered_tier():
    assert charge_breakdown(GRADUATED, D("250")) == (
        TierDetail(0, D("100"), D("100"), D("1.00"), D("5"), D("105")),
        TierDetail(1, D("200"), D("100"), D("0.50"), D("2"), D("52")),
        TierDetail(2, None, D("50"), D("0.10"), D("1"), D("6")),
    )
    assert charge_breakdown(GRADUATED, D("0")) == (TierDetail(0, D("100"), D("0"), D("1.00"), D("5"), D("5")),)
    assert len(charge_breakdown(GRADUATED, D("100"))) == 1
    assert len(charge_breakdown(GRADUATED, D("100.5"))) == 2


def test_graduated_applies_tiers_to_the_billable_quantity():
    charge = Charge(unit="api_calls", model=PricingModel.GRADUATED, included=D("10000"), tiers=TIERS)
    assert price(charge, "5000") == D("5")  # included covers it all: only the first tier's flat fee
    assert price(charge, "10100") == D("105")
    assert price(charge, "10100.5") == D("107.25")


def test_spec_example_graduated_charge():
    charge = Charge(
        unit="api_calls",
        model=PricingModel.GRADUATED,
        included=D("10000"),
        tiers=(Tier(D("100000"), D("0.001")), Tier(None, D("0.0005"), D("10"))),
    )
    assert charge_amount(charge, D("0"), "EUR") == D("0.00")
    assert charge_amount(charge, D("110000"), "EUR") == D("100.00")
    assert charge_amount(charge, D("110001"), "EUR") == D("110.00")  # 100 + 0.0005 + 10 = 110.0005
    assert charge_amount(charge, D("210000"), "EUR") == D("160.00")


# --- volume -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("0", "5"), ("1", "6"), ("100", "105"), ("100.5", "52.25"), ("200", "102"), ("201", "21.1"), ("1000", "101")],
)
def test_volume_prices_all_units_at_the_tier_the_total_reaches(quantity, expected):
    assert price(VOLUME, quantity) == D(expected)


def test_volume_breakdown_is_the_single_tier():
    assert charge_breakdown(VOLUME, D("150")) == (TierDetail(1, D("200"), D("150"), D("0.50"), D("2"), D("77")),)


def test_volume_with_included_units():
    charge = Charge(unit="seats", model=PricingModel.VOLUME, included=D("5"), tiers=TIERS)
    assert price(charge, "3") == D("5")
    assert price(charge, "105") == D("105")
    assert price(charge, "106") == D("52.5")


# --- package ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("0", "0"), ("100", "0"), ("101", "9.99"), ("1100", "9.99"), ("1100.5", "19.98"), ("2100", "19.98"),
     ("2101", "29.97")],
)  # fmt: skip
def test_package_rounds_packages_up(quantity, expected):
    assert price(PACKAGE, quantity) == D(expected)


def test_package_with_a_fractional_size():
    charge = Charge(unit="gb", model=PricingModel.PACKAGE, package_size=D("0.5"), package_price=D("2"))
    assert price(charge, "1.2") == D("6")  # 3 packages
    assert price(charge, "1.5") == D("6")
    assert charge_breakdown(charge, D("1.2")) == (TierDetail(0, None, D("3"), D("2"), D("0"), D("6")),)


# --- rounding a line once ---------------------------------------------------------------------------------


def test_line_rounding_is_half_up_in_the_currency():
    half_cent = Charge(unit="a", model=PricingModel.PER_UNIT, unit_price=D("0.0125"))
    assert charge_price(half_cent, D("10")) == D("0.125")
    assert charge_amount(half_cent, D("10"), "EUR") == D("0.13")
    half_yen = Charge(unit="a", model=PricingModel.PER_UNIT, unit_price=D("0.5"))
    assert charge_amount(half_yen, D("5"), "JPY") == D("3")
    dinar = Charge(unit="a", model=PricingModel.PER_UNIT, unit_price=D("0.0005"))
    assert charge_amount(dinar, D("3"), "BHD") == D("0.002")  # 0.0015 BHD, three places
    assert str(charge_amount(dinar, D("3"), "BHD")) == "0.002"


def test_a_graduated_line_is_rounded_once_not_per_tier():
    tiers = (Tier(D("1"), D("0.004")), Tier(None, D("0.004")))
    charge = Charge(unit="a", model=PricingModel.GRADUATED, tiers=tiers)
    # Per tier: 0.004 -> 0.00 and 0.004 -> 0.00; the line: 0.008 -> 0.01.
    assert charge_amount(charge, D("2"), "EUR") == D("0.01")


# --- prepaid increments -----------------------------------------------------------------------------------


def test_incremental_charges_round_to_the_balance_quantum_and_telescope():
    tiny = Charge(unit="tokens", model=PricingModel.PER_UNIT, unit_price=D("0.0000001"))
    steps = [incremental_charge(tiny, D(n), D(n + 1)) for n in range(10)]
    assert steps[:4] == [D("0")] * 4
    assert steps[4] == D("0.000001")  # price(5) = 0.0000005 rounds up to 0.000001
    assert sum(steps) == D("0.000001")  # price(10) = 0.000001
    assert incremental_charge(GRADUATED, D("0"), D("100.5")) == D("102.25")  # 107.25 - 5
    assert incremental_charge(GRADUATED, D("100.5"), D("100")) == D("-2.25")  # a correction


# --- base fee ---------------------------------------------------------------------------------------------


NOVEMBER = Period(2026, 11)  # 30 days


@pytest.mark.parametrize(
    ("active_from", "active_until", "expected"),
    [(None, None, "49.00"),
     (date(2025, 1, 1), None, "49.00"),
     (date(2026, 11, 1), date(2026, 12, 1), "49.00"),
     (date(2026, 11, 16), None, "24.50"),  # 15 of 30 days
     (date(2026, 11, 11), None, "32.67"),  # 20/30 * 49 = 32.666...
     (None, date(2026, 11, 11), "16.33"),  # 10 days: active_until is exclusive
     (date(2026, 11, 5), date(2026, 11, 10), "8.17"),  # 5 days: 8.1666...
     (date(2026, 12, 1), None, "0.00"),
     (None, date(2026, 11, 1), "0.00"),
     (date(2026, 11, 20), date(2026, 11, 10), "0.00")],
)  # fmt: skip
def test_prorated_base_fee(active_from, active_until, expected):
    fee = prorated_base_fee(D("49.00"), "EUR", NOVEMBER, active_from, active_until)
    assert str(fee) == expected


def test_proration_rounds_half_up_once():
    assert prorated_base_fee(D("0.25"), "EUR", NOVEMBER, date(2026, 11, 16)) == D("0.13")  # 0.125
    assert prorated_base_fee(D("1000"), "JPY", Period(2026, 12), date(2026, 12, 31)) == D("32")  # 32.258
    assert str(prorated_base_fee(D("10"), "BHD", NOVEMBER, date(2026, 11, 30))) == "0.333"
    assert str(prorated_base_fee(D("0"), "EUR", NOVEMBER, date(2026, 11, 30))) == "0.00"


def test_active_days():
    assert active_days(Period(2026, 2)) == 28
    assert active_days(Period(2026, 2), date(2026, 2, 28)) == 1
    assert active_days(Period(2026, 2), None, date(2026, 2, 2)) == 1
    with pytest.raises(TypeError):
        active_days(Period(2026, 2), "2026-02-01")


# --- invoice lines ----------------------------------------------------------------------------------------


def test_usage_line_per_unit():
    line = usage_line(PER_UNIT, D("12.5"), "EUR")
    assert line == PriceLine(
        kind="usage",
        unit="storage_gb",
        description="storage_gb: 12.5 at 0.10 each",
        quantity=D("12.5"),
        amount=D("1.25"),
        unit_price=D("0.10"),
        tiers=(),
    )


def test_usage_line_graduated_carries_its_tiers():
    line = usage_line(GRADUATED, D("100.5"), "EUR", kind="correction", description="Correction")
    assert (line.kind, line.description, line.amount, line.unit_price) == ("correction", "Correction", D("107.25"), None)
    assert [tier.amount for tier in line.tiers] == [D("105"), D("2.25")]


def test_default_descriptions_of_other_models():
    assert usage_line(VOLUME, D("150"), "EUR").description == "seats: 150 at 0.50 each (volume tier 2) plus 2"
    assert usage_line(PACKAGE, D("1100.5"), "EUR").description == (
        "sms: 1100.5, 100 included, 1000.5 billable in 2 packages of 1000 at 9.99"
    )
    assert usage_line(VOLUME, D("150"), "EUR").tiers == ()


def test_base_fee_line_and_total():
    plan = Plan(code="pro", name="Pro", currency="EUR", base_fee=D("49.00"), charges=(PER_UNIT,))
    base = base_fee_line(plan, NOVEMBER, date(2026, 11, 16))
    assert base == PriceLine(
        kind="base_fee",
        unit=None,
        description="Base fee, Pro, 2026-11 (prorated: 15 of 30 days)",
        quantity=D("1"),
        amount=D("24.50"),
    )
    assert base_fee_line(plan, NOVEMBER).description == "Base fee, Pro, 2026-11"
    usage = usage_line(PER_UNIT, D("0.05"), "EUR")  # 0.005 -> 0.01
    assert str(lines_total([base, usage, usage], "EUR")) == "24.52"  # a sum of rounded lines
    assert str(lines_total([], "EUR")) == "0.00"


def test_quantities_must_be_decimals():
    with pytest.raises(TypeError):
        charge_price(PER_UNIT, 1.5)
    with pytest.raises(TypeError):
        prorated_base_fee(49.0, "EUR", NOVEMBER)


def test_a_charge_pricer_refuses_what_charge_amount_refuses():
    per_unit = Charge(unit="tokens", model=PricingModel.PER_UNIT, included=Decimal(10), unit_price=Decimal("0.015"))
    price = charge_pricer(per_unit, "EUR")
    assert price(Decimal(110)) == Decimal("1.50") and str(price(Decimal(3))) == "0.00"
    assert str(price(Decimal(210))) == "3.00"
    with pytest.raises(TypeError):
        price(1.5)
    with pytest.raises(InvalidInput):
        charge_pricer(per_unit, "EURO")
