"""Recording one usage event: validation, the fast single-event writer, and the general path for everything else."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, tzinfo
from decimal import Decimal
from functools import lru_cache

from meterdesk.domain.errors import InvalidInput, NotFound
from meterdesk.domain.periods import MAX_FUTURE_SKEW, check_not_future, format_timestamp, from_micros, parse_timestamp, to_micros
from meterdesk.domain.units import (
    validate_request_id, validate_usage_amount,
)
from meterdesk.services.catalog import validate_customer_id
from meterdesk.services.context import default_actor, now_us
from meterdesk.store.events import record_event
from meterdesk.services.shapes import exact_money, money
from meterdesk.domain.timeline import local_midnight
from meterdesk.store.writer import EntryWriter, NewEntry, duplicate_or_conflict, over_limit
from meterdesk.store.codec import decode_money, encode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import CustomerRow, UnitRow, subscription_starts, unit_by_code
from meterdesk.store.schema import SOURCES


MAX_NOTE_LENGTH = 2000


MAX_FUTURE_SKEW_US = int(MAX_FUTURE_SKEW.total_seconds()) * 1_000_000


@dataclass(frozen=True, slots=True)
class RecordResult:
    entry_id: int
    duplicate: bool
    charged: Decimal | None
    balance: Decimal | None
    over_limit: bool
    period: str
    late: bool
    currency: str

    def to_json(self) -> dict:
        return {
            "entry_id": self.entry_id,
            "duplicate": self.duplicate,
            "charged": None if self.charged is None else money(self.charged, self.currency),
            "balance": None if self.balance is None else money(self.balance, self.currency),
            "over_limit": self.over_limit,
            "period": self.period,
            "late": self.late,
            "charged_exact": None if self.charged is None else exact_money(self.charged),
            "balance_exact": None if self.balance is None else exact_money(self.balance),
        }


def validate_note(note: str | None) -> str | None:
    if note is None:
        return None
    note = str(note)
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidInput("note", f"is {len(note)} characters long; at most {MAX_NOTE_LENGTH} are allowed")
    if (unstorable := _UNSTORABLE.search(note)) is not None:
        # PostgreSQL text cannot hold NUL, and neither database a lone surrogate (no UTF-8 for it).
        raise InvalidInput("note", f"must not contain {unstorable[0]!r} (at position {unstorable.start()})")
    return note or None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def validate_source(source: str) -> str:
    if source not in SOURCES:
        raise InvalidInput("source", f"must be one of {', '.join(SOURCES)}, not {source!r}")
    return source


def parse_occurred_at(value, now: int, field: str = "occurred_at", timezone: tzinfo = UTC) -> int | None:
    """An occurred_at as microseconds (None: now); refuses garbage, the future (+5 min skew) and anything
    before 1970 (no subscription starts earlier). Without a zone, wall-clock time in `timezone`, the
    ledger's billing time zone; a date alone, midnight there."""
    if value is None or value == "":
        return None
    instant = parse_timestamp(value, field, timezone)
    micros = to_micros(instant)
    if micros > now + MAX_FUTURE_SKEW_US:
        check_not_future(instant, from_micros(now), field)  # raises, with the domain's message
    if micros < 0:
        raise InvalidInput(field, f"{format_timestamp(instant)} is before 1970-01-01, the earliest time the ledger records")
    return micros


def check_not_before_start(occurred: int, start: int | None, timezone: tzinfo, field: str = "occurred_at") -> None:
    """Refuse usage before the customer's subscription start (`start`: microseconds of its first local
    midnight; None: no subscription start is known, nothing to check)."""
    if start is not None and occurred < start:
        day = from_micros(start).astimezone(timezone).date().isoformat()
        raise InvalidInput(
            field, f"{format_timestamp(from_micros(occurred))} is before the customer's subscription start {day}"
        )


