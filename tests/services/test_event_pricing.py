"""The integer pricing of per-unit charges that recording one event uses agrees with the domain's pricing."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from meterdesk.domain.money import round_balance
from meterdesk.domain.plans import plan_from_dict
from meterdesk.domain.pricing import charge_price
from meterdesk.domain.units import Aggregation, Unit
from meterdesk.services.events import _per_unit_micros, _per_unit_terms
from meterdesk.store.codec import decode_quantity, encode_money
from meterdesk.store.queries import UnitRow


def _charge(model: dict):
    plan = plan_from_dict({"code": "p", "name": "P", "currency": "EUR", "base_fee": "0", "charges": [{"unit": "u", **model}]})
    return plan.charge_for("u")


def _domain_micros(charge, unit: UnitRow, total: int) -> int:
    decimals = unit.unit.decimals
    quantity = Decimal(total) if unit.unit.aggregation is Aggregation.COUNT else decode_quantity(total, decimals)
    return encode_money(round_balance(charge_price(charge, quantity)))


@pytest.mark.parametrize("seed", range(4))
def test_per_unit_micros_match_the_domain_price_rounded_to_the_balance_quantum(seed):
    rng = random.Random(seed)
    for _ in range(500):
        aggregation = rng.choice(list(Aggregation))
        decimals = rng.randint(0, 6)
        unit = UnitRow(1, Unit("u", "U", decimals, aggregation))
        places = 0 if aggregation is Aggregation.COUNT else rng.randint(0, decimals)
        charge = _charge({
            "model": "per_unit",
            "unit_price": str(Decimal(rng.randint(0, 10**8)).scaleb(-rng.randint(0, 12))),
            "included": str(Decimal(rng.randint(0, 10**6)).scaleb(-places)),
        })
        terms = _per_unit_terms(charge, unit)
        assert terms is not None
        for total in [0, rng.randint(0, 10**4), rng.randint(0, 10**12), int(charge.included.scaleb(places if places else 0))]:
            assert _per_unit_micros(terms, total) == _domain_micros(charge, unit, total), (charge, total)


def test_other_models_and_finer_included_quantities_are_left_to_the_domain():
    whole = UnitRow(1, Unit("u", "U", 0, Aggregation.SUM))
    assert _per_unit_terms(_charge({"model": "package", "package_size": "10", "package_price": "1"}), whole) is None
    assert _per_unit_terms(_charge({"model": "graduated", "tiers": [{"unit_price": "0.1"}]}), whole) is None
    assert _per_unit_terms(None, whole) is None
    assert _per_unit_terms(_charge({"model": "per_unit", "unit_price": "0.1", "included": "0.5"}), whole) is None
