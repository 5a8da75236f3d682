"""Settlement through the real stripe library against the local Stripe test server, on SQLite and PostgreSQL:
the full flow, a fault at every step, a process killed after every Stripe write, reruns, keys, statuses."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

import meterdesk.stripe_gateway
from meterdesk.domain.errors import InvalidInput, NotFound
from meterdesk.domain.money import to_minor_units
from meterdesk.services.billing import close_period, preview_invoice
from meterdesk.services.catalog import add_customer
from meterdesk.services.corrections import correct_entry
from meterdesk.services.credits import grant_credits
from meterdesk.services.settlement import (
    SettlementState,
    StripeKeyMissing,
    StripeUnavailable,
    refresh_statuses,
    settle,
    settlement_overview,
    settlement_periods,
    stripe_setup_problem,
)
from meterdesk.services.recording import record_usage
from meterdesk.store.schema import audit_log, customers, settlement_items
from meterdesk.stripe_gateway import StripeGateway
from meterdesk.testing.stripe_server import StripeTestServer
from tests.services.helpers import last_month, last_month_at, seed
from tests.stripe.conftest import TEST_KEY

# ------------------------------------------------------------------------------------ the closed period

# Lines of each invoice of `closed_period_ledger`, and so the Stripe writes a clean settlement makes, invoice by
# invoice in customer order: the customer, the draft invoice, one item per line, finalizing.
LINES = {"acme": 4, "bolt": 1, "cato": 3}
WRITES = [(customer, step) for customer, lines in LINES.items()
          for step in ["customer", "invoice", *["item"] * lines, "finalize"]]
TOTALS = {"acme": Decimal("130.23"), "bolt": Decimal("5.00"), "cato": Decimal("49.05")}


def closed_period_ledger(ledger):
    """`billed_ledger` with last month closed."""
    billed_ledger(ledger)
    close_period(ledger, last_month(), actor="tests")
    return ledger


def billed_ledger(ledger):
    """Last month's usage of three customers, the period not closed yet:

    acme, hybrid (pro): base fee 49.00, 150,000 API calls corrected to 90,000 (130.00 and a negative
    correction line of -50.00), 12.345 GB of storage (1.2345, rounded once to 1.23): 130.23.
    bolt, prepaid (starter): its usage was paid from the balance, so the invoice is the base fee: 5.00.
    cato, hybrid (pro): no API calls (a 0.00 line) and 0.5 GB of storage: 49.05.
    """
    seed(ledger)
    add_customer(ledger, "cato", "Cato & Söhne", "pro", email="ap@cato.test", actor="tests")
    first = record_usage(ledger, "acme", "api_calls", "150000", "acme-1", occurred_at=last_month_at(2))
    record_usage(ledger, "acme", "storage_gb", "12.345", "acme-2", occurred_at=last_month_at(3))
    correct_entry(ledger, first.entry_id, "90000", "a batch was counted twice", actor="tests")
    grant_credits(ledger, "bolt", "50", "bolt-grant", actor="tests")
    record_usage(ledger, "bolt", "api_calls", "1000", "bolt-1", occurred_at=last_month_at(4))
    record_usage(ledger, "cato", "storage_gb", "0.5", "cato-1", occurred_at=last_month_at(5))
    return ledger


def minor(amount: Decimal) -> int:
    return to_minor_units(amount, "EUR")


def assert_stripe_holds_each_invoice_once(ledger, server: StripeTestServer, customer: str | None = None) -> None:
    """Exactly one Stripe customer per meterdesk customer, one item per invoice line with the line's amount to
    the cent, one invoice per meterdesk invoice finalized with meterdesk's total; the ledger records each id.
    With `customer`, that customer's invoices are the only ones Stripe may hold."""
    rows = settlement_overview(ledger, customer=customer)
    assert rows, "no closed invoices"
    assert Counter(c["metadata"].get("meterdesk_customer_id") for c in server.customers.values()) == Counter(
        row.customer for row in rows)
    assert Counter(i["metadata"].get("meterdesk_invoice_id") for i in server.invoices.values()) == Counter(
        str(row.invoice_id) for row in rows)
    item_keys = Counter((i["metadata"].get("meterdesk_invoice_id"), i["metadata"].get("meterdesk_line_id"))
                        for i in server.invoice_items.values())
    assert set(item_keys.values()) == {1}
    for row in rows:
        invoice = preview_invoice(ledger, row.customer, row.period)
        (stripe_invoice,) = [i for i in server.invoices.values()
                             if i["metadata"]["meterdesk_invoice_id"] == str(row.invoice_id)]
        stripe_customer = server.customers[stripe_invoice["customer"]]
        assert stripe_customer["metadata"] == {"meterdesk_customer_id": row.customer}
        items = {int(i["metadata"]["meterdesk_line_id"]): i for i in server.invoice_items.values()
                 if i["metadata"]["meterdesk_invoice_id"] == str(row.invoice_id)}
        # Cent for cent: every preview line is one Stripe item of exactly its amount, on this invoice.
        assert {line.id: minor(line.amount) for line in invoice.lines} == {k: i["amount"] for k, i in items.items()}
        assert all(item["invoice"] == stripe_invoice["id"] for item in items.values())
        assert stripe_invoice["total"] == minor(invoice.total) == minor(row.total)
        assert stripe_invoice["status"] in ("open", "paid")
        assert (row.state, row.error) == (SettlementState.FINALIZED, None)
        assert row.stripe_invoice_id == stripe_invoice["id"]
        assert row.stripe_customer_id == stripe_customer["id"]
        assert row.stripe_status == stripe_invoice["status"]


