"""`meterdesk verify`: every derived figure recomputed from the append-only entries and compared with what is stored.

What is recomputed, each from the ledger tables alone:
- the daily rollup (`usage_daily`): per customer, billed period, unit and local day of the billing time zone,
  the quantity, entries, reversals, the late/correction part and a `max` unit's peak;
- balances (`customer_balances`): granted = the credit grants, charged = the entries' charges, balance = the
  difference; a prepaid customer's entries all carry a charge, a postpaid customer's none;
- prepaid charges: per customer, unit and billed period the charges add up to price(period total) -
  price(0) under the charge of the plan version pricing that period (each charge is price(after) -
  price(before), so they telescope);
- the period seals: every entry sits in the period its billed_at falls in; an entry not marked late was billed
  when it occurred; a late entry occurred in an earlier period and every period from that one to the one
  before its own was closed; no entry was recorded into a period after its invoice was made;
- corrections: a reversal negates a usage entry of the same customer, unit and time; a replacement replaces
  an entry that was reversed;
- invoices: each line (base fee, usage and late/correction lines per charge) priced again by the invoice's
  plan version from the entries billed in its period — its usage exactly as it stood at the close — and the
  total the sum of the lines; one settlement row per invoice, in a state its recorded Stripe ids allow.

Everything is read in one snapshot; the grouping is done by the database (store/verify_queries.py).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from meterdesk.domain.money import round_balance, round_money
from meterdesk.domain.periods import Period, from_micros
from meterdesk.domain.pricing import charge_price
from meterdesk.domain.units import Aggregation
from meterdesk.services.billing import InvoiceLine, invoice_lines_for
from meterdesk.services.context import now_us
from meterdesk.services.shapes import exact_money, money, plain, timestamp
from meterdesk.store.codec import decode_money, decode_quantity, encode_money
from meterdesk.store import verify_queries as q
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import (
    PlanVersionRow,
    SubscriptionRow,
    UnitRow,
    all_units,
    plan_version_by_id,
    plan_versions_in_force,
    subscriptions_of_many,
)

EPOCH = date(1970, 1, 1)
SETTLEMENT_STATES = ("pending", "customer_ready", "invoice_created", "items_created", "finalized", "failed")
STEPS = (
    "reading the catalog",
    "grouping the entries",
    "the daily rollup",
    "balances and prepaid charges",
    "period seals and corrections",
    "invoices and settlements",
)


@dataclass(frozen=True, slots=True)
class Difference:
    what: str
    expected: str
    found: str

    def to_json(self) -> dict:
        return {"what": self.what, "expected": self.expected, "found": self.found}

    def __str__(self) -> str:
        return f"{self.what}: expected {self.expected}, found {self.found}"


@dataclass(frozen=True, slots=True)
class VerifyProgress:
    done: int
    total: int
    step: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    checked: dict[str, int]
    differences: tuple[Difference, ...]
    seconds: float
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences and not self.cancelled

    def to_json(self) -> dict:
        shape = {
            "ok": self.ok,
            "checked": dict(self.checked),
            "differences": [d.to_json() for d in self.differences],
            "seconds": round(self.seconds, 3),
        }
        if self.cancelled:
            shape["cancelled"] = True
        return shape


def request_ids(ledger: Ledger) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Every (customer, request id) the ledger holds: of usage entries (corrections left out) and of credit
    grants, for exactly-once checks."""
    with ledger.read() as connection:
        q.snapshot(connection)
        return q.usage_request_ids(connection), q.grant_request_ids(connection)


class _Cancelled(Exception):
    pass


