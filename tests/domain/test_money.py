"""Money: currencies and their minor units, parsing decimals from input, rounding, and the Money value."""

from decimal import Decimal

import pytest

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.money import (
    BALANCE_QUANTUM,
    CURRENCY_EXPONENTS,
    CurrencyMismatch,
    Money,
    currency_exponent,
    decimal_places,
    format_decimal,
    from_minor_units,
    parse_decimal,
    round_balance,
    round_money,
    to_minor_units,
    validate_currency,
)

D = Decimal


# --- currencies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("EUR", 2), ("USD", 2), ("GBP", 2), ("JPY", 0), ("KRW", 0), ("CLP", 0), ("XOF", 0),
     ("BHD", 3), ("KWD", 3), ("TND", 3), ("JOD", 3), ("IQD", 3), ("CLF", 4), ("UYW", 4)],
)  # fmt: skip
def test_currency_exponents(code, exponent):
    assert currency_exponent(code) == exponent


def test_currency_list_is_the_active_iso_list():
    assert len(CURRENCY_EXPONENTS) > 150
    assert all(len(code) == 3 and code.isupper() for code in CURRENCY_EXPONENTS)
    assert set(CURRENCY_EXPONENTS.values()) == {0, 2, 3, 4}
    # Withdrawn codes and units without a minor unit are not billable currencies.
    for code in ("DEM", "HRK", "XAU", "XDR", "XXX", "XTS"):
        assert code not in CURRENCY_EXPONENTS


def test_currency_codes_are_normalised_to_upper_case():
    assert validate_currency("eur") == "EUR"
    assert validate_currency(" usd ") == "USD"


@pytest.mark.parametrize("code", ["EURO", "E1R", "", "€", "XYZ", "DEM"])
def test_unknown_or_malformed_currencies_are_refused(code):
    with pytest.raises(InvalidInput) as caught:
        currency_exponent(code)
    assert caught.value.field == "currency"


def test_currency_must_be_text():
    with pytest.raises(InvalidInput, match="currency: must be a three-letter ISO 4217 code"):
        validate_currency(978)


# --- parse_decimal ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [("12.50", "12.50"), (" 7 ", "7"), (42, "42"), (D("0.1"), "0.1"), ("-3.5", "-3.5"), ("+2", "2"),
     ("1e3", "1000"), ("1.5E2", "150"), ("2.5e-2", "0.025"), (".5", "0.5"), ("5.", "5")],
)  # fmt: skip
def test_parse_decimal_accepts_text_ints_and_decimals(given, expected):
    result = parse_decimal(given, "amount")
    assert isinstance(result, Decimal)
    assert format_decimal(result) == expected


def test_parse_decimal_writes_exponents_out():
    assert str(parse_decimal("1e3", "amount")) == "1000"  # not "1E+3"


@pytest.mark.parametrize("given", ["-0", "-0.00", D("-0"), "0e-99999"])
def test_negative_zero_becomes_zero(given):
    result = parse_decimal(given, "amount")
    assert result == 0
    assert not result.is_signed()


@pytest.mark.parametrize("given", [0.1, 1.0, float("nan")])
def test_parse_decimal_refuses_floats(given):
    with pytest.raises(InvalidInput) as caught:
        parse_decimal(given, "unit_price")
    assert str(caught.value) == "unit_price: must be given as a decimal string, not a binary float"


@pytest.mark.parametrize("given", [True, False])
def test_parse_decimal_refuses_booleans(given):
    with pytest.raises(InvalidInput, match="amount: must be a number, not a boolean"):
        parse_decimal(given, "amount")


@pytest.mark.parametrize("given", ["abc", "", "   ", "1,5", "1_000", "١٢", "0x10", "1e", "--1", "1 2"])
def test_parse_decimal_refuses_text_that_is_not_a_number(given):
    with pytest.raises(InvalidInput) as caught:
        parse_decimal(given, "amount")
    assert caught.value.field == "amount"
    assert caught.value.problem.startswith("is not a number: ")


def test_parse_decimal_error_quotes_the_input():
    with pytest.raises(InvalidInput) as caught:
        parse_decimal("abc", "amount")
    assert str(caught.value) == "amount: is not a number: 'abc'"