def recorded_items(ledger) -> dict[int, str]:
    with ledger.read() as connection:
        return dict(connection.execute(select(settlement_items.c.line_id, settlement_items.c.stripe_item_id)).all())


@pytest.fixture
def closed(ledger):
    return closed_period_ledger(ledger)


@pytest.fixture(autouse=True)
def quick_rate_limit_backoff(monkeypatch):
    """The gateway waits before retrying a 429 (0.5 s, 1 s, ...); tests need not."""
    monkeypatch.setattr(meterdesk.stripe_gateway, "time", SimpleNamespace(sleep=lambda _seconds: None))


# ---------------------------------------------------------------------------------------------- the flow


def test_settling_a_closed_period_sends_each_invoice_once_cent_for_cent(closed, gateway, stripe_server):
    seen = []
    result = settle(closed, gateway=gateway, progress=seen.append, actor="dana")

    assert_stripe_holds_each_invoice_once(closed, stripe_server)
    assert [(p.done, p.total, p.customer, p.state) for p in seen] == [
        (1, 3, "acme", "finalized"), (2, 3, "bolt", "finalized"), (3, 3, "cato", "finalized")]
    assert {row.customer: row.total for row in result.invoices} == TOTALS
    assert len(result.finalized_now) == 3 and not result.failed
    # The correction line goes to Stripe as a credit, the zero line as a zero item.
    amounts = sorted(item["amount"] for item in stripe_server.invoice_items.values())
    assert amounts[0] == -5000 and 0 in amounts
    acme = next(i for i in stripe_server.invoices.values() if i["customer_name"] == "Acme Corp")
    assert (acme["collection_method"], acme["currency"], acme["total"]) == ("send_invoice", "eur", 13023)
    assert len(recorded_items(closed)) == sum(LINES.values())
    with closed.read() as connection:
        stripe_ids = dict(connection.execute(select(customers.c.external_id, customers.c.stripe_customer_id)).all())
        actions = Counter(connection.execute(
            select(audit_log.c.action).where(audit_log.c.action.like("settlement.%"), audit_log.c.actor == "dana")
        ).scalars())
    assert set(stripe_ids.values()) == set(stripe_server.customers)
    assert actions["settlement.finalized"] == 3 and actions["settlement.item"] == 8
    assert actions["settlement.stripe_customer"] == 3 and actions["settlement.invoice_created"] == 3


def test_the_json_lists_every_closed_invoice_with_its_state_now(closed, gateway):
    first = settle(closed, customer="acme", gateway=gateway)
    assert [row["customer"] for row in first.to_json()["invoices"]] == ["acme"]

    pending = settlement_overview(closed, last_month())
    assert [(row.customer, row.status) for row in pending] == [("acme", "open"), ("bolt", "pending"), ("cato", "pending")]

    document = json.loads(json.dumps(settle(closed, period=last_month(), gateway=gateway).to_json()))
    shaped = [{key: row[key] for key in ("customer", "total", "status")} for row in document["invoices"]]
    assert shaped == [
        {"customer": "acme", "total": "130.23", "status": "open"},
        {"customer": "bolt", "total": "5.00", "status": "open"},
        {"customer": "cato", "total": "49.05", "status": "open"},
    ]
    assert all(row["stripe_invoice_id"].startswith("in_") and isinstance(row["id"], int) for row in document["invoices"])
    assert document["finalized_now"] == 2 and document["failed"] == 0


