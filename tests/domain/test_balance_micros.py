"""The integer prepaid pricer a bulk import uses agrees with the domain's pricing, digit for digit."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from meterdesk.domain.money import round_balance
from meterdesk.domain.plans import plan_from_dict
from meterdesk.domain.pricing import balance_micros_pricer, charge_price

MODELS = ("per_unit", "graduated", "volume", "package")


def _charge(model: dict):
    plan = plan_from_dict({"code": "p", "name": "P", "currency": "EUR", "base_fee": "0", "charges": [{"unit": "u", **model}]})
    return plan.charge_for("u")


def _decimal(rng: random.Random, digits: int, places: int) -> str:
    return str(Decimal(rng.randint(0, 10**digits)).scaleb(-places))


def _random_charge(rng: random.Random, decimals: int) -> dict:
    model = rng.choice(MODELS)
    places = rng.randint(0, decimals)
    charge: dict = {"model": model, "included": _decimal(rng, 4, places) if rng.random() < 0.5 else "0"}
    if model == "per_unit":
        charge["unit_price"] = _decimal(rng, 8, rng.randint(0, 12))
    elif model == "package":
        charge["package_size"] = str(Decimal(rng.randint(1, 10**4)).scaleb(-places))
        charge["package_price"] = _decimal(rng, 6, rng.randint(0, 8))
    else:
        bound, tiers = Decimal(0), []
        for _ in range(rng.randint(0, 3)):
            bound += Decimal(rng.randint(1, 10**5)).scaleb(-places)
            tiers.append({"up_to": str(bound), "unit_price": _decimal(rng, 6, rng.randint(0, 9)),
                          "flat_fee": _decimal(rng, 4, rng.randint(0, 3)) if rng.random() < 0.3 else "0"})
        tiers.append({"unit_price": _decimal(rng, 6, rng.randint(0, 9)),
                      "flat_fee": _decimal(rng, 4, rng.randint(0, 3)) if rng.random() < 0.3 else "0"})
        charge["tiers"] = tiers
    return charge


def _domain_micros(charge, total: int, decimals: int) -> int:
    return int(round_balance(charge_price(charge, Decimal(total).scaleb(-decimals))).scaleb(6))


@pytest.mark.parametrize("seed", range(6))
def test_the_integer_pricer_matches_the_domain_price_rounded_to_the_balance_quantum(seed):
    rng = random.Random(seed)
    priced = dict.fromkeys(MODELS, 0)
    for _ in range(400):
        decimals = rng.randint(0, 6)
        charge = _charge(_random_charge(rng, decimals))
        pricer = balance_micros_pricer(charge, decimals)
        assert pricer is not None, charge
        bounds = [int(t.up_to.scaleb(decimals)) for t in charge.tiers if t.up_to is not None]
        totals = [0, 1, rng.randint(0, 10**4), rng.randint(0, 10**9), rng.randint(0, 10**13)]
        totals += [b + delta for b in bounds for delta in (-1, 0, 1) if b + delta >= 0]
        totals.append(int(charge.included.scaleb(decimals)))
        for total in totals:
            assert pricer(total) == _domain_micros(charge, total, decimals), (charge, total)
        priced[charge.model.value] += 1
    assert all(priced.values()), priced  # every model was exercised


def test_terms_finer_than_the_quantity_are_left_to_the_domain():
    assert balance_micros_pricer(_charge({"model": "per_unit", "unit_price": "0.1", "included": "0.5"}), 0) is None
    assert balance_micros_pricer(_charge({"model": "package", "package_size": "2.5", "package_price": "1"}), 0) is None
    tiers = [{"up_to": "10.5", "unit_price": "1"}, {"unit_price": "0.5"}]
    assert balance_micros_pricer(_charge({"model": "graduated", "tiers": tiers}), 0) is None
    assert balance_micros_pricer(_charge({"model": "graduated", "tiers": tiers}), 1) is not None
