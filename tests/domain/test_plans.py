"""Plan files: the SPEC's example, every pricing model, and the errors a plan author can make."""

import json
from decimal import Decimal
from textwrap import dedent

import pytest

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.plans import (
    Charge,
    Plan,
    PricingModel,
    Tier,
    load_plan_file,
    plan_from_dict,
    plan_from_text,
    plan_to_dict,
)

D = Decimal

SPEC_EXAMPLE = dedent(
    """\
    code = "pro"
    name = "Pro"
    currency = "EUR"
    base_fee = "49.00"

    [[charges]]
    unit = "api_calls"
    included = "10000"
    model = "graduated"
    tiers = [ { up_to = "100000", unit_price = "0.001" },
              { unit_price = "0.0005", flat_fee = "10" } ]   # no up_to: the open-ended last tier

    [[charges]]
    unit = "storage_gb"
    model = "per_unit"
    unit_price = "0.10"
    """
)

HEADER = 'code = "pro"\nname = "Pro"\ncurrency = "EUR"\nbase_fee = "49.00"\n'


def toml_plan(charges: str) -> str:
    return HEADER + dedent(charges)


def json_plan(**overrides) -> str:
    plan = {"code": "pro", "name": "Pro", "currency": "EUR", "base_fee": "49.00", "charges": []} | overrides
    return json.dumps(plan)


def error_of(text: str, fmt: str = "toml") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        plan_from_text(text, fmt)
    return caught.value


# --- reading good plans -----------------------------------------------------------------------------------


def test_spec_example_plan():
    plan = plan_from_text(SPEC_EXAMPLE, "toml")
    assert plan == Plan(
        code="pro",
        name="Pro",
        currency="EUR",
        base_fee=D("49.00"),
        charges=(
            Charge(
                unit="api_calls",
                model=PricingModel.GRADUATED,
                included=D("10000"),
                tiers=(Tier(D("100000"), D("0.001")), Tier(None, D("0.0005"), D("10"))),
            ),
            Charge(unit="storage_gb", model=PricingModel.PER_UNIT, unit_price=D("0.10")),
        ),
    )
    assert plan.interval == "month"
    assert plan.charge_for("storage_gb").unit_price == D("0.10")
    assert plan.charge_for("seats") is None


def test_spec_example_as_json_gives_the_same_plan():
    as_json = json.dumps(plan_to_dict(plan_from_text(SPEC_EXAMPLE, "toml")))
    assert plan_from_text(as_json, "json") == plan_from_text(SPEC_EXAMPLE, "toml")


def test_every_model_round_trips_through_a_dict():
    text = toml_plan(
        """
        [[charges]]
        unit = "seats"
        model = "volume"
        tiers = [ { up_to = "10", unit_price = "5", flat_fee = "1.5" }, { unit_price = "4" } ]

        [[charges]]
        unit = "sms"
        model = "package"
        included = 100
        package_size = "1000"
        package_price = "9.99"

        [[charges]]
        unit = "tokens"
        model = "per_unit"
        unit_price = "0.000000000001"
        """
    )
    plan = plan_from_text(text, "toml")
    as_dict = plan_to_dict(plan)
    assert plan_from_dict(json.loads(json.dumps(as_dict))) == plan
    assert as_dict["charges"][2]["unit_price"] == "0.000000000001"  # plain text, never 1E-12
    assert as_dict["charges"][0]["tiers"][1]["up_to"] is None
    assert as_dict["charges"][1] == {
        "unit": "sms", "model": "package", "included": "100", "package_size": "1000", "package_price": "9.99"
    }  # fmt: skip


def test_numbers_may_be_integers_and_base_fee_defaults_to_zero():
    plan = plan_from_text(
        '''{"code": "free", "name": "Free", "currency": "jpy",
            "charges": [{"unit": "api_calls", "model": "per_unit", "unit_price": 2, "included": 1000}]}''',
        "json",
    )
    assert plan.currency == "JPY"
    assert plan.base_fee == 0
    assert plan.charges[0].unit_price == 2 and plan.charges[0].included == 1000