def verify_ledger(
    ledger: Ledger,
    progress: Callable[[VerifyProgress], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> VerifyResult:
    """Recompute every derived figure from the entries and list each difference from what is stored."""
    started = time.monotonic()
    run = _Run(ledger)

    def step(index: int) -> None:
        if cancelled and cancelled():
            raise _Cancelled
        if progress:
            progress(VerifyProgress(index, len(STEPS), STEPS[index]))

    stopped = False
    with ledger.read() as connection:
        q.snapshot(connection)
        try:
            step(0)
            run.read_catalog(connection)
            step(1)
            run.group_entries(connection)
            step(2)
            run.check_rollup(connection)
            step(3)
            run.check_balances()
            run.check_prepaid_charges(connection)
            step(4)
            run.check_seals(connection)
            run.check_corrections(connection)
            step(5)
            run.check_invoices(connection)
        except _Cancelled:
            stopped = True
    if progress and not stopped:
        progress(VerifyProgress(len(STEPS), len(STEPS), "done"))
    return VerifyResult(dict(run.checked), tuple(run.differences), time.monotonic() - started, stopped)


class _Run:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.timeline = ledger.timeline
        self.checked: dict[str, int] = {}
        self.differences: list[Difference] = []
        self.units: dict[int, UnitRow] = {}
        self.customers: dict[int, tuple] = {}  # id -> customers_and_balances row
        self.subscriptions: dict[int, list[SubscriptionRow]] = {}
        self.version_rows: list[tuple] = []
        self.versions_in_force: dict[int, dict[int, int]] = {}  # period start -> plan id -> version id
        self.segments: list[tuple[int | None, int]] = [(None, 0)]
        # (customer id, period, unit id, day ISO) -> entry_days' figures
        self.days: dict[tuple[int, str, int, str], tuple] = {}
        self.peaks: dict[tuple[int, str, int, str], tuple[int, int]] = {}
        self.invoices: dict[tuple[int, str], tuple] = {}  # (customer id, period) -> invoice row

    # -- helpers ------------------------------------------------------------------------------------
    def differ(self, what: str, expected, found) -> None:
        self.differences.append(Difference(what, str(expected), str(found)))

    def customer_name(self, customer_id: int) -> str:
        row = self.customers.get(customer_id)
        return row[1] if row else f"customer#{customer_id}"

    def unit_code(self, unit_id: int) -> str:
        unit = self.units.get(unit_id)
        return unit.code if unit else f"unit#{unit_id}"

    def quantity_text(self, unit_id: int, value: int) -> str:
        unit = self.units.get(unit_id)
        return plain(decode_quantity(value, unit.unit.decimals if unit else 0))

    def plan_of(self, connection, customer_id: int, period: Period) -> tuple[SubscriptionRow | None, PlanVersionRow | None]:
        """The subscription and plan version that price a customer's period (as queries.plan_for_period)."""
        overlapping = [s for s in self.subscriptions.get(customer_id, []) if s.overlaps(period)]
        if not overlapping:
            return None, None
        subscription = overlapping[-1]
        start, _ = self.timeline.bounds(period)
        if start not in self.versions_in_force:
            self.versions_in_force[start] = plan_versions_in_force(self.version_rows, start)
        version_id = self.versions_in_force[start].get(subscription.plan_id)
        if version_id is None:
            return subscription, None
        return subscription, plan_version_by_id(connection, version_id, self.ledger.cache)

    # -- reading ------------------------------------------------------------------------------------
    def read_catalog(self, connection) -> None:
        self.units = {row.id: row for row in all_units(connection)}
        self.customers = {row[0]: row for row in q.customers_and_balances(connection)}
        self.subscriptions = subscriptions_of_many(connection, list(self.customers)) if self.customers else {}
        self.version_rows = q.plan_version_rows(connection)
        # Every billed_at lies between the earliest occurred_at (an entry is billed when it occurs or, late,
        # later) and now (a late entry is billed at the moment it was written).
        low, high = q.occurred_range(connection)
        if low is not None:
            self.segments = self.time_segments(min(low, now_us()), max(high, now_us()))

    def time_segments(self, low: int, high: int) -> list[tuple[int | None, int]]:
        """The billing time zone's UTC offsets between two instants as (until, offset) pieces, so that an
        instant's local day number is (instant + offset) // one day. The offset changes at the zone's
        transitions, found between the day starts where it differs (a 25-hour day's last hour is the
        next day's in UTC+offset terms only if the piece ends at its start, not at the transition)."""
        def offset(instant: int) -> int:
            return from_micros(instant).astimezone(self.timeline.timezone).utcoffset() // timedelta(microseconds=1)

        instants: list[int] = []
        period, last = self.timeline.period_of(low), self.timeline.period_of(high)
        while True:
            instants.extend(self.timeline.days(period)[0])
            if period == last:
                break
            period = period.next()
        instants.append(self.timeline.bounds(last)[1])
        pieces: list[tuple[int, int]] = [(instants[0], offset(instants[0]))]  # (from, offset)
        for before, after in zip(instants, instants[1:]):
            if offset(after) != pieces[-1][1]:
                first, last_same = after, before  # the transition lies in (last_same, first]
                while first - last_same > 1:
                    middle = (first + last_same) // 2
                    if offset(middle) == pieces[-1][1]:
                        last_same = middle
                    else:
                        first = middle
                pieces.append((first, offset(first)))
        return [(pieces[i + 1][0] if i + 1 < len(pieces) else None, value) for i, (_, value) in enumerate(pieces)]

    def group_entries(self, connection) -> None:
        entries = 0
        for row in q.entry_days(connection, self.segments):
            customer_id, period, unit_id, day_number = row[:4]
            day = (EPOCH + timedelta(days=int(day_number))).isoformat()
            self.days[(customer_id, period, unit_id, day)] = tuple(int(v or 0) for v in row[4:])
            usage = int(row[5]) + int(row[6])
            entries += usage + int(row[6])
        self.checked["entries"] = entries
        max_units = sorted(unit_id for unit_id, unit in self.units.items() if unit.unit.aggregation is Aggregation.MAX)
        for customer_id, period, unit_id, day_number, peak, peak_at_close in q.peak_days(connection, max_units, self.segments):
            day = (EPOCH + timedelta(days=int(day_number))).isoformat()
            self.peaks[(customer_id, period, unit_id, day)] = (int(peak or 0), int(peak_at_close or 0))

    # -- the daily rollup -----------------------------------------------------------------------------
    def check_rollup(self, connection) -> None:
        stored = {(row[0], row[1], row[2], row[3]): tuple(int(v) for v in row[4:]) for row in q.stored_rollup(connection)}
        self.checked["rollup_rows"] = len(stored)
        fields = ("quantity", "entries", "reversals", "adjusted_quantity", "adjusted_entries", "peak")
        quantities = {"quantity", "adjusted_quantity", "peak"}
        for key in sorted(set(self.days) | set(stored), key=lambda k: (self.customer_name(k[0]), k[1], self.unit_code(k[2]), k[3])):
            customer_id, period, unit_id, day = key
            name = f"usage_daily {self.customer_name(customer_id)} {period} {self.unit_code(unit_id)} {day}"
            figures = self.days.get(key)
            expected = None
            if figures is not None:
                expected = (*figures[:5], self.peaks.get(key, (0, 0))[0])
                if not day.startswith(period):
                    self.differ(f"entries of {self.customer_name(customer_id)} {self.unit_code(unit_id)} billed in {period}",
                                f"billed_at inside {period}", f"billed_at on {day}")
            found = stored.get(key)
            if expected is None:
                self.differ(name, "no row (no entry billed that day)", "a row: " + self._rollup_text(unit_id, found))
                continue
            if found is None:
                self.differ(name, "a row: " + self._rollup_text(unit_id, expected), "no row")
                continue
            for field, want, have in zip(fields, expected, found):
                if want != have:
                    if field in quantities:
                        want, have = self.quantity_text(unit_id, want), self.quantity_text(unit_id, have)
                    self.differ(f"{name} {field}", want, have)

    def _rollup_text(self, unit_id: int, figures: tuple) -> str:
        return f"quantity {self.quantity_text(unit_id, figures[0])}, entries {figures[1]}, reversals {figures[2]}"

    # -- balances and prepaid charges ------------------------------------------------------------------
    def check_balances(self) -> None:
        charged: dict[int, int] = defaultdict(int)
        with_charge: dict[int, int] = defaultdict(int)
        rows: dict[int, int] = defaultdict(int)
        for (customer_id, _period, _unit, _day), figures in self.days.items():
            charged[customer_id] += figures[6]
            with_charge[customer_id] += figures[7]
            rows[customer_id] += figures[1] + 2 * figures[2]
        self.checked["customers"] = len(self.customers)
        for customer_id, row in sorted(self.customers.items(), key=lambda item: item[1][1]):
            _, name, mode, _currency, granted, stored_charged, balance, grants, _count = row
            prepaid = mode == "prepaid"
            if prepaid and with_charge[customer_id] != rows[customer_id]:
                self.differ(f"entries of prepaid customer {name} without a charge", 0, rows[customer_id] - with_charge[customer_id])
            if not prepaid and with_charge[customer_id]:
                self.differ(f"entries of postpaid customer {name} with a charge", 0, with_charge[customer_id])
            if not prepaid and grants:
                self.differ(f"credit grants of postpaid customer {name}", 0, exact_money(decode_money(grants)))
            if granted is None:
                self.differ(f"customer_balances {name}", "a row", "no row")
                continue
            want_charged = charged[customer_id]
            for field, want, have in (
                ("granted", int(grants), int(granted)),
                ("charged", want_charged, int(stored_charged)),
                ("balance", int(grants) - want_charged, int(balance)),
            ):
                if want != have:
                    self.differ(f"customer_balances {name} {field}", exact_money(decode_money(want)), exact_money(decode_money(have)))

    def check_prepaid_charges(self, connection) -> None:
        # Per prepaid customer, unit and billed period: (sum, entries, peak, charged).
        totals: dict[tuple[int, int, str], list[int]] = {}
        for (customer_id, period, unit_id, day), figures in self.days.items():
            if self.customers.get(customer_id, (None, None, None))[2] != "prepaid":
                continue
            total = totals.setdefault((customer_id, unit_id, period), [0, 0, 0, 0])
            total[0] += figures[0]
            total[1] += figures[1]
            total[2] = max(total[2], self.peaks.get((customer_id, period, unit_id, day), (0, 0))[0])
            total[3] += figures[6]
        self.checked["prepaid_charges"] = len(totals)
        for (customer_id, unit_id, period), (quantity, count, peak, charged) in sorted(
            totals.items(), key=lambda item: (self.customer_name(item[0][0]), item[0][2], self.unit_code(item[0][1]))
        ):
            unit = self.units[unit_id]
            aggregation = unit.unit.aggregation
            if aggregation is Aggregation.COUNT:
                final = Decimal(count)
            else:
                final = decode_quantity(peak if aggregation is Aggregation.MAX else quantity, unit.unit.decimals)
            _, version = self.plan_of(connection, customer_id, Period.parse(period))
            charge = version.plan.charge_for(unit.code) if version is not None else None
            expected = 0
            if charge is not None:
                expected = encode_money(round_balance(charge_price(charge, final)) - round_balance(charge_price(charge, Decimal(0))))
            if expected != charged:
                self.differ(
                    f"prepaid charges {self.customer_name(customer_id)} {period} {unit.code} (period total {plain(final)})",
                    exact_money(decode_money(expected)),
                    exact_money(decode_money(charged)),
                )

    # -- period seals and corrections --------------------------------------------------------------------
    def check_seals(self, connection) -> None:
        closed: dict[int, set[str]] = defaultdict(set)
        for row in q.invoices_with_settlements(connection):
            self.invoices[(row[1], row[2])] = row
            closed[row[1]].add(row[2])
        # Entries recorded into a period after its invoice was made; entries billed at another instant than
        # they occurred without being late.
        latest: dict[tuple[int, str], int] = {}
        for (customer_id, period, unit_id, day), figures in self.days.items():
            key = (customer_id, period)
            latest[key] = max(latest.get(key, 0), figures[5])
            if figures[8]:
                self.differ(
                    f"entries of {self.customer_name(customer_id)} {self.unit_code(unit_id)} on {day} not marked late",
                    "billed when they occurred", f"{figures[8]} billed at another instant",
                )
        for key, recorded in sorted(latest.items(), key=lambda item: (self.customer_name(item[0][0]), item[0][1])):
            invoice = self.invoices.get(key)
            if invoice is not None and recorded > invoice[6]:
                self.differ(
                    f"entries of {self.customer_name(key[0])} billed in closed period {key[1]}",
                    f"recorded before its invoice {invoice[0]} was made ({timestamp(invoice[6])})",
                    f"one recorded at {timestamp(recorded)}",
                )
        late = 0
        for (customer_id, billed, unit_id, day), figures in sorted(self.days.items(), key=lambda item: (self.customer_name(item[0][0]), item[0][1], self.unit_code(item[0][2]), item[0][3])):
            if not figures[9]:
                continue
            late += figures[9]
            # Each late entry's period of occurrence must be earlier than the one it is billed in, and every
            # period from it to the one before must be closed: for the group, the earliest and the latest.
            earliest, latest_late = self.timeline.period_of(figures[10]), self.timeline.period_of(figures[11])
            name = f"late entries of {self.customer_name(customer_id)} {self.unit_code(unit_id)} billed in {billed} on {day}"
            billed_period = Period.parse(billed)
            if not latest_late < billed_period:
                self.differ(name, f"billed in a period after the one they occurred in", f"one occurred in {latest_late}")
                continue
            cursor = earliest
            while cursor < billed_period:
                if str(cursor) not in closed[customer_id]:
                    self.differ(name, f"{cursor} closed (one occurred in {earliest})", f"{cursor} open")
                    break
                cursor = cursor.next()
        self.checked["late_entries"] = late

    def check_corrections(self, connection) -> None:
        checked, problems = q.correction_problems(connection)
        self.checked["corrections"] = checked
        for (entry_id, kind, corrects_id, customer_id, unit_id, quantity, occurred_at,
             o_kind, o_customer, o_unit, o_quantity, o_occurred, reversed_) in problems:
            name = f"entry {entry_id} ({kind} of entry {corrects_id})"
            if o_kind is None:
                self.differ(name, f"entry {corrects_id} exists", "no such entry")
                continue
            if o_kind != "usage":
                self.differ(name, f"entry {corrects_id} a usage entry", f"a {o_kind}")
            if o_customer != customer_id:
                self.differ(f"{name} customer", self.customer_name(o_customer), self.customer_name(customer_id))
            if o_unit != unit_id:
                self.differ(f"{name} unit", self.unit_code(o_unit), self.unit_code(unit_id))
            if o_occurred != occurred_at:
                self.differ(f"{name} occurred_at", timestamp(o_occurred), timestamp(occurred_at))
            if kind == "reversal" and quantity != -o_quantity:
                self.differ(f"{name} amount", "-" + self.quantity_text(unit_id, o_quantity), self.quantity_text(unit_id, quantity))
            if kind == "usage" and not reversed_:
                self.differ(name, f"entry {corrects_id} reversed", "no reversal")

    # -- invoices and settlements --------------------------------------------------------------------------
    def check_invoices(self, connection) -> None:
        lines: dict[int, list[tuple]] = defaultdict(list)
        count = 0
        for row in q.all_invoice_lines(connection):
            lines[row[0]].append(row)
            count += 1
        self.checked["invoices"] = len(self.invoices)
        self.checked["invoice_lines"] = count
        # Per customer, period and unit: (total, adjusted) as the invoice's usage stood at the close.
        usage: dict[tuple[int, str], dict[int, list[int]]] = defaultdict(dict)
        for (customer_id, period, unit_id, day), figures in self.days.items():
            if (customer_id, period) not in self.invoices:
                continue
            total = usage[(customer_id, period)].setdefault(unit_id, [0, 0, 0, 0, 0])
            total[0] += figures[0]
            total[1] += figures[1]
            total[2] += figures[3]
            total[3] += figures[4]
            total[4] = max(total[4], self.peaks.get((customer_id, period, unit_id, day), (0, 0))[1])
        settlements = 0
        for key, row in sorted(self.invoices.items(), key=lambda item: (item[0][1], self.customer_name(item[0][0]))):
            (invoice_id, customer_id, period_name, currency, version_id, total, _created,
             state, stripe_invoice, _stripe_status, line_count, items, stripe_customer) = row
            name = f"invoice {invoice_id} {self.customer_name(customer_id)} {period_name}"
            stored = lines.get(invoice_id, [])
            line_sum = sum(int(line[5]) for line in stored)
            if line_sum != int(total):
                self.differ(f"{name} total", f"{_amount(decode_money(line_sum), currency)} (the sum of its lines)", _amount(decode_money(int(total)), currency))
            customer = self.customers.get(customer_id)
            if customer is not None and customer[3] != currency:
                self.differ(f"{name} currency", customer[3], currency)
            self._check_lines(connection, name, customer_id, Period.parse(period_name), currency, version_id, usage.get(key, {}), stored)
            if state is None:
                self.differ(f"{name} settlement", "one settlements row", "none")
                continue
            settlements += 1
            self._check_settlement(name, state, stripe_invoice, line_count, items, stripe_customer)
        self.checked["settlements"] = settlements
        for (invoice_id,) in q.orphan_settlements(connection):
            self.differ(f"settlement of invoice {invoice_id}", "an invoice", "no such invoice")

    def _check_lines(self, connection, name: str, customer_id: int, period: Period, currency: str, version_id, usage: dict, stored: list[tuple]) -> None:
        subscription, in_force = self.plan_of(connection, customer_id, period)
        if version_id is None:
            if in_force is not None:
                self.differ(f"{name} plan version", f"{in_force.id} (version {in_force.version})", "none")
            return
        version = plan_version_by_id(connection, version_id, self.ledger.cache)
        if in_force is not None and in_force.id != version.id:
            self.differ(f"{name} plan version", f"{in_force.id} (version {in_force.version} in force for {period})", f"{version.id} (version {version.version})")
        if subscription is None:
            self.differ(f"{name} subscription", f"one overlapping {period}", "none")
            return
        prepaid = self.customers[customer_id][2] == "prepaid"
        quantities: dict[str, tuple[Decimal, Decimal]] = {}
        for unit_id, (quantity, entries, adjusted_quantity, adjusted_entries, peak) in usage.items():
            unit = self.units[unit_id]
            aggregation, decimals = unit.unit.aggregation, unit.unit.decimals
            if aggregation is Aggregation.COUNT:
                quantities[unit.code] = (Decimal(entries), Decimal(adjusted_entries))
            elif aggregation is Aggregation.MAX:
                quantities[unit.code] = (decode_quantity(peak, decimals), Decimal(0))
            else:
                quantities[unit.code] = (decode_quantity(quantity, decimals), decode_quantity(adjusted_quantity, decimals))
        expected: tuple[InvoiceLine, ...] = invoice_lines_for(version.plan, period, subscription, prepaid, quantities)
        for position in range(max(len(expected), len(stored))):
            want = expected[position] if position < len(expected) else None
            have = stored[position] if position < len(stored) else None
            label = f"{name} line {position + 1}"
            if want is None:
                self.differ(label, "no line", f"{have[2]} {have[3] or ''} {have[4]}: {_amount(decode_money(int(have[5])), currency)}".replace("  ", " "))
                continue
            what = f"{want.kind} {want.unit}" if want.unit else want.kind
            if have is None:
                self.differ(label, f"{what} {plain(want.quantity)}: {_amount(want.amount, currency)}", "no line")
                continue
            _, _, kind, unit_code, quantity_text, amount = have
            if (kind, unit_code) != (want.kind, want.unit):
                self.differ(f"{label} kind", what, f"{kind} {unit_code}" if unit_code else kind)
                continue
            if Decimal(quantity_text) != want.quantity:
                self.differ(f"{label} ({what}) quantity", plain(want.quantity), quantity_text)
            if int(amount) != encode_money(want.amount):
                self.differ(f"{label} ({what}) amount", _amount(want.amount, currency), _amount(decode_money(int(amount)), currency))

    def _check_settlement(self, name: str, state: str, stripe_invoice, line_count: int, items: int, stripe_customer) -> None:
        if state not in SETTLEMENT_STATES:
            self.differ(f"{name} settlement state", " | ".join(SETTLEMENT_STATES), state)
            return
        if state in ("invoice_created", "items_created", "finalized") and not stripe_invoice:
            self.differ(f"{name} settlement ({state})", "a Stripe invoice id", "none")
        if state in ("pending", "customer_ready") and stripe_invoice:
            self.differ(f"{name} settlement ({state})", "no Stripe invoice id yet", stripe_invoice)
        if state in ("customer_ready", "invoice_created", "items_created", "finalized") and not stripe_customer:
            self.differ(f"{name} settlement ({state})", "the customer's Stripe id", "none")
        if state in ("items_created", "finalized") and items != line_count:
            self.differ(f"{name} settlement ({state}) Stripe items", f"one per line ({line_count})", items)


def _amount(value: Decimal, currency: str) -> str:
    """An invoice amount in the currency's minor unit, or exact when it is not a whole number of them."""
    return money(value, currency) if round_money(value, currency) == value else exact_money(value)
