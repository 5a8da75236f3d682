"""Units, usage amounts and request ids: what the ledger accepts, and the messages when it does not."""

from decimal import Decimal

import pytest

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.units import (
    MAX_AMOUNT,
    MAX_UNIT_DECIMALS,
    UNIT_CODE_RE,
    Aggregation,
    Unit,
    validate_correction_amount,
    validate_request_id,
    validate_unit_code,
    validate_usage_amount,
)

D = Decimal
TOKENS = Unit("tokens", "Tokens")
STORAGE = Unit("storage_gb", "Storage (GB)", decimals=3)


def test_constants():
    assert MAX_AMOUNT == D("1000000000000000")
    assert MAX_UNIT_DECIMALS == 6
    assert UNIT_CODE_RE.fullmatch("api_calls")


# --- units ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["a", "api_calls", "tokens", "seconds", "gpu_h100_minutes", "a" * 40])
def test_valid_unit_codes(code):
    assert validate_unit_code(code) == code


@pytest.mark.parametrize("code", ["", "Api", "1calls", "_calls", "api-calls", "api calls", "a" * 41, "tökens", " a"])
def test_invalid_unit_codes_are_refused(code):
    with pytest.raises(InvalidInput) as caught:
        validate_unit_code(code)
    assert caught.value.field == "code"
    assert "a lowercase letter, then lowercase letters, digits or underscores" in caught.value.problem


def test_unit_defaults():
    unit = Unit("api_calls", "API calls")
    assert unit.decimals == 0
    assert unit.aggregation is Aggregation.SUM


def test_unit_aggregation_may_be_given_as_text():
    assert Unit("seats", "Seats", aggregation="max").aggregation is Aggregation.MAX
    assert Unit("jobs", "Jobs", aggregation="COUNT").aggregation is Aggregation.COUNT
    assert Aggregation("sum") == "sum"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"code": "Bad"}, "code"), ({"name": "  "}, "name"), ({"name": 5}, "name"), ({"name": "a\nb"}, "name"),
     ({"decimals": 7}, "decimals"), ({"decimals": -1}, "decimals"), ({"decimals": True}, "decimals"),
     ({"decimals": "2"}, "decimals"), ({"aggregation": "avg"}, "aggregation"), ({"aggregation": 1}, "aggregation")],
)  # fmt: skip
def test_unit_validation_names_the_field(kwargs, field):
    arguments = {"code": "tokens", "name": "Tokens"} | kwargs
    with pytest.raises(InvalidInput) as caught:
        Unit(**arguments)
    assert caught.value.field == field


def test_unit_name_is_stripped_and_unit_is_frozen():
    unit = Unit("tokens", "  Tokens ")
    assert unit.name == "Tokens"
    with pytest.raises(AttributeError):
        unit.decimals = 2


def test_aggregation_error_lists_the_choices():
    with pytest.raises(InvalidInput, match="^aggregation: must be one of sum, count, max; got 'avg'$"):
        Unit("tokens", "Tokens", aggregation="avg")


# --- usage amounts ----------------------------------------------------------------------------------------


def test_usage_amounts_within_the_unit_places():
    assert validate_usage_amount(TOKENS, "5") == 5
    assert validate_usage_amount(TOKENS, 5) == 5
    assert validate_usage_amount(STORAGE, "1.25") == D("1.25")
    assert validate_usage_amount(STORAGE, D("0.001")) == D("0.001")
    assert validate_usage_amount(TOKENS, str(10**15)) == MAX_AMOUNT


def test_trailing_zeros_beyond_the_unit_places_are_fine():
    assert str(validate_usage_amount(TOKENS, "5.000")) == "5"
    assert str(validate_usage_amount(STORAGE, "1.50000")) == "1.500"
    assert str(validate_usage_amount(STORAGE, "1.5")) == "1.5"


def test_too_many_places_names_the_unit():
    with pytest.raises(InvalidInput) as caught:
        validate_usage_amount(TOKENS, "1.234")
    assert str(caught.value) == "amount: has 3 decimal places; unit 'tokens' allows 0"
    with pytest.raises(InvalidInput, match="^amount: has 4 decimal places; unit 'storage_gb' allows 3$"):
        validate_usage_amount(STORAGE, "0.0001")


