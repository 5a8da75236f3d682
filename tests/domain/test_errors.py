"""The error types: what the CLI shows and which exit status it uses."""

import pickle

import pytest

from meterdesk.domain.errors import Conflict, InvalidInput, MeterdeskError, NotFound, Unavailable, quote_input
from meterdesk.domain.money import CurrencyMismatch


@pytest.mark.parametrize(
    ("error_type", "status"),
    [(MeterdeskError, 1), (InvalidInput, 3), (CurrencyMismatch, 3), (Conflict, 4), (NotFound, 5), (Unavailable, 6)],
)
def test_exit_status_follows_the_cli_contract(error_type, status):
    assert error_type.exit_status == status
    assert issubclass(error_type, MeterdeskError)


def test_invalid_input_names_field_and_problem():
    error = InvalidInput("amount", "must be positive, got -5")
    assert error.field == "amount"
    assert error.problem == "must be positive, got -5"
    assert str(error) == "amount: must be positive, got -5"


def test_invalid_input_survives_pickling():
    error = pickle.loads(pickle.dumps(InvalidInput("charges[0].unit", "is required")))
    assert (error.field, error.problem, str(error)) == ("charges[0].unit", "is required", "charges[0].unit: is required")


def test_quote_input_cuts_long_values_short():
    assert quote_input("abc") == "'abc'"
    assert len(quote_input("x" * 10_000)) == 60