def test_settling_twice_sends_nothing_the_second_time(closed, gateway, stripe_server):
    settle(closed, gateway=gateway)
    before = len(stripe_server.requests)

    again = settle(closed, gateway=gateway)

    assert len(stripe_server.requests) == before  # not a POST, not even a GET
    assert again.finalized_now == [] and len(again.invoices) == 3
    assert_stripe_holds_each_invoice_once(closed, stripe_server)


def test_every_stripe_write_carries_a_key_made_of_meterdesk_ids(closed, gateway, stripe_server):
    settle(closed, gateway=gateway)

    keys = [r.idempotency_key for r in stripe_server.requests if r.method == "POST"]
    assert len(keys) == len(WRITES)
    rows = {row.customer: row.invoice_id for row in settlement_overview(closed)}
    assert keys[:3] == ["meterdesk-customer-acme", f"meterdesk-invoice-{rows['acme']}",
                        f"meterdesk-invoiceitem-{rows['acme']}-1"]
    assert keys[-1] == f"meterdesk-finalize-{rows['cato']}"
    assert len(set(keys)) == len(keys)


def test_selection_by_period_and_customer(closed, gateway, stripe_server):
    assert settle(closed, period="2001-01", gateway=gateway).invoices == []
    assert settlement_periods(closed) == [last_month()]
    with pytest.raises(NotFound, match="nobody"):
        settle(closed, customer="nobody", gateway=gateway)
    with pytest.raises(InvalidInput, match="period"):
        settle(closed, period="May", gateway=gateway)
    assert stripe_server.requests == []


# ---------------------------------------------------------------------------------- faults, then again

STEPS = {
    "customer": {"method": "POST", "path_prefix": "/v1/customers"},
    "item": {"method": "POST", "path_prefix": "/v1/invoiceitems"},
    "invoice": {"method": "POST", "path_prefix": "/v1/invoices"},  # the draft is the first POST there
    "finalize": {"method": "POST", "path_prefix": "/v1/invoices/"},  # only /v1/invoices/{id}/finalize is POSTed
}
LASTING_FAULTS = ("drop_after_commit", "drop_before_commit", "500", "429")


@pytest.mark.parametrize("fault", LASTING_FAULTS)
@pytest.mark.parametrize("step", STEPS)
def test_a_fault_that_outlasts_the_retries_then_settling_again(closed, gateway, stripe_server, step, fault):
    # The gateway tries each request three times (max_network_retries=2); the fault outlasts them all.
    stripe_server.inject(fault, times=3, **STEPS[step])

    with pytest.raises(StripeUnavailable):
        settle(closed, customer="acme", gateway=gateway)

    assert stripe_server.pending_faults() == 0
    (acme,) = settlement_overview(closed, customer="acme")
    assert acme.state == "failed" and "Stripe" in acme.error and acme.attempts == 1

    result = settle(closed, customer="acme", gateway=gateway)

    assert len(result.finalized_now) == 1 and not result.failed
    assert_stripe_holds_each_invoice_once(closed, stripe_server, "acme")
    assert settlement_overview(closed, customer="acme")[0].attempts == 2


@pytest.mark.parametrize("fault", (*LASTING_FAULTS, "lock_timeout"))
def test_a_passing_fault_at_every_step_is_retried_within_the_run(closed, gateway, stripe_server, fault):
    for step in STEPS.values():
        stripe_server.inject(fault, times=1, **step)

    result = settle(closed, customer="acme", gateway=gateway)

    assert stripe_server.pending_faults() == 0
    assert len(result.finalized_now) == 1
    assert_stripe_holds_each_invoice_once(closed, stripe_server, "acme")


class Killed(BaseException):
    """The process dies here: nothing after this point runs, no handler records anything."""


class DyingGateway:
    """The real gateway, but the process 'dies' right after Stripe answered the Nth write: before meterdesk can
    record what Stripe made, the most dangerous moment there is."""

    WRITES = frozenset({"ensure_customer", "create_invoice", "create_invoice_item", "finalize_invoice"})

    def __init__(self, gateway: StripeGateway, die_after: int) -> None:
        self._gateway = gateway
        self._die_after = die_after
        self.writes = 0

    def __getattr__(self, name: str):
        method = getattr(self._gateway, name)
        if name not in self.WRITES:
            return method

        def write(*args, **kwargs):
            answer = method(*args, **kwargs)
            self.writes += 1
            if self.writes == self._die_after:
                raise Killed(f"after {name}")
            return answer

        return write


