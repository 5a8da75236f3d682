"""The demo ledger: a living billing desk for newcomers, seeded through the same services staff use.

Several customers on hybrid (per-unit), graduated, volume and prepaid plans; usage from the first day of
the month before last up to a minute ago with a daily and weekly rhythm, imported in batches through
`import_usage`; credit grants for prepaid customers; the oldest full month closed; a few corrections and
a few entries recorded "live" through the API path. Everything is relative to today, so the demo works
whatever the date.
"""

from __future__ import annotations

import csv
import math
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import platformdirs
from sqlalchemy import func, select

from meterdesk.domain.periods import format_timestamp, from_micros
from meterdesk.services.billing import close_period
from meterdesk.services.catalog import add_customer, add_unit, save_plan
from meterdesk.services.context import now_us
from meterdesk.services.corrections import correct_entry
from meterdesk.services.credits import grant_credits
from meterdesk.services.entries import EntryFilter, list_entries
from meterdesk.services.imports import import_usage
from meterdesk.services.recording import record_usage
from meterdesk.store.engine import Ledger
from meterdesk.store.schema import customers

ACTOR = "demo:seed"
HOUR = timedelta(hours=1)


def demo_ledger_path() -> Path:
    """The demo ledger lives next to the embedded one, in a file of its own."""
    return platformdirs.user_data_path("meterdesk", appauthor=False) / "demo.sqlite3"


def demo_ledger_url() -> str:
    return f"sqlite:///{demo_ledger_path()}"


UNITS = [
    ("api_calls", "API calls", 0, "sum"),
    ("tokens", "LLM tokens", 0, "sum"),
    ("storage_gb", "Storage (GB, peak)", 2, "max"),
    ("seats", "Seats (peak)", 0, "max"),
    ("exports", "Report exports", 0, "count"),
]

PLANS = [
    {
        "code": "starter", "name": "Starter", "currency": "EUR", "base_fee": "19.00",
        "charges": [
            {"unit": "api_calls", "model": "per_unit", "included": "50000", "unit_price": "0.0004"},
            {"unit": "storage_gb", "model": "per_unit", "included": "5", "unit_price": "0.25"},
        ],
    },
    {
        "code": "growth", "name": "Growth", "currency": "EUR", "base_fee": "99.00",
        "charges": [
            {"unit": "api_calls", "model": "graduated", "included": "100000", "tiers": [
                {"up_to": "1000000", "unit_price": "0.0003"},
                {"up_to": "5000000", "unit_price": "0.0002"},
                {"unit_price": "0.0001", "flat_fee": "25"},
            ]},
            {"unit": "seats", "model": "per_unit", "included": "5", "unit_price": "8.00"},
        ],
    },
    {
        "code": "scale", "name": "Scale", "currency": "EUR", "base_fee": "249.00",
        "charges": [
            {"unit": "tokens", "model": "volume", "tiers": [
                {"up_to": "10000000", "unit_price": "0.000004"},
                {"up_to": "50000000", "unit_price": "0.000003"},
                {"unit_price": "0.000002", "flat_fee": "100"},
            ]},
            {"unit": "exports", "model": "package", "package_size": "100", "package_price": "5.00"},
        ],
    },
    {
        "code": "payg", "name": "Pay as you go (prepaid)", "currency": "EUR", "base_fee": "0",
        "charges": [
            {"unit": "tokens", "model": "per_unit", "unit_price": "0.000005"},
            {"unit": "api_calls", "model": "per_unit", "unit_price": "0.0005"},
        ],
    },
]


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    id: str
    name: str
    plan: str
    email: str
    prepaid: bool = False
    credit_limit: str = "0"
    start_offset_days: int | None = None  # joined this many days after the seed start (prorated base fee)
    rates: tuple[tuple[str, int], ...] = ()  # unit -> typical amount per busy hour (or the level, for max units)