@pytest.mark.parametrize("given", ["NaN", "nan", "sNaN", "inf", "-Infinity", D("NaN"), D("Infinity")])
def test_parse_decimal_refuses_nan_and_infinity(given):
    with pytest.raises(InvalidInput, match="amount: must be a finite number"):
        parse_decimal(given, "amount")


@pytest.mark.parametrize("given", [None, [1], {"a": 1}, b"12"])
def test_parse_decimal_refuses_other_types(given):
    with pytest.raises(InvalidInput) as caught:
        parse_decimal(given, "amount")
    assert caught.value.field == "amount"


def test_parse_decimal_limits_places_but_drops_extra_trailing_zeros():
    assert parse_decimal("0.10", "price", max_places=2) == D("0.10")
    assert str(parse_decimal("5.000", "amount", max_places=0)) == "5"
    assert str(parse_decimal("1.2300", "amount", max_places=3)) == "1.230"
    with pytest.raises(InvalidInput) as caught:
        parse_decimal("1.234", "amount", max_places=2)
    assert str(caught.value) == "amount: has 3 decimal places; at most 2 allowed"


def test_parse_decimal_bounds_name_the_field():
    with pytest.raises(InvalidInput, match="^amount: must be positive, got 0$"):
        parse_decimal("0", "amount", minimum=D(0), exclusive_minimum=True)
    with pytest.raises(InvalidInput, match="^fee: must not be negative, got -1$"):
        parse_decimal("-1", "fee", minimum=D(0))
    with pytest.raises(InvalidInput, match="^size: must be at least 2, got 1$"):
        parse_decimal("1", "size", minimum=D(2))
    with pytest.raises(InvalidInput, match="^size: must be greater than 2, got 2$"):
        parse_decimal("2", "size", minimum=D(2), exclusive_minimum=True)
    with pytest.raises(InvalidInput, match="^amount: must be at most 1000000000000000, got 1000000000000001$"):
        parse_decimal("1000000000000001", "amount", maximum=D(10) ** 15)
    assert parse_decimal("0", "fee", minimum=D(0)) == 0
    assert parse_decimal(str(10**15), "amount", maximum=D(10) ** 15) == 10**15


def test_parse_decimal_refuses_absurd_magnitudes():
    with pytest.raises(InvalidInput, match="amount: is too large"):
        parse_decimal("1e400", "amount")
    with pytest.raises(InvalidInput, match="amount: has too many decimal places"):
        parse_decimal("1e-400", "amount")


def test_decimal_places_ignores_trailing_zeros():
    assert decimal_places(D("5.000")) == 0
    assert decimal_places(D("0.10")) == 1
    assert decimal_places(D("0.00")) == 0
    assert decimal_places(D("1E+3")) == 0
    assert decimal_places(D("0.000001")) == 6


def test_format_decimal_never_uses_exponent_notation():
    assert format_decimal(D("1E+3")) == "1000"
    assert format_decimal(D("1E-12")) == "0.000000000001"
    assert format_decimal(D("-0.00")) == "0.00"
    assert format_decimal(D("12.50")) == "12.50"
    with pytest.raises(TypeError):
        format_decimal(1.5)


# --- rounding ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [("0.125", "EUR", "0.13"), ("0.124", "EUR", "0.12"), ("0.135", "EUR", "0.14"), ("12.5", "EUR", "12.50"),
     ("-0.125", "EUR", "-0.13"), ("2.5", "JPY", "3"), ("3.5", "JPY", "4"), ("2.4999", "JPY", "2"),
     ("1.0005", "BHD", "1.001"), ("1.0004", "BHD", "1.000"), ("0.00005", "CLF", "0.0001"),
     ("-0.001", "EUR", "0.00")],
)  # fmt: skip
def test_round_money_is_half_up_at_the_minor_unit(amount, currency, expected):
    rounded = round_money(D(amount), currency)
    assert str(rounded) == expected  # quantized: the exponent is the currency's, never "-0.00"


def test_round_money_refuses_floats():
    with pytest.raises(TypeError):
        round_money(0.125, "EUR")


def test_round_balance_keeps_six_places():
    assert BALANCE_QUANTUM == D("0.000001")
    assert str(round_balance(D("0.0000005"))) == "0.000001"
    assert str(round_balance(D("0.00000049"))) == "0.000000"
    assert str(round_balance(D("12"))) == "12.000000"