# Every write of the first invoice; the first customer after a finished invoice; the last write of an invoice
# after another customer's; an item of the last invoice.
KILL_POINTS = [*range(1, LINES["acme"] + 4), LINES["acme"] + 4, LINES["acme"] + LINES["bolt"] + 6, len(WRITES) - 1]


@pytest.mark.parametrize("write", KILL_POINTS, ids=[f"{n}-{'-'.join(WRITES[n - 1])}" for n in KILL_POINTS])
def test_a_process_killed_right_after_a_stripe_write_resumes_without_duplicates(closed, gateway, stripe_server, write):
    customer, step = WRITES[write - 1]
    with pytest.raises(Killed):
        settle(closed, gateway=DyingGateway(gateway, write))

    row = next(r for r in settlement_overview(closed) if r.customer == customer)
    # Each earlier step was recorded as soon as Stripe answered; the step Stripe just made was not.
    expected = {"customer": "pending", "invoice": "customer_ready", "item": "invoice_created", "finalize": "items_created"}
    assert row.state == expected[step]

    result = settle(closed, gateway=gateway)

    assert not result.failed
    assert_stripe_holds_each_invoice_once(closed, stripe_server)


def test_a_rerun_after_stripe_forgot_the_keys_still_finds_what_it_made(closed, stripe_server):
    # Stripe keeps idempotency keys for 24 hours; the test server keeps them per API key, so a second test key
    # stands for "days later": only the gateway's look-ups by meterdesk ids can prevent duplicates then.
    for write in (1, 2, 3, 7):
        with StripeGateway(TEST_KEY, stripe_server.url) as gateway, pytest.raises(Killed):
            settle(closed, gateway=DyingGateway(gateway, write))
    with StripeGateway("sk_test_days_later", stripe_server.url) as later:
        settle(closed, gateway=later)

    assert_stripe_holds_each_invoice_once(closed, stripe_server)


def test_a_run_stopped_between_invoices_resumes_with_the_next(closed, gateway, stripe_server):
    def stop_after_first(progress):
        raise Killed("after the first invoice")

    with pytest.raises(Killed):
        settle(closed, gateway=gateway, progress=stop_after_first)
    acme = settlement_overview(closed)[0]
    assert [row.state for row in settlement_overview(closed)] == ["finalized", "pending", "pending"]
    before = len(stripe_server.requests)

    settle(closed, gateway=gateway)

    assert not any(acme.stripe_invoice_id in r.path for r in stripe_server.requests[before:])
    assert_stripe_holds_each_invoice_once(closed, stripe_server)


def test_cancelling_stops_between_invoices(closed, gateway):
    seen = []
    result = settle(closed, gateway=gateway, progress=seen.append, cancelled=lambda: len(seen) >= 1)

    assert result.cancelled and len(seen) == 1
    assert [row.state for row in result.invoices] == ["finalized", "pending", "pending"]
    assert settle(closed, gateway=gateway).finalized_now and not settle(closed, gateway=gateway).finalized_now


def test_a_draft_that_differs_from_meterdesk_is_not_finalized(closed, gateway, stripe_server, stripe_client):
    with pytest.raises(Killed):  # the draft and all of acme's items are in Stripe
        settle(closed, gateway=DyingGateway(gateway, 6))
    acme = settlement_overview(closed)[0]
    stripe_client.v1.invoice_items.create(params={
        "customer": acme.stripe_customer_id, "invoice": acme.stripe_invoice_id, "amount": 999, "currency": "eur",
        "description": "added by hand in the dashboard"})

    result = settle(closed, gateway=gateway)

    failed = result.failed
    assert [row.customer for row in failed] == ["acme"]
    assert "not lines of this invoice" in failed[0].error and "added by hand" in failed[0].error
    assert "not finalized" in failed[0].error
    assert stripe_server.invoices[acme.stripe_invoice_id]["status"] == "draft"
    assert [row.state for row in result.invoices[1:]] == ["finalized", "finalized"]  # the others went on

    again = settle(closed, gateway=gateway)  # still refused, still not finalized, the reason kept
    assert [row.customer for row in again.failed] == ["acme"] and again.failed[0].attempts == 3


