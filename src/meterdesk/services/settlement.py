"""Settlement: sending closed invoices to Stripe one recorded step at a time, resumable anywhere, never twice.

Each closed invoice has a row in `settlements` whose state moves

    pending -> customer_ready -> invoice_created -> items_created -> finalized

and becomes `failed` (with the reason) when a step fails; the next run retries it. Every Stripe write carries
an Idempotency-Key derived from meterdesk's ids (the gateway builds them), and every Stripe id is written to
the ledger in its own short transaction right after Stripe answered: the customer's
(`customers.stripe_customer_id`), the draft invoice's (`settlements.stripe_invoice_id`) and each line's
invoice item (`settlement_items`). So a run that stops anywhere — an exception, a killed process, a lost
connection between Stripe's commit and ours — is resumed by running settlement again: a recorded id skips its
step, and a step whose answer was lost finds the object Stripe made (the same idempotency key replays it for
24 hours; the gateway's search by meterdesk ids finds it after that). No database transaction is ever held open
across a network call.

The draft invoice is created before its items, and each item is created onto that draft (`invoice=`): items
made first would wait as the customer's *pending* items, and creating the invoice would sweep in every pending
item of the customer — another period's, say, whose settlement stopped halfway. Before finalizing, the draft's
items and total are compared with meterdesk's invoice to the minor unit; a draft that differs is not finalized.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from meterdesk.domain.errors import MeterdeskError, Unavailable
from meterdesk.domain.money import round_money, to_minor_units
from meterdesk.domain.periods import Period
from meterdesk.services.audit import record_audit
from meterdesk.services.billing import Invoice, invoice_by_id
from meterdesk.services.context import default_actor, now_us
from meterdesk.services.shapes import money
from meterdesk.store.writer import dialect_insert
from meterdesk.store.codec import decode_money
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import CustomerRow, customer_by_external_id, customer_by_id
from meterdesk.store.schema import customers, invoice_lines, invoices, settlement_items, settlements
from meterdesk.stripe_gateway import (
    StripeCustomerSpec,
    StripeFailed,
    StripeGateway,
    StripeItemSpec,
    StripeKeyMissing,
    StripeRejected,
    StripeUnavailable,
    api_key_from_environment,
    key_mode,
)

__all__ = [
    "RefreshResult",
    "SettleProgress",
    "SettleResult",
    "SettlementMismatch",
    "SettlementRow",
    "SettlementState",
    "StripeFailed",
    "StripeKeyMissing",
    "StripeRejected",
    "StripeUnavailable",
    "refresh_statuses",
    "settle",
    "settlement_overview",
    "settlement_periods",
    "stripe_key_mode",
    "stripe_setup_problem",
]


class SettlementState(StrEnum):
    """Where sending one invoice to Stripe stands; each is recorded as soon as it is reached."""

    PENDING = "pending"  # closed, nothing sent yet
    CUSTOMER_READY = "customer_ready"  # the Stripe customer exists and its id is recorded
    INVOICE_CREATED = "invoice_created"  # the draft Stripe invoice exists and its id is recorded
    ITEMS_CREATED = "items_created"  # one Stripe invoice item per line is on the draft, each id recorded
    FINALIZED = "finalized"  # finalized in Stripe with meterdesk's total: done, never touched again
    FAILED = "failed"  # the last attempt stopped with `error`; the next run resumes from the recorded ids


# Stripe statuses an invoice never leaves: refreshing them again would only cost requests.
_FINAL_STRIPE_STATUSES = frozenset({"paid", "void"})


class SettlementMismatch(MeterdeskError):
    """Stripe holds something for an invoice that differs from meterdesk's frozen invoice; it is not finalized."""

    exit_status = 6


# ------------------------------------------------------------------------------------------- read-outs


