"""A seeded, reproducible soak: several processes mixing every kind of write on one ledger, then the checks.

Each process has its own random.Random(seed + i) and, until the deadline, records usage, imports small CSV
files, corrects entries, grants credits and closes last month. Request ids come from shared pools, so the
processes collide on them all the time; the content of a request id is a function of the id alone (and the
seed), so a collision is a retry (`duplicate`), never a conflict. Usage occurs in last month and in this
one, so closing last month races with recording into it (the late usage rule). Prepaid customers are on
package, graduated-with-allowance and volume charges: prices that are not linear, so a running total
priced from a stale figure shows up as a wrong charge.

Afterwards: every request id a process was told was recorded (or a duplicate) is in the ledger exactly once
and nothing else is, for usage and credit grants alike; and `verify_ledger` finds no difference (rollup,
balances = grants - charges, each prepaid customer's charges per unit and period = the price of its total,
every entry billed in a closed period on its invoice, settlements).

Used by tests/services/test_soak.py (a short run) and tools/soak.py (`--minutes N`).
"""

from __future__ import annotations

import multiprocessing
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

USAGE_POOL = 4000  # request ids r-0 .. r-3999, shared by every process
GRANT_POOL = 60
UNITS = (("api_calls", "API calls", 0, "sum"), ("storage_gb", "Storage GB", 3, "sum"),
         ("builds", "Builds", 0, "count"), ("seats", "Seats", 0, "max"))
PLANS = (
    {"code": "soak_package", "name": "Package", "currency": "EUR", "base_fee": "5.00", "charges": [
        {"unit": "api_calls", "model": "package", "included": "50", "package_size": "100", "package_price": "0.75"},
        {"unit": "storage_gb", "model": "per_unit", "unit_price": "0.10"},
        {"unit": "builds", "model": "graduated", "tiers": [{"up_to": "10", "unit_price": "0.5", "flat_fee": "1"}, {"unit_price": "0.2"}]},
    ]},
    {"code": "soak_graduated", "name": "Graduated", "currency": "EUR", "base_fee": "10.00", "charges": [
        {"unit": "api_calls", "model": "graduated", "included": "200",
         "tiers": [{"up_to": "1000", "unit_price": "0.01", "flat_fee": "1"}, {"unit_price": "0.004", "flat_fee": "2.5"}]},
        {"unit": "storage_gb", "model": "package", "package_size": "5", "package_price": "0.2"},
        {"unit": "builds", "model": "volume", "tiers": [{"up_to": "5", "unit_price": "1"}, {"unit_price": "0.7", "flat_fee": "2"}]},
    ]},
    {"code": "soak_volume", "name": "Volume", "currency": "EUR", "base_fee": "0", "charges": [
        {"unit": "api_calls", "model": "volume",
         "tiers": [{"up_to": "500", "unit_price": "0.02"}, {"up_to": "2000", "unit_price": "0.015", "flat_fee": "3"},
                   {"unit_price": "0.01", "flat_fee": "10"}]},
        {"unit": "storage_gb", "model": "graduated", "included": "1.5", "tiers": [{"up_to": "10", "unit_price": "0.3"}, {"unit_price": "0.1"}]},
        {"unit": "builds", "model": "package", "package_size": "3", "package_price": "0.9"},
    ]},
    {"code": "soak_postpaid", "name": "Postpaid", "currency": "EUR", "base_fee": "49.00", "charges": [
        {"unit": "api_calls", "model": "graduated", "included": "1000",
         "tiers": [{"up_to": "5000", "unit_price": "0.001"}, {"unit_price": "0.0005", "flat_fee": "10"}]},
        {"unit": "storage_gb", "model": "per_unit", "unit_price": "0.10"},
        {"unit": "builds", "model": "per_unit", "included": "3", "unit_price": "0.25"},
        {"unit": "seats", "model": "volume", "tiers": [{"up_to": "10", "unit_price": "5"}, {"unit_price": "4"}]},
    ]},
)
# (customer id, plan, prepaid). A `max` unit (seats) only for postpaid customers: a late downward correction
# of a peak is a known gap for prepaid ones (tests/services/test_verify.py), not what this soak looks for.
CUSTOMERS = (
    ("pp-package-1", "soak_package", True), ("pp-package-2", "soak_package", True),
    ("pp-graduated-1", "soak_graduated", True), ("pp-graduated-2", "soak_graduated", True),
    ("pp-volume-1", "soak_volume", True), ("pp-volume-2", "soak_volume", True),
    ("post-1", "soak_postpaid", False), ("post-2", "soak_postpaid", False),
)
PREPAID = tuple(c for c, _, prepaid in CUSTOMERS if prepaid)
OPERATIONS = (("record", 55), ("import", 10), ("correct", 14), ("grant", 8), ("close", 3))