def record_usage(
    ledger: Ledger,
    customer: str,
    unit: str,
    amount,
    request_id: str,
    *,
    occurred_at=None,
    note: str | None = None,
    source: str = "api",
    actor: str | None = None,
) -> RecordResult:
    """Record one usage event, exactly once per (customer, request id), charging prepaid balances at once."""
    source = validate_source(source)
    actor = actor or _default_actor(source)
    customer = validate_customer_id(customer, "customer")  # the exact bytes, as every import path reads them
    request_id = validate_request_id(request_id)
    note = validate_note(note)
    now = now_us()
    occurred = parse_occurred_at(occurred_at, now, timezone=ledger.timezone)
    unit_row = ledger.cache.get(("unit", unit))
    if unit_row is not None:
        recorded = record_event(ledger, customer, unit_row, amount, request_id, occurred, now, note, source, actor)
        if recorded is not None:
            found, entry_id, charged, balance, period = recorded
            prepaid = charged is not None
            return RecordResult(
                entry_id,
                False,
                decode_money(charged) if prepaid else None,
                decode_money(balance) if prepaid else None,
                prepaid and balance < -found.credit_limit,
                period,
                False,
                found.currency,
            )
    # Everything else — a retry, a conflict, late usage, a unit not seen yet, bad input — in general.
    with ledger.write() as connection:
        writer = EntryWriter(connection, ledger, now, source, actor)
        unit_row = _unit_or_none(connection, ledger, unit)
        # One query locks the customer and reads what placing and pricing the event needs.
        context = writer.begin_event(customer, unit_row, occurred if occurred is not None else now)
        customer_row = context.customer
        if unit_row is None:
            raise NotFound(f"unit: unknown unit {unit!r}")
        quantity_amount = validate_usage_amount(unit_row.unit, amount)
        check_not_before_start(occurred if occurred is not None else now, subscription_start_of(connection, ledger, customer_row.id), ledger.timezone)
        entry = NewEntry(
            customer_row,
            unit_row,
            quantity_amount,
            encode_quantity(quantity_amount, unit_row.unit.decimals),
            occurred,
            request_id,
            note,
        )
        # Insert first, ask later: a retry is rare, and the unique key on (customer, request id) says
        # whether this is one. Nothing prepared for a duplicate is written.
        problem = writer.out_of_range([entry])[0]  # the period total after it, within the exact range?
        if problem is None:
            row = writer.prepare(entry)
            entry_id = writer.insert_one(row)
            if entry_id is not None:
                balance = writer.flush().get(customer_row.id, context.balance)
                return _result(customer_row, entry_id, False, row.charged, balance, row.period, row.late, writer)
        stored = writer.existing([(customer_row.id, request_id)]).get((customer_row.id, request_id))
        if stored is None:
            raise problem  # not a retry: the entry itself would leave the exact range
        duplicate_or_conflict(stored, entry)
        return _result(customer_row, stored.id, True, stored.charged, context.balance, stored.period, stored.late, writer)


def subscription_start_of(connection, ledger: Ledger, customer_id: int) -> int | None:
    """The first instant of the customer's first subscription, None without one."""
    day = subscription_starts(connection, [customer_id]).get(customer_id)
    return None if day is None else local_midnight(day, ledger.timezone)


def _default_actor(program: str) -> str:
    """default_actor, remembered for as long as the environment it reads says the same: finding the login
    name asks the password database, which costs more than recording an event's Python work. The variables
    are read from the environment's own mapping when there is one (os.environ.get costs a microsecond each)."""
    data = getattr(os.environ, "_data", None)
    if data is None or _ENVIRON_KEYS is None:
        return _remembered_actor(program, *(os.environ.get(name) for name in ACTOR_VARIABLES))
    get = data.get
    actor, login, user, lname, username = _ENVIRON_KEYS
    return _remembered_actor(program, get(actor), get(login), get(user), get(lname), get(username))


ACTOR_VARIABLES = ("METERDESK_ACTOR", "LOGNAME", "USER", "LNAME", "USERNAME")


try:
    _ENVIRON_KEYS = tuple(os.environ.encodekey(name) for name in ACTOR_VARIABLES)  # type: ignore[attr-defined]
except AttributeError:  # not CPython's os._Environ
    _ENVIRON_KEYS = None


@lru_cache(maxsize=64)
def _remembered_actor(program: str, *_environment: str | None) -> str:
    return default_actor(program)


def _unit_or_none(connection, ledger: Ledger, code: str) -> UnitRow | None:
    try:
        return unit_by_code(connection, code, ledger.cache)
    except NotFound:
        return None


def _result(customer: CustomerRow, entry_id, duplicate, charged, balance, period, late, writer: EntryWriter) -> RecordResult:
    if customer.prepaid and balance is None:
        balance = writer.balance(customer.id)
    return RecordResult(
        entry_id=entry_id,
        duplicate=duplicate,
        charged=decode_money(charged) if customer.prepaid else None,
        balance=decode_money(balance) if customer.prepaid else None,
        over_limit=customer.prepaid and over_limit(customer, balance),
        period=period,
        late=late,
        currency=customer.currency,
    )