@dataclass(frozen=True, slots=True)
class SettlementRow:
    """One closed invoice and where its settlement stands (the Settlement page's row, `settle`'s JSON)."""

    invoice_id: int
    customer: str
    customer_name: str
    period: str
    currency: str
    total: Decimal
    state: SettlementState
    stripe_customer_id: str | None
    stripe_invoice_id: str | None
    stripe_status: str | None
    error: str | None
    attempts: int
    updated_at: int | None
    customer_email: str | None = None  # Stripe e-mails the invoice there; without one nobody receives it
    prepaid: bool = False  # a prepaid customer's usage was paid from its balance: its invoice may be 0.00

    @property
    def status(self) -> str:
        """Stripe's status once the invoice is in Stripe (open, paid, void, uncollectible), else the state."""
        if self.state is SettlementState.FINALIZED and self.stripe_status:
            return self.stripe_status
        return self.state.value

    @property
    def settled(self) -> bool:
        return self.state is SettlementState.FINALIZED

    @property
    def failed(self) -> bool:
        return self.state is SettlementState.FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.invoice_id,
            "customer": self.customer,
            "period": self.period,
            "currency": self.currency,
            "total": money(self.total, self.currency),
            "stripe_invoice_id": self.stripe_invoice_id,
            "status": self.status,
            "state": self.state.value,
            "stripe_status": self.stripe_status,
            "stripe_customer_id": self.stripe_customer_id,
            "error": self.error,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class SettleProgress:
    """Reported after each invoice a run worked on."""

    done: int
    total: int
    invoice_id: int
    customer: str
    state: SettlementState
    error: str | None = None


@dataclass
class SettleResult:
    invoices: list[SettlementRow]  # every selected closed invoice, as it stands after the run
    finalized_now: list[int] = field(default_factory=list)
    cancelled: bool = False

    @property
    def failed(self) -> list[SettlementRow]:
        return [row for row in self.invoices if row.failed]

    def to_json(self) -> dict[str, Any]:
        return {
            "invoices": [row.to_json() for row in self.invoices],
            "finalized_now": len(self.finalized_now),
            "failed": len(self.failed),
            **({"cancelled": True} if self.cancelled else {}),
        }


@dataclass
class RefreshResult:
    invoices: list[SettlementRow]
    changed: list[tuple[int, str | None, str]] = field(default_factory=list)  # (invoice id, before, now)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (invoice id, why it could not be read)

    @property
    def failed(self) -> list[tuple[int, str]]:
        return self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "invoices": [row.to_json() for row in self.invoices],
            "changed": [{"id": i, "from": before, "to": now} for i, before, now in self.changed],
            "errors": [{"id": i, "error": why} for i, why in self.errors],
        }


def settlement_overview(
    ledger: Ledger,
    period: str | Period | None = None,
    *,
    customer: str | None = None,
    invoice_ids: Collection[int] | None = None,
) -> list[SettlementRow]:
    """Every closed invoice of the period (all periods when None), by customer: total, state, Stripe ids, status."""
    period_name = _period_name(period)
    with ledger.read() as connection:
        if customer is not None:
            customer_by_external_id(connection, customer)  # an unknown customer is NotFound, not "nothing"
        return _rows(connection, period_name, customer, invoice_ids)


def settlement_periods(ledger: Ledger) -> list[str]:
    """The periods that have closed invoices, newest first."""
    with ledger.read() as connection:
        return list(connection.execute(select(invoices.c.period).distinct().order_by(invoices.c.period.desc())).scalars())


def stripe_setup_problem() -> str | None:
    """Why settlement cannot reach Stripe without even trying (no API key), or None when a key is configured.

    Reads $STRIPE_API_KEY and the OS keyring (which may be slow): call it off the GUI thread.
    """
    try:
        StripeGateway.from_environment().close()
    except StripeKeyMissing as error:
        return str(error)
    return None


def stripe_key_mode() -> str | None:
    """"test" or "live" for the configured Stripe key, None without one. Reads the keyring: off the GUI thread."""
    api_key = api_key_from_environment()
    return key_mode(api_key) if api_key else None


def _period_name(period: str | Period | None) -> str | None:
    if period is None or period == "":
        return None
    return str(period if isinstance(period, Period) else Period.parse(period))