@dataclass(frozen=True, slots=True)
class Usage:
    customer: str
    unit: str
    amount: str
    request_id: str
    occurred_at: str


@dataclass
class WorkerOutcome:
    index: int
    operations: Counter = field(default_factory=Counter)
    usage: set[tuple[str, str]] = field(default_factory=set)  # acknowledged (customer, request id)
    acknowledgements: int = 0  # usage acknowledgements, retries included (records and import lines)
    grants: set[tuple[str, str]] = field(default_factory=set)
    late: int = 0
    conflicts: Counter = field(default_factory=Counter)  # refused writes that the race allows (per kind)
    errors: list[str] = field(default_factory=list)  # anything else: a failure of the soak
    seconds: float = 0.0


@dataclass
class SoakReport:
    seed: int
    processes: int
    seconds: float
    outcomes: list[WorkerOutcome]
    entries: int
    problems: list[str]  # exactly-once failures
    differences: list[str]  # verify's
    verify_seconds: float
    checked: dict

    @property
    def ok(self) -> bool:
        return not self.problems and not self.differences and not any(o.errors for o in self.outcomes)

    def summary(self) -> str:
        lines = [f"soak: seed {self.seed}, {self.processes} processes, {self.seconds:.1f} s, {self.entries} entries in the ledger"]
        for outcome in self.outcomes:
            ops = ", ".join(f"{kind} {outcome.operations[kind]}" for kind, _ in OPERATIONS)
            refused = ", ".join(f"{kind} {n}" for kind, n in sorted(outcome.conflicts.items())) or "none"
            lines.append(f"  process {outcome.index}: {sum(outcome.operations.values())} operations in {outcome.seconds:.1f} s "
                         f"({ops}); {outcome.late} late; refused by the race: {refused}")
            lines += [f"    error: {error}" for error in outcome.errors[:20]]
        lines.append(f"  verify: {'ok' if not self.differences else f'{len(self.differences)} difference(s)'} in {self.verify_seconds:.1f} s; "
                     f"checked {self.checked}")
        lines += [f"  exactly-once: {problem}" for problem in self.problems[:50]]
        lines += [f"  difference: {difference}" for difference in self.differences[:200]]
        if len(self.differences) > 200:
            lines.append(f"  ... and {len(self.differences) - 200} more differences")
        return "\n".join(lines)


# -- the ledger and the content of each request id ----------------------------------------------------

def set_up(ledger) -> None:
    """Units, plans and customers of the soak, on an empty ledger."""
    from meterdesk.services.catalog import add_customer, add_unit, save_plan
    from meterdesk.services.credits import grant_credits

    for code, name, decimals, aggregation in UNITS:
        add_unit(ledger, code, name, decimals, aggregation, actor="soak")
    for plan in PLANS:
        save_plan(ledger, plan, actor="soak")
    for customer, plan, prepaid in CUSTOMERS:
        add_customer(ledger, customer, customer.title(), plan, prepaid=prepaid, credit_limit="1000" if prepaid else None, actor="soak")
        if prepaid:
            grant_credits(ledger, customer, "100", "welcome", actor="soak")