def test_tier_with_only_a_flat_fee_and_json_null_up_to():
    plan = plan_from_text(
        json_plan(charges=[{"unit": "api_calls", "model": "graduated", "tiers": [
            {"up_to": "1000", "flat_fee": "20"}, {"up_to": None, "unit_price": "0.01"}]}]),
        "json",
    )  # fmt: skip
    first, last = plan.charges[0].tiers
    assert first == Tier(D("1000"), D(0), D("20"))
    assert last.up_to is None


def test_base_fee_keeps_its_written_places_but_not_more_than_the_currency():
    assert plan_from_text(json_plan(base_fee="1000.00", currency="JPY"), "json").base_fee == D("1000")
    assert str(plan_from_text(json_plan(base_fee="49.5"), "json").base_fee) == "49.5"
    error = error_of(json_plan(base_fee="49.999"), "json")
    assert error.field == "base_fee"
    assert error.problem == "has 3 decimal places; EUR amounts have at most 2"


# --- plan errors, each naming the path of the bad value -----------------------------------------------------


GRADUATED = """
    [[charges]]
    unit = "api_calls"
    model = "graduated"
    tiers = [ {tiers} ]
    """


@pytest.mark.parametrize(
    ("tiers", "field", "problem"),
    [
        # unsorted
        ('{ up_to = "200", unit_price = "1" }, { up_to = "100", unit_price = "1" }, { unit_price = "1" }',
         "charges[0].tiers[1].up_to", "must be greater than the previous tier's up_to (200), got 100"),
        # overlapping: two tiers with the same bound
        ('{ up_to = "100", unit_price = "1" }, { up_to = "100", unit_price = "1" }, { unit_price = "1" }',
         "charges[0].tiers[1].up_to", "tiers must be sorted by up_to and must not overlap"),
        # open-ended tier that is not the last
        ('{ unit_price = "1" }, { up_to = "100", unit_price = "1" }',
         "charges[0].tiers[0].up_to", "only the last tier may be open-ended"),
        # last tier bounded
        ('{ up_to = "100", unit_price = "1" }, { up_to = "200", unit_price = "1" }',
         "charges[0].tiers[1].up_to", "the last tier must be open-ended"),
        ('{ up_to = "0", unit_price = "1" }, { unit_price = "1" }', "charges[0].tiers[0].up_to", "must be positive"),
        ('{ up_to = "inf", unit_price = "1" }', "charges[0].tiers[0].up_to", "leave up_to out"),
        ('{ up_to = "10", unit_price = "-0.5" }, { unit_price = "1" }',
         "charges[0].tiers[0].unit_price", "must not be negative, got -0.5"),
        ('{ up_to = "10", unit_price = "1", flat_fee = "-5" }, { unit_price = "1" }',
         "charges[0].tiers[0].flat_fee", "must not be negative"),
        ('{ up_to = "10" }, { unit_price = "1" }', "charges[0].tiers[0]", "needs a unit_price, a flat_fee, or both"),
        ('{ up_to = "10", unit_price = "1", price = "2" }, { unit_price = "1" }',
         "charges[0].tiers[0].price", "is not a key of a tier"),
        ('{ up_to = "10", unit_price = "0.0000000000001" }, { unit_price = "1" }',
         "charges[0].tiers[0].unit_price", "has 13 decimal places; at most 12 allowed"),
        ('{ up_to = 10.5, unit_price = "1" }, { unit_price = "1" }',
         "charges[0].tiers[0].up_to", 'write prices as strings, e.g. "0.10"'),
        ("", "charges[0].tiers", "must be a non-empty list of tiers"),
    ],
)  # fmt: skip
def test_tier_errors(tiers, field, problem):
    error = error_of(toml_plan(GRADUATED.replace("{tiers}", tiers)))
    assert error.field == field
    assert problem in error.problem