def _rows(
    connection: Connection, period: str | None, customer: str | None, invoice_ids: Collection[int] | None
) -> list[SettlementRow]:
    query = (
        select(
            invoices.c.id,
            invoices.c.period,
            invoices.c.currency,
            invoices.c.total,
            customers.c.external_id,
            customers.c.name,
            customers.c.stripe_customer_id,
            customers.c.email,
            customers.c.mode,
            settlements.c.state,
            settlements.c.stripe_invoice_id,
            settlements.c.stripe_status,
            settlements.c.error,
            settlements.c.attempts,
            settlements.c.updated_at,
        )
        .join(customers, customers.c.id == invoices.c.customer_id)
        .outerjoin(settlements, settlements.c.invoice_id == invoices.c.id)
        .order_by(invoices.c.period, customers.c.external_id, invoices.c.id)
    )
    if period is not None:
        query = query.where(invoices.c.period == period)
    if customer is not None:
        query = query.where(customers.c.external_id == customer)
    if invoice_ids is not None:
        query = query.where(invoices.c.id.in_(list(invoice_ids)))
    return [
        SettlementRow(
            invoice_id=row.id,
            customer=row.external_id,
            customer_name=row.name,
            period=row.period,
            currency=row.currency,
            total=decode_money(row.total),
            state=SettlementState(row.state or SettlementState.PENDING),
            stripe_customer_id=row.stripe_customer_id,
            stripe_invoice_id=row.stripe_invoice_id,
            stripe_status=row.stripe_status,
            error=row.error,
            attempts=row.attempts or 0,
            updated_at=row.updated_at,
            customer_email=row.email or None,
            prepaid=row.mode == "prepaid",
        )
        for row in connection.execute(query)
    ]


# ------------------------------------------------------------------------------------------------ settle