CUSTOMERS = [
    DemoCustomer("acme", "Acme Analytics", "growth", "billing@acme.example", rates=(("api_calls", 5200), ("seats", 9))),
    DemoCustomer("globex", "Globex Logistics", "starter", "ap@globex.example", rates=(("api_calls", 900), ("storage_gb", 12))),
    DemoCustomer("initech", "Initech Software", "scale", "finance@initech.example", rates=(("tokens", 26000), ("exports", 3))),
    DemoCustomer("umbrella", "Umbrella Health", "growth", "invoices@umbrella.example", rates=(("api_calls", 2400), ("seats", 4))),
    DemoCustomer("hooli", "Hooli Search", "payg", "ops@hooli.example", prepaid=True, credit_limit="50", rates=(("tokens", 9000), ("api_calls", 700))),
    DemoCustomer("piedpiper", "Pied Piper", "payg", "richard@piedpiper.example", prepaid=True, rates=(("tokens", 16000), ("api_calls", 350))),
    DemoCustomer("stark", "Stark Robotics", "scale", "billing@stark.example", start_offset_days=45, rates=(("tokens", 41000), ("exports", 5))),
    DemoCustomer("wayne", "Wayne Enterprises", "starter", "accounts@wayne.example", rates=(("api_calls", 1500), ("storage_gb", 31))),
]

GRANTS = [("hooli", "400.00", "Opening top-up", 0), ("hooli", "250.00", "Top-up, card payment", 40), ("piedpiper", "120.00", "Opening top-up", 0)]


@dataclass(frozen=True, slots=True)
class SeedProgress:
    step: str
    done: int
    total: int


def is_seeded(ledger: Ledger) -> bool:
    with ledger.read() as connection:
        return bool(connection.execute(select(func.count()).select_from(customers)).scalar())