def test_minor_units_round_trip():
    assert to_minor_units(D("12.50"), "EUR") == 1250
    assert to_minor_units(D("12.5"), "EUR") == 1250
    assert to_minor_units(D("1000"), "JPY") == 1000
    assert to_minor_units(D("1.234"), "BHD") == 1234
    assert to_minor_units(D("-3.10"), "USD") == -310
    assert from_minor_units(1250, "EUR") == D("12.50") and str(from_minor_units(1250, "EUR")) == "12.50"
    assert str(from_minor_units(5, "BHD")) == "0.005"
    assert str(from_minor_units(7, "JPY")) == "7"
    assert str(from_minor_units(0, "EUR")) == "0.00"


def test_to_minor_units_refuses_an_unrounded_amount():
    with pytest.raises(ValueError, match="not a whole number of minor units"):
        to_minor_units(D("0.125"), "EUR")
    with pytest.raises(TypeError):
        from_minor_units(12.0, "EUR")
    with pytest.raises(TypeError):
        from_minor_units(True, "EUR")


# --- Money ------------------------------------------------------------------------------------------------


def test_money_arithmetic_is_exact():
    price = Money(D("0.1"), "EUR")
    assert price + price + price == Money(D("0.3"), "EUR")
    assert Money(D("10"), "EUR") - Money(D("0.01"), "EUR") == Money(D("9.99"), "EUR")
    assert -Money(D("5"), "EUR") == Money(D("-5"), "EUR")
    assert Money(D("0.001"), "EUR") * 3 == Money(D("0.003"), "EUR")
    assert D("1.5") * Money(D("2"), "USD") == Money(D("3.0"), "USD")
    assert Money(D("12.345"), "EUR").rounded() == Money(D("12.35"), "EUR")


def test_money_from_int_and_str():
    assert Money(5, "eur") == Money(D("5.00"), "EUR")
    assert Money(5, "EUR").amount.__class__ is Decimal
    assert str(Money(D("12.50"), "EUR")) == "12.50 EUR"
    assert str(Money.zero("EUR")) == "0.00 EUR"
    assert str(Money.zero("JPY")) == "0 JPY"
    assert str(Money(D("-0.00"), "EUR")) == "0.00 EUR"


def test_money_compares_within_one_currency():
    small, large = Money(D("1.00"), "EUR"), Money(D("2"), "EUR")
    assert small < large and small <= large and large > small and large >= small
    assert Money(D("1.0"), "EUR") == Money(D("1.00"), "EUR")
    assert hash(Money(D("1.0"), "EUR")) == hash(Money(D("1.00"), "EUR"))
    assert Money(D("1"), "EUR") != Money(D("1"), "USD")
    assert sorted([large, small]) == [small, large]


@pytest.mark.parametrize("amount", [0.1, 1.0, "1.00", None, True])
def test_money_refuses_anything_but_decimal_or_int(amount):
    with pytest.raises(TypeError):
        Money(amount, "EUR")


def test_money_refuses_float_operands():
    money = Money(D("1"), "EUR")
    with pytest.raises(TypeError):
        money * 1.5
    with pytest.raises(TypeError):
        1.5 * money
    with pytest.raises(TypeError):
        money + 1.5
    with pytest.raises(TypeError):
        money - 0.5
    with pytest.raises(TypeError):
        money < 2.0
    with pytest.raises(TypeError):
        money * money


@pytest.mark.parametrize(
    "operation",
    [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a < b, lambda a, b: a >= b],
)
def test_cross_currency_arithmetic_is_an_error(operation):
    with pytest.raises(CurrencyMismatch) as caught:
        operation(Money(D("1"), "EUR"), Money(D("1"), "USD"))
    assert caught.value.field == "currency"
    assert isinstance(caught.value, InvalidInput)
    assert "EUR" in caught.value.problem and "USD" in caught.value.problem


def test_money_refuses_unknown_currency_and_non_finite_amounts():
    with pytest.raises(InvalidInput, match="currency"):
        Money(D("1"), "ABC")
    with pytest.raises(InvalidInput, match="amount: must be a finite number"):
        Money(D("NaN"), "EUR")


def test_money_is_frozen():
    money = Money(D("1"), "EUR")
    with pytest.raises(AttributeError):
        money.amount = D("2")
