"""Recording a batch of usage events with a result per event, in order (the usage API's `POST /v1/usage/batch`).

Each event is recorded by `record_usage`, in a transaction of its own: a valid event is recorded even when
another in the batch is refused, and the same batch sent again records nothing new (request ids are unique
per customer forever). An event the caller already found malformed arrives as its InvalidInput.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meterdesk.domain.errors import Conflict, InvalidInput, MeterdeskError, NotFound
from meterdesk.services.recording import record_usage
from meterdesk.store.engine import Ledger

MAX_BATCH_EVENTS = 1000
EVENT_FIELDS = ("customer", "unit", "amount", "request_id", "occurred_at", "note")


@dataclass(frozen=True, slots=True)
class UsageEvent:
    customer: str
    unit: str
    amount: object  # str, int or Decimal: read exactly by the unit's rules
    request_id: str
    occurred_at: str | None = None
    note: str | None = None


def error_field(error: MeterdeskError) -> str | None:
    """The field an error is about: InvalidInput names it; NotFound and Conflict messages start with it."""
    if isinstance(error, InvalidInput):
        return error.field
    head, separator, _ = str(error).partition(":")
    return head if separator and head in EVENT_FIELDS else None


def error_detail(error: MeterdeskError) -> str:
    if isinstance(error, InvalidInput):
        return error.problem
    text = str(error)
    head, separator, rest = text.partition(":")
    return rest.strip() if separator and head in EVENT_FIELDS else text


@dataclass
class BatchResult:
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    results: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"recorded": self.recorded, "duplicates": self.duplicates, "rejected": self.rejected, "results": self.results}


def record_batch(ledger: Ledger, events: list[UsageEvent | InvalidInput], *, source: str, actor: str) -> BatchResult:
    """Record each event in order; refused events are reported with their field and never stop the others.
    Unavailable (the database went away) ends the batch: what was recorded before stays, and sending the
    batch again records only the rest."""
    if not 1 <= len(events) <= MAX_BATCH_EVENTS:
        raise InvalidInput("events", f"must hold 1 to {MAX_BATCH_EVENTS} events, not {len(events)}")
    result = BatchResult()
    for index, event in enumerate(events):
        if isinstance(event, InvalidInput):
            _reject(result, index, event)
            continue
        try:
            recorded = record_usage(
                ledger, event.customer, event.unit, event.amount, event.request_id,
                occurred_at=event.occurred_at, note=event.note, source=source, actor=actor,
            )
        except (InvalidInput, NotFound, Conflict) as error:
            _reject(result, index, error)
            continue
        shape = recorded.to_json()
        del shape["duplicate"]
        if recorded.duplicate:
            result.duplicates += 1
            result.results.append({"index": index, "status": "duplicate", **shape})
        else:
            result.recorded += 1
            result.results.append({"index": index, "status": "recorded", **shape})
    return result


def _reject(result: BatchResult, index: int, error: MeterdeskError) -> None:
    result.rejected += 1
    result.results.append({"index": index, "status": "rejected", "error": {"field": error_field(error), "detail": error_detail(error)}})