@pytest.mark.parametrize(
    ("value", "problem"),
    [("0", "must be positive"), ("-1", "must be positive"), ("-0", "must be positive"),
     ("1000000000000000.5", "must be at most 1000000000000000"), ("1e16", "must be at most"),
     ("NaN", "must be a finite number"), ("Infinity", "must be a finite number"), ("ten", "is not a number: 'ten'"),
     ("", "is not a number"), (1.5, "not a binary float"), (None, "is missing")],
)  # fmt: skip
def test_bad_usage_amounts(value, problem):
    with pytest.raises(InvalidInput) as caught:
        validate_usage_amount(STORAGE, value, field="amount")
    assert caught.value.field == "amount"
    assert problem in caught.value.problem


def test_usage_amount_field_name_is_the_callers():
    with pytest.raises(InvalidInput, match="^line 3 amount: must be positive"):
        validate_usage_amount(TOKENS, "0", field="line 3 amount")


def test_correction_amount_may_be_zero():
    assert validate_correction_amount(TOKENS, "0") == 0
    assert validate_correction_amount(TOKENS, "12") == 12
    with pytest.raises(InvalidInput, match="^new_amount: must not be negative, got -1$"):
        validate_correction_amount(TOKENS, "-1")
    with pytest.raises(InvalidInput, match="^new_amount: has 1 decimal place; unit 'tokens' allows 0$"):
        validate_correction_amount(TOKENS, "0.5")


# --- request ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["r", "req-2026-11-03-0001", "a b", "x" * 255, "ünïcödé-✓", "correction-ish", "x correction:1"])
def test_valid_request_ids_are_kept_exactly(value):
    assert validate_request_id(value) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "must not be empty"), ("   ", "must not begin or end with a space"), (" padded", "must not begin or end"),
     ("padded ", "must not begin or end"), ("correction:1:reversal", "keeps those for the entries of corrections"),
     ("\u00a0nbsp", "printable"), ("x" * 256, "is 256 characters long"),
     ("a\nb", "printable"), ("tab\there", "printable"), ("nul\x00", "printable"), ("\u200b", "printable"),
     (42, "must be text"), (None, "must be text")],
)  # fmt: skip
def test_invalid_request_ids(value, problem):
    with pytest.raises(InvalidInput) as caught:
        validate_request_id(value)
    assert caught.value.field == "request_id"
    assert problem in caught.value.problem


from hypothesis import given, strategies as st


@given(
    whole=st.integers(min_value=0, max_value=10**15),
    fraction=st.text(alphabet="0123456789", max_size=6),
    decimals=st.integers(min_value=0, max_value=6),
)
def test_the_fast_path_for_plain_amounts_agrees_with_the_general_parser(whole, fraction, decimals):
    """Plain strings take a shortcut in validate_usage_amount; its answer must be the parser's, exactly."""
    from decimal import Decimal

    from meterdesk.domain.errors import InvalidInput
    from meterdesk.domain.units import Unit, validate_usage_amount

    unit = Unit("metered", "Metered", decimals)
    text = f"{whole}.{fraction}" if fraction else str(whole)
    try:
        expected = validate_usage_amount(unit, Decimal(text))  # not a str: the general parser
    except InvalidInput as error:
        expected = ("refused", error.field)
    try:
        actual = validate_usage_amount(unit, text)
    except InvalidInput as error:
        actual = ("refused", error.field)
    assert actual == expected
    if not isinstance(actual, tuple):
        assert str(actual) == str(expected)


@given(
    text=st.one_of(
        st.from_regex(r"\A[0-9]{1,17}(\.[0-9]{0,7})?\Z"),
        st.text(alphabet="0123456789.\u0665\uff15\u09e8\U0001d7d3 e+-_", min_size=1, max_size=12),
    ),
    decimals=st.integers(min_value=0, max_value=6),
)
def test_plain_quantity_is_the_amount_parsers_reading(text, decimals):
    """`plain_quantity` (the imports' reading of a plain amount, without a Decimal) answers exactly what
    validate_usage_amount answers, scaled by the unit's decimals, or leaves the text to it (None)."""
    from meterdesk.domain.units import Unit, plain_quantity

    found = plain_quantity(text, decimals)
    if found is None:
        return
    assert validate_usage_amount(Unit("metered", "Metered", decimals), text).scaleb(decimals) == found


@pytest.mark.parametrize("text", ["\u0665", "\uff15", "1\u0665", "1.\u0665", "\u09e8.5", "\U0001d7d3", "\u0665\u0660"])
def test_amounts_are_written_with_ascii_digits_only(text):
    """SPEC 2: Decimal() and int() would read these as numbers; an amount is refused on every path."""
    from meterdesk.domain.units import plain_quantity

    assert plain_quantity(text, 3) is None
    with pytest.raises(InvalidInput, match="^amount: is not a number"):
        validate_usage_amount(STORAGE, text)