def test_a_rejected_invoice_fails_alone_and_the_run_goes_on(closed, gateway, stripe_server):
    # acme's recorded Stripe customer is gone (deleted in the dashboard, or a key of another account).
    with closed.write() as connection:
        connection.execute(customers.update().where(customers.c.external_id == "acme").values(stripe_customer_id="cus_gone"))

    result = settle(closed, gateway=gateway)

    assert [(row.customer, row.state) for row in result.invoices] == [
        ("acme", "failed"), ("bolt", "finalized"), ("cato", "finalized")]
    assert "No such customer: 'cus_gone'" in result.failed[0].error
    assert len(stripe_server.invoices) == 2


# --------------------------------------------------------------------------------------- without a key


def test_without_a_key_close_and_preview_work_and_settle_says_what_is_missing(ledger, stripe_server, no_keyring):
    seed(ledger)
    record_usage(ledger, "acme", "api_calls", "20000", "a", occurred_at=last_month_at(2))
    assert stripe_setup_problem() is not None

    closed = close_period(ledger, last_month(), actor="tests")
    assert {i.customer: i.total for i in closed.invoices} == {"acme": Decimal("59.00"), "bolt": Decimal("5.00")}
    assert preview_invoice(ledger, "acme", last_month()).total == Decimal("59.00")

    with pytest.raises(StripeKeyMissing) as caught:
        settle(ledger)

    assert "STRIPE_API_KEY" in str(caught.value) and "keyring" in str(caught.value)
    assert caught.value.exit_status == 6
    assert [(row.state, row.attempts, row.error) for row in settlement_overview(ledger)] == [("pending", 0, None)] * 2
    assert stripe_server.requests == []


def test_with_the_key_in_the_environment_settle_finds_stripe_by_itself(closed, stripe_server, monkeypatch, no_keyring):
    monkeypatch.setenv("STRIPE_API_KEY", TEST_KEY)
    monkeypatch.setenv("METERDESK_STRIPE_API_BASE", stripe_server.url)
    assert stripe_setup_problem() is None

    result = settle(closed)

    assert len(result.finalized_now) == 3
    assert_stripe_holds_each_invoice_once(closed, stripe_server)


def test_an_unreachable_stripe_is_unavailable_and_recorded(closed, unused_port_url, no_keyring):
    with StripeGateway(TEST_KEY, unused_port_url, max_network_retries=0) as gateway, pytest.raises(StripeUnavailable) as caught:
        settle(closed, gateway=gateway)

    assert caught.value.exit_status == 6
    acme, bolt, cato = settlement_overview(closed)
    assert acme.state == "failed" and "Could not reach Stripe" in acme.error
    assert (bolt.state, cato.state) == ("pending", "pending")  # the run stopped: Stripe is down for every invoice


@pytest.fixture
def unused_port_url():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -------------------------------------------------------------------------------------------- statuses


def test_refresh_reads_back_what_happened_in_stripe(closed, gateway, stripe_server):
    settle(closed, gateway=gateway)
    acme, bolt, cato = settlement_overview(closed)
    stripe_server.mark_invoice(acme.stripe_invoice_id, "paid")
    stripe_server.mark_invoice(bolt.stripe_invoice_id, "void")
    stripe_server.mark_invoice(cato.stripe_invoice_id, "uncollectible")

    result = refresh_statuses(closed, gateway=gateway, actor="dana")

    assert sorted(result.changed) == sorted([(acme.invoice_id, "open", "paid"), (bolt.invoice_id, "open", "void"),
                                             (cato.invoice_id, "open", "uncollectible")])
    assert [row.status for row in settlement_overview(closed, last_month())] == ["paid", "void", "uncollectible"]
    assert [row["status"] for row in result.to_json()["invoices"]] == ["paid", "void", "uncollectible"]

    stripe_server.mark_invoice(cato.stripe_invoice_id, "paid")  # uncollectible can still be paid
    before = len(stripe_server.requests)
    again = refresh_statuses(closed, period=last_month(), gateway=gateway)

    asked = [r.path for r in stripe_server.requests[before:]]
    assert asked == [f"/v1/invoices/{cato.stripe_invoice_id}"]  # paid and void never change again
    assert again.changed == [(cato.invoice_id, "uncollectible", "paid")]
    assert all(r.method == "GET" for r in stripe_server.requests[before:])


def test_refresh_without_sent_invoices_needs_no_stripe(closed, no_keyring):
    result = refresh_statuses(closed)
    assert result.changed == [] and [row.status for row in result.invoices] == ["pending"] * 3
