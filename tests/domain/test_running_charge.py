"""The one prepaid pricer: every entry is charged the domain's incremental charge, and the charges of any
sequence of entries add up to the price of the final total, with or without the integer pricer."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from meterdesk.domain.money import round_balance
from meterdesk.domain.plans import plan_from_dict
from meterdesk.domain.pricing import RunningCharge, balance_micros_pricer, charge_price, incremental_charge

D = Decimal


def _charge(model: dict):
    plan = plan_from_dict({"code": "p", "name": "P", "currency": "EUR", "base_fee": "0", "charges": [{"unit": "u", **model}]})
    return plan.charge_for("u")


CHARGES = {
    "per unit": _charge({"model": "per_unit", "unit_price": "0.0013", "included": "40"}),
    "per unit, finer allowance than the unit": _charge({"model": "per_unit", "unit_price": "0.1", "included": "0.5"}),
    "graduated": _charge({"model": "graduated", "included": "25", "tiers": [
        {"up_to": "60", "unit_price": "0.011"}, {"up_to": "150", "unit_price": "0.0037", "flat_fee": "0.5"},
        {"unit_price": "0.0013", "flat_fee": "0.25"}]}),
    "volume": _charge({"model": "volume", "tiers": [
        {"up_to": "40", "unit_price": "0.2"}, {"up_to": "200", "unit_price": "0.07", "flat_fee": "3"},
        {"unit_price": "0.03", "flat_fee": "9"}]}),
    "package": _charge({"model": "package", "package_size": "7", "package_price": "1.00"}),
    "package of a fractional size": _charge({"model": "package", "package_size": "2.5", "package_price": "1"}),
}


def _micros(amount: Decimal) -> int:
    return int(amount.scaleb(6))


@pytest.mark.parametrize("name", sorted(CHARGES))
@pytest.mark.parametrize("scale", [0, 3])
def test_each_move_costs_the_incremental_charge_and_the_moves_telescope(name, scale):
    charge = CHARGES[name]
    rng = random.Random(f"{name}-{scale}")
    running = RunningCharge(charge, scale, 0)
    total, charged = 0, 0
    for _ in range(300):
        after = max(0, total + rng.randint(-3 * 10**scale, 9 * 10**scale))  # corrections move it down
        expected = incremental_charge(charge, D(total).scaleb(-scale), D(after).scaleb(-scale))
        assert running.charge_to(after) == _micros(expected)
        charged += running.move_to(after)
        total = after
        assert running.total == total
    assert charged == _micros(round_balance(charge_price(charge, D(total).scaleb(-scale))))


def test_the_integer_pricer_is_used_where_the_charge_allows_and_the_domain_elsewhere():
    assert balance_micros_pricer(CHARGES["volume"], 0) is not None
    assert balance_micros_pricer(CHARGES["package of a fractional size"], 0) is None
    assert RunningCharge(CHARGES["package of a fractional size"], 0, 6).price == 3_000_000


def test_a_unit_nothing_prices_costs_nothing_and_still_keeps_its_total():
    running = RunningCharge(None, 0, 5)
    assert running.move_to(12) == 0
    assert running.total == 12 and running.price == 0


def test_starting_from_a_recorded_total_charges_only_what_comes_after():
    charge = CHARGES["graduated"]
    running = RunningCharge(charge, 0, 100)
    assert running.move_to(170) == _micros(incremental_charge(charge, D(100), D(170)))