def seed_demo(
    ledger: Ledger,
    *,
    progress: Callable[[SeedProgress], None] | None = None,
    density: float = 1.0,
    seed: int = 7,
) -> bool:
    """Fill an empty ledger with the demo; returns False (and writes nothing) when it has customers already.

    `density` scales how many usage events are generated (tests use a fraction of the default).
    """
    if is_seeded(ledger):
        return False
    report = progress or (lambda _p: None)
    steps = 6
    timeline = ledger.timeline
    now = from_micros(now_us())
    current = timeline.period_of(now_us())
    oldest = current.previous().previous()
    start = from_micros(timeline.bounds(oldest)[0])
    end = now - timedelta(minutes=2)

    report(SeedProgress("catalog", 0, steps))
    for code, name, decimals, aggregation in UNITS:
        add_unit(ledger, code, name, decimals, aggregation, actor=ACTOR)
    for plan in PLANS:
        save_plan(ledger, plan, actor=ACTOR)
    for customer in CUSTOMERS:
        joined = None
        if customer.start_offset_days is not None:
            joined = (start + timedelta(days=customer.start_offset_days)).astimezone(ledger.timezone).date()
        add_customer(
            ledger, customer.id, customer.name, customer.plan, email=customer.email, prepaid=customer.prepaid,
            credit_limit=customer.credit_limit, start=joined, actor=ACTOR,
        )

    report(SeedProgress("credit grants", 1, steps))
    for index, (customer, amount, note, day) in enumerate(GRANTS):
        granted = min(start + timedelta(days=day, hours=9), end)
        grant_credits(
            ledger, customer, amount, f"demo-grant-{index}", note=note, granted_at=granted, source="gui", actor=ACTOR
        )

    report(SeedProgress("usage", 2, steps))
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="meterdesk-demo-") as folder:
        path = Path(folder) / "usage.csv"
        _write_usage_csv(path, rng, start, end, ledger, density)
        import_usage(
            ledger, path, actor=ACTOR,
            progress=lambda p: report(SeedProgress(f"usage: {p.recorded} entries", 2, steps)),
        )

    report(SeedProgress(f"closing {oldest}", 3, steps))
    close_period(ledger, oldest, actor=ACTOR)

    report(SeedProgress("corrections", 4, steps))
    _corrections(ledger, rng, oldest)

    report(SeedProgress("live usage", 5, steps))
    for number in range(12):
        customer = CUSTOMERS[number % len(CUSTOMERS)]
        unit, rate = customer.rates[0]
        at = end - timedelta(minutes=5 * (12 - number))
        record_usage(
            ledger, customer.id, unit, str(max(1, rate // 20 + rng.randint(0, rate // 10 + 1))), f"demo-live-{number}",
            occurred_at=format_timestamp(max(at, start)), source="api", actor="api:gateway",
        )
    report(SeedProgress("done", steps, steps))
    return True


def _rhythm(local: datetime) -> float:
    """How busy an hour is: a working-day bell around 14:00, a quiet night, quieter weekends."""
    day = 1.0 if local.weekday() < 5 else 0.4
    hour = 0.12 + 0.88 * math.exp(-(((local.hour + 0.5) - 14) / 4.2) ** 2)
    return day * hour


def _write_usage_csv(path: Path, rng: random.Random, start: datetime, end: datetime, ledger: Ledger, density: float) -> None:
    decimals = {code: places for code, _name, places, _aggregation in UNITS}
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer", "unit", "amount", "request_id", "occurred_at", "note"])
        number = 0
        for customer in CUSTOMERS:
            joined = start + timedelta(days=customer.start_offset_days or 0)
            growth = 1 + rng.random() * 0.6  # some customers grow over the three months
            for unit, rate in customer.rates:
                level = rate
                instant = joined.replace(minute=0, second=0, microsecond=0)
                while instant < end:
                    local = instant.astimezone(ledger.timezone)
                    elapsed = (instant - start) / (end - start)
                    trend = 1 + (growth - 1) * elapsed
                    rows: list[tuple[str, datetime]] = []
                    if unit in ("storage_gb", "seats"):
                        if local.hour == 9 and rng.random() < density:  # a daily reading of the level
                            level = max(1, level + rng.choice((-1, 0, 0, 1, 1)) * (1 if unit == "seats" else rate // 10 + 1))
                            amount = level if unit == "seats" else level * 100 + rng.randint(0, 99)
                            rows.append((_scaled(amount, decimals[unit], unit), instant + timedelta(minutes=rng.randint(0, 50))))
                    elif unit == "exports":
                        busy = _rhythm(local) * rate * density / 4
                        for _ in range(int(busy) + (1 if rng.random() < busy % 1 else 0)):
                            rows.append(("1", instant + timedelta(minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))))
                    else:
                        if rng.random() < min(1.0, density * (0.35 + _rhythm(local))):
                            amount = int(rate * trend * _rhythm(local) * (0.6 + rng.random() * 0.8))
                            if amount > 0:
                                rows.append((str(amount), instant + timedelta(minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))))
                    for amount, at in rows:
                        if at >= end:
                            continue
                        number += 1
                        note = "nightly batch job" if local.hour == 3 and rng.random() < 0.2 else ""
                        writer.writerow([customer.id, unit, amount, f"demo-{customer.id}-{unit}-{number}", format_timestamp(at), note])
                    instant += HOUR


def _scaled(amount: int, places: int, unit: str) -> str:
    if places == 0:
        return str(amount)
    return format(Decimal(amount).scaleb(-places), "f") if unit == "storage_gb" else str(amount)


def _corrections(ledger: Ledger, rng: random.Random, closed) -> None:
    """A few corrections of the kind staff make: a double-counted batch, a wrong reading, one in a closed period."""
    reasons = [
        "Customer's gateway double-counted a retry batch",
        "Reading taken during a migration; confirmed figure from ops",
        "Test traffic from our own staging key",
        "Agreed goodwill reduction after the outage",
    ]
    timeline = ledger.timeline
    chosen = []
    for customer, unit in (("acme", "api_calls"), ("globex", "api_calls"), ("initech", "tokens"), ("hooli", "tokens")):
        recent = list_entries(ledger, EntryFilter(customer=customer, unit=unit, kind="usage"), limit=400)
        if len(recent) > 20:
            chosen.append(recent[rng.randint(5, len(recent) - 1)])
    closed_start, closed_end = timeline.bounds(closed)
    old = list_entries(ledger, EntryFilter(customer="umbrella", unit="api_calls", start_us=closed_start, end_us=closed_end), limit=50)
    if old:
        chosen.append(old[len(old) // 2])
    for index, entry in enumerate(chosen):
        new_amount = 0 if index == 2 else (abs(entry.amount) // 2 if entry.amount > 1 else 0)
        correct_entry(ledger, entry.id, str(new_amount), reasons[index % len(reasons)], source="gui", actor="Dana (billing)")