def _month_start(instant: datetime) -> datetime:
    return instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage_of(seed: int, number: int, started: datetime) -> Usage:
    """The content of request id r-<number>: the same in every process, so a collision is a retry."""
    rng = random.Random(f"{seed}:usage:{number}")
    # Mostly prepaid customers: their charges are where a stale running total shows.
    customer, _plan, prepaid = rng.choice(CUSTOMERS[:6] if rng.random() < 0.8 else CUSTOMERS[6:])
    units = ("api_calls", "storage_gb", "builds") if prepaid else ("api_calls", "storage_gb", "builds", "seats")
    unit = rng.choice(units)
    amount = {
        "api_calls": lambda: str(rng.randint(1, 400)),
        "storage_gb": lambda: f"{rng.randint(1, 3000) / 1000:.3f}",
        "builds": lambda: "1",
        "seats": lambda: str(rng.randint(1, 25)),
    }[unit]()
    this_month = _month_start(started)
    last_month = _month_start(this_month - timedelta(days=1))
    if rng.random() < 0.55:
        span = (this_month - last_month).total_seconds()
        occurred = last_month + timedelta(seconds=rng.randrange(int(span)))
    else:
        span = max(1, int((started - this_month).total_seconds()) - 60)
        occurred = this_month + timedelta(seconds=rng.randrange(span))
    return Usage(customer, unit, amount, f"r-{number}", occurred.strftime("%Y-%m-%dT%H:%M:%SZ"))


def grant_of(seed: int, number: int) -> tuple[str, str, str]:
    rng = random.Random(f"{seed}:grant:{number}")
    return rng.choice(PREPAID), f"{rng.randint(1, 50)}.{rng.randint(0, 99):02d}", f"g-{number}"


# -- one process ---------------------------------------------------------------------------------------

def worker(url: str, seed: int, index: int, seconds: float, started_iso: str, barrier) -> WorkerOutcome:
    """Mix writes on the ledger at `url` for `seconds`, with random.Random(seed + index)."""
    from meterdesk.domain.errors import Conflict
    from meterdesk.services.billing import close_period
    from meterdesk.services.context import now_us
    from meterdesk.services.corrections import correct_entry
    from meterdesk.services.credits import grant_credits
    from meterdesk.services.imports import import_usage
    from meterdesk.services.recording import record_usage
    from meterdesk.services.ledgers import open_ledger

    rng = random.Random(seed + index)
    started = datetime.fromisoformat(started_iso)
    outcome = WorkerOutcome(index)
    ledger = open_ledger(url)
    last_month = str(ledger.timeline.period_of(now_us()).previous())
    correctable: list[tuple[int, str]] = []  # (entry id, unit) of usage entries this process was told about
    folder = Path(tempfile.mkdtemp(prefix=f"meterdesk-soak-{index}-"))
    kinds, weights = zip(*OPERATIONS)
    if barrier is not None:
        barrier.wait()
    begin = time.monotonic()
    deadline = begin + seconds
    try:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            outcome.operations[kind] += 1
            try:
                if kind == "record":
                    usage = usage_of(seed, rng.randrange(USAGE_POOL), started)
                    result = record_usage(ledger, usage.customer, usage.unit, usage.amount, usage.request_id,
                                          occurred_at=usage.occurred_at, source="api", actor=f"soak-{index}")
                    outcome.usage.add((usage.customer, usage.request_id))
                    outcome.acknowledgements += 1
                    outcome.late += result.late and not result.duplicate
                    if usage.unit != "builds":
                        correctable.append((result.entry_id, usage.unit))
                elif kind == "import":
                    lines = [usage_of(seed, rng.randrange(USAGE_POOL), started) for _ in range(rng.randint(3, 25))]
                    path = folder / f"batch-{outcome.operations[kind]}.csv"
                    path.write_text("customer,unit,amount,request_id,occurred_at\n" + "".join(
                        f"{u.customer},{u.unit},{u.amount},{u.request_id},{u.occurred_at}\n" for u in lines))
                    result = import_usage(ledger, path, actor=f"soak-{index}")
                    rejected = {error["line"] for error in result.errors}
                    if rejected:
                        outcome.errors.append(f"import rejected lines: {result.errors[:3]}")
                    accepted = [(u.customer, u.request_id) for line, u in enumerate(lines, start=2) if line not in rejected]
                    outcome.usage.update(accepted)
                    outcome.acknowledgements += len(accepted)
                elif kind == "correct":
                    if not correctable:
                        continue
                    entry_id, unit = correctable.pop(rng.randrange(len(correctable)))
                    amount = {"api_calls": lambda: str(rng.randint(0, 400)),
                              "storage_gb": lambda: f"{rng.randint(0, 3000) / 1000:.3f}",
                              "seats": lambda: str(rng.randint(0, 25))}[unit]()
                    result = correct_entry(ledger, entry_id, amount, "soak correction", actor=f"soak-{index}")
                    if result.replacement_id is not None:
                        correctable.append((result.replacement_id, unit))
                elif kind == "grant":
                    customer, amount, request_id = grant_of(seed, rng.randrange(GRANT_POOL))
                    grant_credits(ledger, customer, amount, request_id, actor=f"soak-{index}")
                    outcome.grants.add((customer, request_id))
                else:
                    close_period(ledger, last_month, actor=f"soak-{index}")
            except Conflict as error:
                # What the race allows: an entry corrected by another process first, a period closed by
                # another at the same moment. Anything else refused is a failure.
                text = str(error)
                if (kind == "correct" and "already corrected" in text) or "concurrently" in text:
                    outcome.conflicts[kind] += 1
                else:
                    outcome.errors.append(f"{kind}: {type(error).__name__}: {text}")
            except Exception as error:  # noqa: BLE001 - reported, never swallowed: the soak fails on it
                outcome.errors.append(f"{kind}: {type(error).__name__}: {error}")
    finally:
        outcome.seconds = time.monotonic() - begin
        ledger.close()
    return outcome


