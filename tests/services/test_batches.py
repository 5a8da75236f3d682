"""A batch of usage events (the usage API's POST /v1/usage/batch): one write transaction, a result per event."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from meterdesk.domain.errors import InvalidInput
from meterdesk.services.balances import customer_balance
from meterdesk.services.batches import UsageEvent, record_batch
from meterdesk.services.billing import close_period
from meterdesk.services.catalog import add_customer, save_plan
from meterdesk.services.credits import grant_credits
from meterdesk.services.entries import EntryFilter, list_entries
from meterdesk.services.recording import record_usage
from meterdesk.store.engine import open_ledger
from tests.conftest import new_postgres_database
from tests.services.helpers import last_month, last_month_at, seed

# A prepaid plan whose price per event is a fraction of the balance's quantum (a micro-unit): each event's
# charge is rounded, and only the sum of the rounded differences says whether the batch was charged exactly.
METERED_PLAN = {
    "code": "metered",
    "name": "Metered",
    "currency": "EUR",
    "base_fee": "0",
    "charges": [
        {
            "unit": "api_calls",
            "model": "graduated",
            "tiers": [
                {"up_to": "20000", "unit_price": "0.0000003"},
                {"unit_price": "0.0000001", "flat_fee": "1.5"},
            ],
        },
    ],
}


def metered_price(quantity: int) -> Decimal:
    """The plan above priced by hand: 0.3 micro-units a call up to 20,000, then 0.1 and a 1.50 flat fee."""
    first = min(quantity, 20_000) * Decimal("0.0000003")
    if quantity <= 20_000:
        return first
    return first + (quantity - 20_000) * Decimal("0.0000001") + Decimal("1.5")


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    grant_credits(ledger, "bolt", "100", "grant-1", actor="tests")
    return ledger


@pytest.fixture
def twin(request, ledger, tmp_path):
    """A second fresh ledger on the same database system as `ledger`, seeded alike."""
    if ledger.dialect == "sqlite":
        path = tmp_path / "twin.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url, drop = f"sqlite:///{path}", None
    else:
        url, drop = new_postgres_database(request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_template"))
    opened = open_ledger(url)
    seed(opened)
    grant_credits(opened, "bolt", "100", "grant-1", actor="tests")
    yield opened
    opened.close()
    if drop:
        drop()


def event(customer: str, amount, request_id: str, unit: str = "api_calls", occurred_at=None, note=None) -> UsageEvent:
    return UsageEvent(customer, unit, amount, request_id, occurred_at, note)


def mixed_events() -> list[UsageEvent | InvalidInput]:
    return [
        event("bolt", "4", "b-1"),
        event("acme", "1500", "a-1", note="first"),
        event("bolt", "3", "earlier"),  # recorded before the batch: a duplicate
        event("bolt", "9", "earlier"),  # ... and this one a conflict with it
        event("bolt", "0.5", "b-2"),  # api_calls are whole
        event("nobody", "1", "n-1"),
        event("acme", "1", "a-2", unit="no_such_unit"),
        event("acme", "2.125", "a-3", unit="storage_gb"),
        event("bolt", "7", "b-1"),  # a conflict with the first event of this batch
        event("bolt", "4", "b-1"),  # a retry of the first event of this batch
        InvalidInput("event", "must be a JSON object, not a string"),
        event("acme", "5", "a-late", occurred_at=last_month_at(4)),  # last month is closed: billed late
        event("bolt", "2", "b-future", occurred_at="2999-01-01T00:00:00Z"),
        event("bolt", "", "b-3"),
        event("bolt", "1", ""),
        event("bolt", "6", "b-4", unit="seats"),
        event("bolt", "1", "b-5", unit="builds"),
        event("bolt", "12", "b-6", unit="seats"),
        event("acme", "8", "a-1"),  # conflict with an entry of this batch for another customer's key? no: acme's own
        event("bolt", "1500", "a-1"),  # the same request id for another customer is another event
        event(" bolt ", "1", "pad-1"),  # a padded customer id is refused, not looked up (SPEC 2 "Ids")
        event("bolt", "1", "correction:1:reversal"),  # the namespace corrections write in
        event("bolt", "1", "old-1", occurred_at="1969-12-31T00:00:00Z"),  # before the subscription could start
    ]


def prepare(ledger) -> None:
    record_usage(ledger, "bolt", "api_calls", "3", "earlier", actor="tests")
    close_period(ledger, last_month(), actor="tests")


def test_a_batch_answers_exactly_as_the_events_recorded_one_by_one(seeded, twin):
    prepare(seeded)
    prepare(twin)
    events = mixed_events()
    batch = record_batch(seeded, events, source="api", actor="api:backend")

    # The same events, one record_usage each, on a twin ledger: the per-event answers the batch must give.
    expected = record_batch_one_by_one(twin, events)
    # Entry ids compared as the entries they name (a PostgreSQL sequence skips the numbers of refused inserts).
    assert comparable(seeded, batch.results) == comparable(twin, expected.results)
    assert (batch.recorded, batch.duplicates, batch.rejected) == (expected.recorded, expected.duplicates, expected.rejected)
    assert [r["status"] for r in batch.results] == [
        "recorded", "recorded", "duplicate", "rejected", "rejected", "rejected", "rejected", "recorded", "rejected",
        "duplicate", "rejected", "recorded", "rejected", "rejected", "rejected", "recorded", "recorded", "recorded",
        "rejected", "recorded", "rejected", "rejected", "rejected",
    ]
    assert [r["error"]["field"] for r in batch.results if r["status"] == "rejected"] == [
        "request_id", "amount", "customer", "unit", "request_id", "event", "occurred_at", "amount", "request_id", "request_id",
        "customer", "request_id", "occurred_at",
    ]
    late = batch.results[11]
    assert late["late"] is True and late["period"] != last_month()

    # The ledgers hold the same entries, in the same order and with the same ids and charges.
    def shape(ledger):
        return [(e.customer, e.unit, e.amount, e.request_id, e.period, e.late, e.note, e.actor, e.source)
                for e in list_entries(ledger, EntryFilter(), limit=1000)]

    assert shape(seeded) == shape(twin)
    assert customer_balance(seeded, "bolt").to_json() == customer_balance(twin, "bolt").to_json()

    # The batch again records nothing new: every event recorded before is now a duplicate of its entry.
    again = record_batch(seeded, events, source="api", actor="api:backend")
    assert again.recorded == 0
    assert again.duplicates == batch.recorded + batch.duplicates
    for first, second in zip(batch.results, again.results):
        if first["status"] != "rejected":
            assert second["status"] == "duplicate" and second["entry_id"] == first["entry_id"]
            assert second["charged"] == first["charged"]
    assert shape(seeded) == shape(twin)


def comparable(ledger, results: list[dict]) -> list[dict]:
    """The results with each entry id as (customer, request id) of its entry, and without the current time a
    future occurred_at is refused against."""
    named = {e.id: (e.customer, e.request_id) for e in list_entries(ledger, EntryFilter(), limit=1000)}
    return [
        {**r, "error": {**r["error"], "detail": r["error"]["detail"].split(" after the current time")[0]}} if "error" in r
        else {**r, "entry_id": named[r["entry_id"]]}
        for r in results
    ]


def record_batch_one_by_one(ledger, events):
    """The reference: each event by record_usage in a transaction of its own (the batch service before)."""
    from meterdesk.domain.errors import Conflict, NotFound
    from meterdesk.services.batches import BatchResult, error_detail, error_field

    result = BatchResult()
    for index, item in enumerate(events):
        try:
            if isinstance(item, InvalidInput):
                raise item
            recorded = record_usage(ledger, item.customer, item.unit, item.amount, item.request_id,
                                    occurred_at=item.occurred_at, note=item.note, source="api", actor="api:backend")
        except (InvalidInput, NotFound, Conflict) as error:
            result.rejected += 1
            result.results.append({"index": index, "status": "rejected", "error": {"field": error_field(error), "detail": error_detail(error)}})
            continue
        shape = recorded.to_json()
        del shape["duplicate"]
        status = "duplicate" if recorded.duplicate else "recorded"
        result.duplicates += recorded.duplicate
        result.recorded += not recorded.duplicate
        result.results.append({"index": index, "status": status, **shape})
    return result


def test_a_batch_is_one_transaction(seeded):
    """Its entries share one recorded_at (each transaction stamps its own) and have ids in request order."""
    events = [event("acme" if n % 3 else "bolt", str(n + 1), f"r-{n:04d}") for n in range(300)]
    batch = record_batch(seeded, events, source="api", actor="api:backend")
    assert batch.recorded == 300
    ids = [r["entry_id"] for r in batch.results]
    assert ids == sorted(ids)
    entries = [e for e in list_entries(seeded, EntryFilter(), limit=1000) if e.request_id.startswith("r-")]
    assert len(entries) == 300
    assert len({e.recorded_at_us for e in entries}) == 1


def test_a_1000_event_batch_for_a_prepaid_customer_is_charged_exactly_the_price_of_its_total(seeded):
    save_plan(seeded, METERED_PLAN, actor="tests")
    add_customer(seeded, "meter", "Meter Ltd", "metered", prepaid=True, credit_limit="0", actor="tests")
    grant_credits(seeded, "meter", "10", "grant-meter", actor="tests")
    amounts = [1 + (n * 7919) % 53 for n in range(999)]
    amounts.append(10 - sum(amounts) % 10 or 10)  # a total whose price is a whole number of micro-units
    total = sum(amounts)
    assert total > 20_000  # both tiers and the flat fee
    events = [event("meter", str(amount), f"m-{n}") for n, amount in enumerate(amounts)]
    batch = record_batch(seeded, events, source="api", actor="api:backend")
    assert batch.recorded == 1000 and batch.rejected == 0

    price = metered_price(total)
    charges = [Decimal(r["charged_exact"]) for r in batch.results]
    assert sum(charges) == price
    assert any(c != c.quantize(Decimal("0.01")) for c in charges)  # the per-event charges are not round
    balances = [Decimal(r["balance_exact"]) for r in batch.results]
    assert balances[-1] == Decimal(10) - price
    # Each event's balance is the balance after it: the grant less the charges so far.
    running = Decimal(10)
    for charge, balance in zip(charges, balances):
        running -= charge
        assert balance == running
    assert customer_balance(seeded, "meter").summary.balance == Decimal(10) - price

    # Sent again: nothing recorded, nothing charged.
    again = record_batch(seeded, events, source="api", actor="api:backend")
    assert (again.recorded, again.duplicates) == (0, 1000)
    assert customer_balance(seeded, "meter").summary.balance == Decimal(10) - price


def test_a_batch_the_database_refuses_is_rolled_back_and_recorded_event_by_event(seeded, monkeypatch):
    """A racing writer took a request id between the lookup and the insert (simulated: the insert is refused
    after writing): nothing of the batch transaction stays, and each event is recorded once on its own."""
    from sqlalchemy.exc import IntegrityError

    from meterdesk.store.writer import EntryWriter

    original = EntryWriter.insert_many
    refused = []

    def insert_then_refuse(self, rows, **options):
        original(self, rows, **options)
        refused.append(len(rows))
        raise IntegrityError("INSERT INTO usage_entries ...", {}, Exception("duplicate key value violates unique constraint"))

    monkeypatch.setattr(EntryWriter, "insert_many", insert_then_refuse)
    events = [event("bolt", "2", "x-1"), event("acme", "0.5", "x-2"), event("acme", "3", "x-3"), event("bolt", "2", "x-1")]
    batch = record_batch(seeded, events, source="api", actor="api:backend")
    assert refused == [2]
    assert [r["status"] for r in batch.results] == ["recorded", "rejected", "recorded", "duplicate"]
    assert batch.results[3]["entry_id"] == batch.results[0]["entry_id"]
    entries = [e for e in list_entries(seeded, EntryFilter(), limit=1000) if e.request_id.startswith("x-")]
    assert sorted(e.request_id for e in entries) == ["x-1", "x-3"]
    assert len({e.recorded_at_us for e in entries}) == 2  # each in a transaction of its own
    assert customer_balance(seeded, "bolt").summary.balance == Decimal(100) - Decimal("0.004")  # charged once
