"""The errors meterdesk reports to people and programs, each with the exit status the CLI uses for it."""

from __future__ import annotations


class MeterdeskError(Exception):
    """Base of every error meant to be shown to the person or program using meterdesk."""

    #: Exit status of the `meterdesk` command when this error ends it (SPEC section 4).
    exit_status = 1


class InvalidInput(MeterdeskError):
    """A value given to meterdesk is not acceptable; names the field and the problem."""

    exit_status = 3

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self):
        # Exception pickles as cls(*self.args), and args holds the joined message, not (field, problem);
        # errors cross process boundaries (worker threads/processes), so keep them picklable.
        return (type(self), (self.field, self.problem))


class Conflict(MeterdeskError):
    """The request contradicts what the ledger already holds: idempotency mismatch, closed period, already corrected."""

    exit_status = 4


class NotFound(MeterdeskError):
    """A customer, unit, plan, entry or invoice that does not exist."""

    exit_status = 5


class Unavailable(MeterdeskError):
    """The database or Stripe cannot be reached, or failed."""

    exit_status = 6


def quote_input(value: object, limit: int = 60) -> str:
    """repr() of a rejected input for an error message, cut short so a huge input cannot flood the message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