# -- the whole soak ------------------------------------------------------------------------------------

def run_soak(url: str, *, seconds: float, seed: int = 1, processes: int = 3) -> SoakReport:
    """Set the soak's catalog up on the empty ledger at `url`, run `processes` workers for `seconds`, check."""
    from meterdesk.services.verify import request_ids, verify_ledger
    from meterdesk.services.ledgers import open_ledger

    ledger = open_ledger(url)
    try:
        set_up(ledger)
    finally:
        ledger.close()
    started = datetime.now(UTC).replace(microsecond=0)
    context = multiprocessing.get_context("spawn")
    begin = time.monotonic()
    with context.Manager() as manager:
        barrier = manager.Barrier(processes)
        with context.Pool(processes) as pool:
            outcomes = pool.starmap(worker, [(url, seed, i, seconds, started.isoformat(), barrier) for i in range(processes)])
    elapsed = time.monotonic() - begin
    ledger = open_ledger(url)
    try:
        stored_usage, stored_grants = request_ids(ledger)
        result = verify_ledger(ledger)
    finally:
        ledger.close()
    problems = exactly_once_problems(outcomes, stored_usage, stored_grants)
    return SoakReport(seed, processes, elapsed, outcomes, result.checked.get("entries", 0), problems,
                      [str(d) for d in result.differences], result.seconds, result.checked)


def exactly_once_problems(outcomes: list[WorkerOutcome], stored_usage: list, stored_grants: list) -> list[str]:
    """Every acknowledged request id stored exactly once, and nothing stored that nobody acknowledged."""
    problems = []
    for what, stored, acknowledged in (
        ("usage", stored_usage, set().union(*(o.usage for o in outcomes))),
        ("credit grant", stored_grants, set().union(*(o.grants for o in outcomes)) | {(c, "welcome") for c in PREPAID}),
    ):
        counts = Counter(map(tuple, stored))
        problems += [f"{what} {key} stored {n} times" for key, n in sorted(counts.items()) if n != 1]
        problems += [f"{what} {key} acknowledged but not stored" for key in sorted(acknowledged - set(counts))]
        problems += [f"{what} {key} stored but never acknowledged" for key in sorted(set(counts) - acknowledged)]
    return problems