def test_float_in_a_toml_file_is_refused_with_a_hint_to_quote_it():
    error = error_of(toml_plan('[[charges]]\nunit = "storage_gb"\nmodel = "per_unit"\nunit_price = 0.1\n'))
    assert error.field == "charges[0].unit_price"
    assert error.problem == 'is a binary floating-point number (0.1), which cannot hold prices exactly; write prices as strings, e.g. "0.10"'


def test_float_in_a_json_file_is_refused():
    error = error_of(json_plan(base_fee=49.0), "json")
    assert error.field == "base_fee"
    assert 'write prices as strings, e.g. "0.10"' in error.problem


@pytest.mark.parametrize(
    ("overrides", "field", "problem"),
    [
        ({"currency": "EURO"}, "currency", "three-letter ISO 4217 code"),
        ({"currency": "XYZ"}, "currency", "is not a known ISO 4217 currency: 'XYZ'"),
        ({"code": "Pro Plan"}, "code", "lowercase letter"),
        ({"name": "  "}, "name", "must not be empty"),
        ({"interval": "year"}, "interval", 'must be "month"'),
        ({"base_fee": "-1"}, "base_fee", "must not be negative, got -1"),
        ({"base_fee": "forty"}, "base_fee", "is not a number: 'forty'"),
        ({"base_fee": "NaN"}, "base_fee", "must be a finite number"),
        ({"base_fee": True}, "base_fee", "not a boolean"),
        ({"discount": "5"}, "discount", "is not a key of a plan"),
        ({"charges": {"unit": "x"}}, "charges", "must be a list of charges"),
        ({"charges": ["x"]}, "charges[0]", "must be a table of charge fields"),
    ],
)  # fmt: skip
def test_plan_level_errors(overrides, field, problem):
    error = error_of(json_plan(**overrides), "json")
    assert error.field == field
    assert problem in error.problem


def test_missing_required_fields():
    assert error_of('name = "Pro"\ncurrency = "EUR"').field == "code"
    assert str(error_of('code = "pro"\nname = "Pro"')) == "currency: is required"


@pytest.mark.parametrize(
    ("charge", "field", "problem"),
    [
        ({"unit": "a", "model": "per_unit"}, "charges[0].unit_price", "is required for the per_unit model"),
        ({"unit": "a", "model": "per_unit", "unit_price": "-1"}, "charges[0].unit_price", "must not be negative"),
        ({"unit": "a", "model": "per_unit", "unit_price": "1", "tiers": []},
         "charges[0].tiers", "does not apply to the per_unit model (it takes unit_price)"),
        ({"unit": "a", "model": "graduated", "unit_price": "1", "tiers": [{"unit_price": "1"}]},
         "charges[0].unit_price", "does not apply to the graduated model (it takes tiers)"),
        ({"unit": "a", "model": "volume"}, "charges[0].tiers", "is required for the volume model"),
        ({"unit": "a", "model": "package", "package_price": "5"}, "charges[0].package_size", "is required"),
        ({"unit": "a", "model": "package", "package_size": "0", "package_price": "5"},
         "charges[0].package_size", "must be positive"),
        ({"unit": "a", "model": "package", "package_size": "10", "package_price": "-5"},
         "charges[0].package_price", "must not be negative"),
        ({"unit": "a", "model": "tiered"}, "charges[0].model", "must be one of per_unit, graduated, volume, package"),
        ({"unit": "a"}, "charges[0].model", "is required"),
        ({"model": "per_unit", "unit_price": "1"}, "charges[0].unit", "is required"),
        ({"unit": "API", "model": "per_unit", "unit_price": "1"}, "charges[0].unit", "lowercase letter"),
        ({"unit": "a", "model": "per_unit", "unit_price": "1", "included": "-5"},
         "charges[0].included", "must not be negative"),
        ({"unit": "a", "model": "per_unit", "unit_price": "1", "include": "5"},
         "charges[0].include", "is not a key of a charge"),
    ],
)  # fmt: skip
def test_charge_errors(charge, field, problem):
    error = error_of(json_plan(charges=[charge]), "json")
    assert error.field == field
    assert problem in error.problem