def settle(
    ledger: Ledger,
    *,
    period: str | Period | None = None,
    customer: str | None = None,
    invoice_ids: Collection[int] | None = None,
    gateway: StripeGateway | None = None,
    progress: Callable[[SettleProgress], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    actor: str | None = None,
) -> SettleResult:
    """Send every closed, unsettled invoice of the selection to Stripe (all periods and customers by default).

    Safe to run any number of times: finalized invoices are skipped without a Stripe request, failed and
    interrupted ones resume from what was recorded. An invoice Stripe refuses (or that differs in Stripe) is
    marked failed with the reason and the run goes on. When Stripe cannot be reached, the invoice in hand is
    marked failed and StripeUnavailable is raised, since every other invoice would fail the same way; without
    an API key StripeKeyMissing is raised before anything is touched. `cancelled()` is asked between invoices,
    `progress` told after each one.
    """
    actor = actor or default_actor("cli")
    period_name = _period_name(period)
    selected = settlement_overview(ledger, period_name, customer=customer, invoice_ids=invoice_ids)
    todo = [row for row in selected if not row.settled]
    result = SettleResult([])
    own_gateway: StripeGateway | None = None
    run = _Run(ledger, actor)
    try:
        for done, row in enumerate(todo, start=1):
            if cancelled is not None and cancelled():
                result.cancelled = True
                break
            if gateway is None:
                gateway = own_gateway = StripeGateway.from_environment()
            state, error = run.settle_invoice(gateway, row.invoice_id)
            if state is SettlementState.FINALIZED:
                result.finalized_now.append(row.invoice_id)
            if progress is not None:
                progress(SettleProgress(done, len(todo), row.invoice_id, row.customer, state, error))
    finally:
        if own_gateway is not None:
            own_gateway.close()
    result.invoices = settlement_overview(ledger, period_name, customer=customer, invoice_ids=invoice_ids)
    return result


@dataclass(frozen=True, slots=True)
class _Work:
    """What one invoice needs, read in one transaction at the start of its attempt."""

    invoice: Invoice
    customer: CustomerRow
    state: SettlementState  # the step reached, from the recorded ids
    stripe_invoice_id: str | None
    recorded_items: dict[int, str]  # line id -> Stripe item id
    items: tuple[StripeItemSpec, ...]
    total_minor: int


class _Run:
    """One settlement run: the customers already checked against Stripe in it, and the writes it makes."""

    def __init__(self, ledger: Ledger, actor: str) -> None:
        self.ledger = ledger
        self.actor = actor
        self.checked_customers: dict[int, str] = {}  # meterdesk customer row id -> Stripe customer id

    def settle_invoice(self, gateway: StripeGateway, invoice_id: int) -> tuple[SettlementState, str | None]:
        work = self._begin(invoice_id)
        if work is None:  # finalized meanwhile (another desk settled it)
            return SettlementState.FINALIZED, None
        try:
            self._send(gateway, work)
        except Unavailable as error:  # Stripe (or the ledger) unreachable: every further invoice would fail too
            self._fail_quietly(invoice_id, error)
            raise
        except MeterdeskError as error:  # refused by Stripe or differing from meterdesk: this invoice only
            reason = _one_line(error)
            self._fail(invoice_id, reason)
            return SettlementState.FAILED, reason
        except Exception as error:
            self._fail_quietly(invoice_id, error)
            raise
        return SettlementState.FINALIZED, None

    # ---- the steps

    def _send(self, gateway: StripeGateway, work: _Work) -> None:
        invoice, customer = work.invoice, work.customer
        state = work.state
        if work.total_minor != sum(spec.amount_minor or 0 for spec in work.items):  # never None here
            raise SettlementMismatch(
                f"invoice {invoice.id}: its lines add up to a different total than the invoice's "
                f"{money(invoice.total, invoice.currency)} {invoice.currency}; not sent"
            )

        stripe_customer = self.checked_customers.get(customer.id)
        if stripe_customer is None:
            spec = StripeCustomerSpec(customer.external_id, customer.name, customer.email)
            stripe_customer = gateway.ensure_customer(spec, customer.stripe_customer_id)
            self.checked_customers[customer.id] = stripe_customer
        if stripe_customer != customer.stripe_customer_id or state is SettlementState.PENDING:
            self._customer_ready(invoice.id, customer, stripe_customer, advance=state is SettlementState.PENDING)
            if state is SettlementState.PENDING:
                state = SettlementState.CUSTOMER_READY

        stripe_invoice = work.stripe_invoice_id
        if stripe_invoice is None:
            stripe_invoice = gateway.create_invoice(
                stripe_customer,
                invoice.id,
                invoice.period,
                f"meterdesk invoice {invoice.id}: base fee and usage for {invoice.period}",
                currency=invoice.currency,
                include_pending_items=False,
            )
            self._invoice_created(invoice.id, stripe_invoice)
            state = SettlementState.INVOICE_CREATED

        for spec in work.items:
            if spec.line_id not in work.recorded_items:
                item = gateway.create_invoice_item(stripe_customer, spec, stripe_invoice_id=stripe_invoice)
                self._item_created(invoice.id, spec.line_id, item)
        if state is not SettlementState.ITEMS_CREATED:
            self._advance(invoice.id, SettlementState.ITEMS_CREATED, "settlement.items_created",
                          stripe_invoice_id=stripe_invoice, items=len(work.items))

        self._check_draft(gateway, work, stripe_invoice)
        status = gateway.invoice_status(stripe_invoice)
        if status["status"] == "draft":
            if status["total"] != work.total_minor:
                raise SettlementMismatch(_total_differs(invoice, stripe_invoice, status["total"], work.total_minor, False))
            status = gateway.finalize_invoice(stripe_invoice, invoice.id)
        if status["total"] != work.total_minor:
            raise SettlementMismatch(_total_differs(invoice, stripe_invoice, status["total"], work.total_minor, True))
        self._finalized(invoice.id, stripe_invoice, status["status"], status.get("number"))

    def _check_draft(self, gateway: StripeGateway, work: _Work, stripe_invoice: str) -> None:
        """The Stripe invoice carries exactly one item per meterdesk line, each with the line's amount."""
        invoice = work.invoice
        wanted = {spec.line_id: spec.amount_minor for spec in work.items}
        ours, strangers = [], []
        for item in gateway.list_invoice_items(stripe_invoice):
            belongs = item["meterdesk_invoice_id"] == invoice.id and item["meterdesk_line_id"] in wanted
            (ours if belongs else strangers).append(item)
        seen: dict[int, int] = {}
        for item in ours:
            seen[item["meterdesk_line_id"]] = seen.get(item["meterdesk_line_id"], 0) + 1
        problems = []
        if strangers:
            listed = ", ".join(f"{i['id']} ({i.get('description') or 'no description'}: {i['amount']})" for i in strangers[:5])
            problems.append(f"{len(strangers)} item(s) that are not lines of this invoice: {listed}")
        missing = sorted(set(wanted) - set(seen))
        if missing:
            problems.append(f"no item for line(s) {', '.join(map(str, missing))}")
        doubled = sorted(line for line, count in seen.items() if count > 1)
        if doubled:
            problems.append(f"more than one item for line(s) {', '.join(map(str, doubled))}")
        wrong = sorted(
            f"line {i['meterdesk_line_id']}: {i['amount']} instead of {wanted[i['meterdesk_line_id']]}"
            for i in ours
            if i["amount"] != wanted[i["meterdesk_line_id"]]
        )
        if wrong:
            problems.append("different amounts (" + "; ".join(wrong) + ")")
        if problems:
            raise SettlementMismatch(
                f"Stripe invoice {stripe_invoice} for meterdesk invoice {invoice.id} has "
                + "; ".join(problems)
                + ". It was not finalized: fix the draft in the Stripe dashboard, then settle again."
            )

    # ---- what is recorded, each in its own short transaction

    def _begin(self, invoice_id: int) -> _Work | None:
        with self.ledger.write() as connection:
            invoice_row = connection.execute(select(invoices).where(invoices.c.id == invoice_id)).one()
            customer = customer_by_id(connection, invoice_row.customer_id)
            invoice = invoice_by_id(connection, invoice_id)
            record = connection.execute(select(settlements).where(settlements.c.invoice_id == invoice_id)).first()
            now = now_us()
            if record is None:  # closed before settlements were recorded at close: start it now
                connection.execute(
                    dialect_insert(connection, settlements)
                    .values(invoice_id=invoice_id, state=SettlementState.PENDING.value, attempts=0, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["invoice_id"])
                )
                record = connection.execute(select(settlements).where(settlements.c.invoice_id == invoice_id)).one()
            if record.state == SettlementState.FINALIZED:
                return None
            recorded_items = dict(
                connection.execute(
                    select(settlement_items.c.line_id, settlement_items.c.stripe_item_id)
                    .join(invoice_lines, invoice_lines.c.id == settlement_items.c.line_id)
                    .where(invoice_lines.c.invoice_id == invoice_id)
                ).all()
            )
            items = tuple(self._item_spec(invoice, line) for line in invoice.lines)
            if record.stripe_invoice_id is None:
                reached = SettlementState.CUSTOMER_READY if customer.stripe_customer_id else SettlementState.PENDING
            elif all(spec.line_id in recorded_items for spec in items):
                reached = SettlementState.ITEMS_CREATED
            else:
                reached = SettlementState.INVOICE_CREATED
            connection.execute(
                update(settlements)
                .where(settlements.c.invoice_id == invoice_id)
                .values(state=reached.value, attempts=settlements.c.attempts + 1, updated_at=now)
            )
            record_audit(connection, self.actor, "settlement.attempt", f"invoice:{invoice_id}",
                         state=reached.value, attempt=(record.attempts or 0) + 1)
        total_minor = to_minor_units(round_money(invoice.total, invoice.currency), invoice.currency)
        return _Work(invoice, customer, reached, record.stripe_invoice_id, recorded_items, items, total_minor)

    def _item_spec(self, invoice: Invoice, line) -> StripeItemSpec:
        start_us, end_us = self.ledger.timeline.bounds(Period.parse(invoice.period))
        return StripeItemSpec(
            line_id=line.id,
            invoice_id=invoice.id,
            description=line.description,
            currency=invoice.currency,
            # Each line was rounded once at close; Stripe gets that amount to the minor unit, so its total is
            # meterdesk's total. Zero lines go too (an invoice shows every charge of the plan); negative
            # correction lines are credits, which Stripe invoice items accept.
            amount_minor=to_minor_units(round_money(line.amount, invoice.currency), invoice.currency),
            unit_amount_decimal=None,
            quantity=None,
            period_start=start_us // 1_000_000,
            period_end=(end_us - 1) // 1_000_000,
        )

    def _customer_ready(self, invoice_id: int, customer: CustomerRow, stripe_customer: str, *, advance: bool) -> None:
        with self.ledger.write() as connection:
            recorded = connection.execute(
                select(customers.c.stripe_customer_id).where(customers.c.id == customer.id)
            ).scalar_one()
            if recorded is None:
                connection.execute(
                    update(customers).where(customers.c.id == customer.id).values(stripe_customer_id=stripe_customer)
                )
                record_audit(connection, self.actor, "settlement.stripe_customer", f"customer:{customer.external_id}",
                             stripe_customer_id=stripe_customer)
            elif recorded != stripe_customer:
                raise SettlementMismatch(
                    f"customer {customer.external_id!r} is recorded with Stripe customer {recorded}, but Stripe "
                    f"answered with {stripe_customer}; check both in the Stripe dashboard"
                )
            if advance:
                self._set_state(connection, invoice_id, SettlementState.CUSTOMER_READY, "settlement.customer_ready",
                                stripe_customer_id=stripe_customer)

    def _invoice_created(self, invoice_id: int, stripe_invoice: str) -> None:
        with self.ledger.write() as connection:
            changed = connection.execute(
                update(settlements)
                .where(settlements.c.invoice_id == invoice_id, settlements.c.stripe_invoice_id.is_(None))
                .values(stripe_invoice_id=stripe_invoice)
            ).rowcount
            if not changed:
                recorded = connection.execute(
                    select(settlements.c.stripe_invoice_id).where(settlements.c.invoice_id == invoice_id)
                ).scalar_one()
                if recorded != stripe_invoice:
                    raise SettlementMismatch(
                        f"invoice {invoice_id} is recorded as Stripe invoice {recorded}, but Stripe answered with "
                        f"{stripe_invoice}; check both in the Stripe dashboard"
                    )
            self._set_state(connection, invoice_id, SettlementState.INVOICE_CREATED, "settlement.invoice_created",
                            stripe_invoice_id=stripe_invoice)

    def _item_created(self, invoice_id: int, line_id: int, stripe_item: str) -> None:
        with self.ledger.write() as connection:
            connection.execute(
                dialect_insert(connection, settlement_items)
                .values(line_id=line_id, stripe_item_id=stripe_item, created_at=now_us())
                .on_conflict_do_nothing(index_elements=["line_id"])
            )
            recorded = connection.execute(
                select(settlement_items.c.stripe_item_id).where(settlement_items.c.line_id == line_id)
            ).scalar_one()
            if recorded != stripe_item:
                raise SettlementMismatch(
                    f"line {line_id} of invoice {invoice_id} is recorded as Stripe item {recorded}, but Stripe "
                    f"answered with {stripe_item}; check the draft in the Stripe dashboard"
                )
            record_audit(connection, self.actor, "settlement.item", f"invoice:{invoice_id}",
                         line_id=line_id, stripe_item_id=stripe_item)

    def _advance(self, invoice_id: int, state: SettlementState, action: str, **detail: Any) -> None:
        with self.ledger.write() as connection:
            self._set_state(connection, invoice_id, state, action, **detail)

    def _finalized(self, invoice_id: int, stripe_invoice: str, status: str, number: str | None) -> None:
        with self.ledger.write() as connection:
            connection.execute(
                update(settlements)
                .where(settlements.c.invoice_id == invoice_id)
                .values(state=SettlementState.FINALIZED.value, stripe_status=status, error=None, updated_at=now_us())
            )
            record_audit(connection, self.actor, "settlement.finalized", f"invoice:{invoice_id}",
                         stripe_invoice_id=stripe_invoice, stripe_status=status, number=number)

    def _set_state(self, connection: Connection, invoice_id: int, state: SettlementState, action: str, **detail: Any) -> None:
        connection.execute(
            update(settlements)
            .where(settlements.c.invoice_id == invoice_id, settlements.c.state != SettlementState.FINALIZED.value)
            .values(state=state.value, updated_at=now_us())
        )
        record_audit(connection, self.actor, action, f"invoice:{invoice_id}", **detail)

    def _fail(self, invoice_id: int, reason: str) -> None:
        with self.ledger.write() as connection:
            connection.execute(
                update(settlements)
                .where(settlements.c.invoice_id == invoice_id, settlements.c.state != SettlementState.FINALIZED.value)
                .values(state=SettlementState.FAILED.value, error=reason[:2000], updated_at=now_us())
            )
            record_audit(connection, self.actor, "settlement.failed", f"invoice:{invoice_id}", error=reason[:2000])

    def _fail_quietly(self, invoice_id: int, error: BaseException) -> None:
        """Record why the run stopped on this invoice, unless the ledger itself is what failed."""
        try:
            self._fail(invoice_id, _one_line(error))
        except Unavailable:
            pass


def _total_differs(invoice: Invoice, stripe_invoice: str, stripe_total: int, total: int, finalized: bool) -> str:
    text = (
        f"Stripe invoice {stripe_invoice} totals {stripe_total} minor units of {invoice.currency}, but meterdesk "
        f"invoice {invoice.id} totals {total} ({money(invoice.total, invoice.currency)} {invoice.currency})"
    )
    if finalized:
        return text + ". It is already finalized in Stripe: void it there and settle again, or correct it by hand."
    return text + ". It was not finalized: check the draft in Stripe (discounts, taxes, extra items), then settle again."


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if not isinstance(error, MeterdeskError):
        text = f"unexpected {type(error).__name__}: {text}"
    return text or type(error).__name__


# -------------------------------------------------------------------------------------------- refresh


def refresh_statuses(
    ledger: Ledger,
    period: str | Period | None = None,
    customer: str | None = None,
    gateway: StripeGateway | None = None,
    *,
    invoice_ids: Collection[int] | None = None,
    actor: str | None = None,
) -> RefreshResult:
    """Read back the Stripe status (open, paid, void, uncollectible) of each finalized invoice and record it.

    Invoices already paid or void are not asked again: Stripe never moves them on. An invoice Stripe cannot
    find is reported in `errors`; StripeUnavailable / StripeKeyMissing end the refresh.
    """
    actor = actor or default_actor("cli")
    period_name = _period_name(period)
    selected = settlement_overview(ledger, period_name, customer=customer, invoice_ids=invoice_ids)
    sent = [
        row for row in selected
        if row.settled and row.stripe_invoice_id and row.stripe_status not in _FINAL_STRIPE_STATUSES
    ]
    result = RefreshResult([])
    own_gateway: StripeGateway | None = None
    try:
        for row in sent:
            if gateway is None:
                gateway = own_gateway = StripeGateway.from_environment()
            try:
                status = gateway.invoice_status(row.stripe_invoice_id)["status"]
            except StripeRejected as error:
                result.errors.append((row.invoice_id, _one_line(error)))
                continue
            if status != row.stripe_status:
                with ledger.write() as connection:
                    connection.execute(
                        update(settlements)
                        .where(settlements.c.invoice_id == row.invoice_id)
                        .values(stripe_status=status, updated_at=now_us())
                    )
                    record_audit(connection, actor, "settlement.status", f"invoice:{row.invoice_id}",
                                 stripe_invoice_id=row.stripe_invoice_id, before=row.stripe_status, now=status)
                result.changed.append((row.invoice_id, row.stripe_status, status))
    finally:
        if own_gateway is not None:
            own_gateway.close()
    result.invoices = settlement_overview(ledger, period_name, customer=customer, invoice_ids=invoice_ids)
    return result
