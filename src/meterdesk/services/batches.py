"""Recording a batch of usage events with a result per event, in order (the usage API's `POST /v1/usage/batch`).

A batch is written in one write transaction (`EntryWriter`, as an import batch is: its customers locked,
its request ids looked up at once, its entries inserted together) and answers exactly as its events
recorded one by one with `record_usage` would, in request order: a valid event is recorded even when
another in the batch is refused, an event whose request id was recorded before (or earlier in the same
batch) is a duplicate of that entry or a conflict with it, each prepaid charge is the price difference the
event makes, and each balance is the balance after the event. The same batch sent again records nothing
new (request ids are unique per customer forever). If the database refuses the batch's rows for a reason
that belongs to one event (a request id taken by a racing writer, a value out of range), nothing of the
batch is kept and its events are recorded one by one instead, each in a transaction of its own. An event
the caller already found malformed arrives as its InvalidInput.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meterdesk.domain.errors import Conflict, InvalidInput, MeterdeskError, NotFound, Unavailable
from meterdesk.domain.units import validate_request_id, validate_usage_amount
from meterdesk.services.context import now_us
from meterdesk.services.catalog import validate_customer_id
from meterdesk.services.recording import (
    RecordResult, check_not_before_start, parse_occurred_at, record_usage, subscription_start_of, validate_note, validate_source,
)
from meterdesk.store.codec import decode_money, encode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import CustomerRow, UnitRow, unit_by_code
from meterdesk.store.writer import EntryWriter, NewEntry, StoredEntry, duplicate_or_conflict, over_limit, refusals

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
    """Record the events in one transaction; refused events are reported with their field and never stop
    the others. Unavailable (the database went away) ends the batch with nothing of it written."""
    if not 1 <= len(events) <= MAX_BATCH_EVENTS:
        raise InvalidInput("events", f"must hold 1 to {MAX_BATCH_EVENTS} events, not {len(events)}")
    source = validate_source(source)
    try:
        outcomes = _record_together(ledger, events, source, actor)
    except Unavailable:
        raise
    except (MeterdeskError, *refusals(ledger)):
        return record_one_by_one(ledger, events, source=source, actor=actor)
    result = BatchResult()
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, MeterdeskError):
            _reject(result, index, outcome)
        else:
            _add(result, index, outcome)
    return result


def record_one_by_one(ledger: Ledger, events: list[UsageEvent | InvalidInput], *, source: str, actor: str) -> BatchResult:
    """Each event by `record_usage`, in a transaction of its own. Unavailable ends the batch: what was
    recorded before stays, and sending the batch again records only the rest."""
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
        _add(result, index, recorded)
    return result


def _add(result: BatchResult, index: int, recorded: RecordResult) -> None:
    shape = recorded.to_json()
    del shape["duplicate"]
    if recorded.duplicate:
        result.duplicates += 1
        result.results.append({"index": index, "status": "duplicate", **shape})
    else:
        result.recorded += 1
        result.results.append({"index": index, "status": "recorded", **shape})


def _record_together(ledger: Ledger, events: list[UsageEvent | InvalidInput], source: str, actor: str) -> list[RecordResult | MeterdeskError]:
    """The outcome of each event, all written in one transaction. The checks come in record_usage's order
    (request id, note, occurred_at, customer, unit, amount, then the request id's earlier use), so an event
    is refused for the same reason either way."""
    now = now_us()
    outcomes: list = [None] * len(events)
    checked: dict[int, tuple[UsageEvent, str, str | None, int | None]] = {}
    for index, event in enumerate(events):
        if isinstance(event, InvalidInput):
            outcomes[index] = event
            continue
        try:
            validate_customer_id(event.customer, "customer")
            checked[index] = (event, validate_request_id(event.request_id), validate_note(event.note),
                              parse_occurred_at(event.occurred_at, now, timezone=ledger.timezone))
        except InvalidInput as error:
            outcomes[index] = error
    with ledger.write() as connection:
        writer = EntryWriter(connection, ledger, now, source, actor)
        customers = writer.lock_customers_by_external_id(event.customer for event, *_ in checked.values())
        units: dict[str, UnitRow | None] = {}
        entries: dict[int, NewEntry] = {}
        starts: dict[int, int | None] = {}
        for index, (event, request_id, note, occurred) in checked.items():
            customer = customers.get(event.customer)
            if customer is None:
                outcomes[index] = NotFound(f"customer: unknown customer {event.customer!r}")
                continue
            if event.unit not in units:
                try:
                    units[event.unit] = unit_by_code(connection, event.unit, ledger.cache)
                except NotFound:
                    units[event.unit] = None
            unit = units[event.unit]
            if unit is None:
                outcomes[index] = NotFound(f"unit: unknown unit {event.unit!r}")
                continue
            try:
                amount = validate_usage_amount(unit.unit, event.amount)
                if customer.id not in starts:
                    starts[customer.id] = subscription_start_of(connection, ledger, customer.id)
                check_not_before_start(occurred if occurred is not None else now, starts[customer.id], ledger.timezone)
            except InvalidInput as error:
                outcomes[index] = error
                continue
            entries[index] = NewEntry(customer, unit, amount, encode_quantity(amount, unit.unit.decimals), occurred, request_id, note)

        # Which events retry an entry recorded before, which retry an event earlier in this batch, which are new.
        stored = writer.existing((entry.customer.id, entry.request_id) for entry in entries.values())
        first_of: dict[tuple[int, str], int] = {}
        fresh: list[int] = []
        for index, entry in entries.items():
            key = (entry.customer.id, entry.request_id)
            if key in stored:
                outcomes[index] = stored[key]
            elif key in first_of:
                outcomes[index] = first_of[key]  # resolved once that event has its entry
            else:
                first_of[key] = index
                fresh.append(index)
        # A new event that would take its period's total beyond the exact range is refused, as record_usage does.
        retried = {outcome for outcome in outcomes if type(outcome) is int}  # events a later one of the batch retries
        for index, problem in zip(list(fresh), writer.out_of_range([entries[index] for index in fresh])):
            if problem is not None:
                if index in retried:  # event by event decides what the retry is
                    raise problem
                outcomes[index] = problem
                fresh.remove(index)
                del entries[index]
        new_entries = [entries[index] for index in fresh]
        writer.preload(new_entries)
        rows = writer.prepare_many(new_entries)
        writer.insert_many(list(rows), in_order=True)
        balances = writer.balances_of(entry.customer.id for entry in entries.values() if entry.customer.prepaid)
        writer.flush(balances=False)
        ids = writer.existing((entry.customer.id, entry.request_id) for entry in new_entries)

        # The answers, in request order: balances move with each charge, as they would event by event.
        balances = {customer_id: balance for customer_id, balance in balances.items()}
        written: dict[int, StoredEntry] = {}
        rows_of = dict(zip(fresh, rows))
        for index, entry in entries.items():
            customer = entry.customer
            outcome = outcomes[index]
            if index in rows_of:
                row = rows_of[index]
                charged = row[14]
                if customer.prepaid:
                    balances[customer.id] -= charged or 0
                found = ids[(customer.id, entry.request_id)]
                written[index] = found
                outcomes[index] = _answer(customer, found, False, balances.get(customer.id))
                continue
            original = written[outcome] if type(outcome) is int else outcome
            try:
                duplicate_or_conflict(original, entry)
            except Conflict as error:
                outcomes[index] = error
                continue
            outcomes[index] = _answer(customer, original, True, balances.get(customer.id))
    return outcomes


def _answer(customer: CustomerRow, entry: StoredEntry, duplicate: bool, balance: int | None) -> RecordResult:
    prepaid = customer.prepaid
    return RecordResult(
        entry_id=entry.id,
        duplicate=duplicate,
        charged=decode_money(entry.charged) if prepaid else None,
        balance=decode_money(balance) if prepaid else None,
        over_limit=prepaid and over_limit(customer, balance),
        period=entry.period,
        late=entry.late,
        currency=customer.currency,
    )


def _reject(result: BatchResult, index: int, error: MeterdeskError) -> None:
    result.rejected += 1
    result.results.append({"index": index, "status": "rejected", "error": {"field": error_field(error), "detail": error_detail(error)}})