def test_duplicate_charge_unit():
    text = toml_plan(
        """
        [[charges]]
        unit = "api_calls"
        model = "per_unit"
        unit_price = "0.01"

        [[charges]]
        unit = "api_calls"
        model = "package"
        package_size = "100"
        package_price = "1"
        """
    )
    error = error_of(text)
    assert error.field == "charges[1].unit"
    assert "'api_calls' already has a charge (charges[0])" in error.problem


def test_error_paths_count_charges_and_tiers():
    charges = [
        {"unit": "a", "model": "per_unit", "unit_price": "1"},
        {"unit": "b", "model": "graduated", "tiers": [{"up_to": "5", "unit_price": "1"}, {"up_to": "x", "unit_price": "1"}]},
    ]  # fmt: skip
    assert error_of(json_plan(charges=charges), "json").field == "charges[1].tiers[1].up_to"


def test_syntax_errors_are_file_errors():
    assert error_of('code = "pro"\nname = ', "toml").field == "file"
    json_error = error_of('{"code": "pro",', "json")
    assert json_error.field == "file"
    assert json_error.problem.startswith("is not valid JSON")
    assert error_of("[1, 2]", "json").field == "file"
    assert error_of("code: pro", "yaml").field == "file"


def test_duplicate_json_keys_are_refused():
    error = error_of('{"code": "pro", "name": "Pro", "currency": "EUR", "base_fee": "1", "base_fee": "2"}', "json")
    assert str(error) == "file: has the key 'base_fee' twice in one JSON object"


# --- files ------------------------------------------------------------------------------------------------


def test_load_plan_file_by_extension_and_by_sniffing(tmp_path):
    toml_file = tmp_path / "pro.toml"
    toml_file.write_text(SPEC_EXAMPLE, encoding="utf-8")
    json_file = tmp_path / "pro.json"
    json_file.write_text(json.dumps(plan_to_dict(load_plan_file(toml_file))), encoding="utf-8")
    sniffed_json = tmp_path / "pro.plan"
    sniffed_json.write_bytes(b"\xef\xbb\xbf" + json_file.read_bytes())  # with a byte-order mark
    sniffed_toml = tmp_path / "pro.txt"
    sniffed_toml.write_text(SPEC_EXAMPLE, encoding="utf-8")
    expected = plan_from_text(SPEC_EXAMPLE, "toml")
    for path in (toml_file, json_file, sniffed_json, sniffed_toml, str(toml_file)):
        assert load_plan_file(path) == expected


def test_unreadable_plan_files(tmp_path):
    with pytest.raises(InvalidInput, match="^file: cannot read"):
        load_plan_file(tmp_path / "missing.toml")
    with pytest.raises(InvalidInput, match="^file: cannot read"):
        load_plan_file(tmp_path)
    binary = tmp_path / "plan.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidInput, match="is not UTF-8 text"):
        load_plan_file(binary)
    wrong_content = tmp_path / "plan.json"
    wrong_content.write_text(SPEC_EXAMPLE, encoding="utf-8")
    with pytest.raises(InvalidInput, match="^file: is not valid JSON"):
        load_plan_file(wrong_content)


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (HEADER.replace('"EUR"', '"EURO"'), "currency", "three-letter ISO 4217 code"),
        (HEADER.replace('"EUR"', '"ZZZ"'), "currency", "is not a known ISO 4217 currency: 'ZZZ'"),
        (HEADER + 'billing_day = 1\n', "billing_day", "is not a key of a plan"),
        (HEADER.replace('"49.00"', '-49'), "base_fee", "must not be negative"),
        (HEADER + '[[charges]]\nunit = "a"\nmodel = "per_unit"\nunit_price = "1"\nfoo = "x"\n',
         "charges[0].foo", "is not a key of a charge"),
    ],
)  # fmt: skip
def test_plan_errors_in_toml_text(text, field, problem):
    error = error_of(text, "toml")
    assert error.field == field
    assert problem in error.problem
