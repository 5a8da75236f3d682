"""The Stripe gateway against the local Stripe test server, through the real stripe library."""

from __future__ import annotations

import socket
import time
from decimal import Decimal

import pytest

from meterdesk.domain.errors import InvalidInput, MeterdeskError, Unavailable
from meterdesk.stripe_gateway import (
    API_BASE_ENV,
    API_KEY_ENV,
    KEYRING_SERVICE,
    KEYRING_USERNAME,
    StripeCustomerSpec,
    StripeFailed,
    StripeGateway,
    StripeItemSpec,
    StripeKeyMissing,
    StripeKeyRejected,
    StripeRejected,
    StripeUnavailable,
    api_key_from_environment,
    idempotency_key,
    set_api_key_in_keyring,
)
from meterdesk.testing.stripe_server import StripeTestServer
from tests.stripe.conftest import TEST_KEY

MAY_START, MAY_END = 1_777_593_600, 1_780_271_999
ACME = StripeCustomerSpec("acme", "Acme Ltd", "billing@acme.test")


def line(line_id: int, amount_minor: int, invoice_id: int = 7, **changes) -> StripeItemSpec:
    fields = dict(
        line_id=line_id,
        invoice_id=invoice_id,
        description=f"line {line_id}",
        currency="EUR",
        amount_minor=amount_minor,
        unit_amount_decimal=None,
        quantity=None,
        period_start=MAY_START,
        period_end=MAY_END,
    )
    fields.update(changes)
    return StripeItemSpec(**fields)


LINES = [line(1, 4900), line(2, 1234), line(3, 1)]


def settle(gateway: StripeGateway, lines=LINES, invoice_id: int = 7) -> dict:
    """What the settlement service does for one closed invoice, in SPEC order."""
    customer_id = gateway.ensure_customer(ACME, None)
    for spec in lines:
        gateway.create_invoice_item(customer_id, spec)
    stripe_invoice_id = gateway.create_invoice(customer_id, invoice_id, "2026-05", "May 2026", currency="EUR")
    return gateway.finalize_invoice(stripe_invoice_id, invoice_id)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------ customers


def test_ensuring_a_customer_twice_makes_one(gateway, stripe_server):
    first = gateway.ensure_customer(ACME, None)
    second = gateway.ensure_customer(ACME, None)

    assert first == second
    (customer,) = stripe_server.customers.values()
    assert (customer["name"], customer["email"]) == ("Acme Ltd", "billing@acme.test")
    assert customer["metadata"] == {"meterdesk_customer_id": "acme"}
    assert [r.idempotency_key for r in stripe_server.requests_to("POST", "/v1/customers")] == [
        "meterdesk-customer-acme"
    ]


def test_a_customer_created_moments_ago_is_not_duplicated_while_search_lags():
    # Stripe's search trails writes; then only the idempotency key stands between a rerun and a duplicate.
    with StripeTestServer(search_lag=60) as server, StripeGateway(TEST_KEY, server.url) as gateway:
        first = gateway.ensure_customer(ACME, None)
        second = gateway.ensure_customer(ACME, None)

        assert first == second
        assert len(server.customers) == 1
        assert [r.replayed for r in server.requests_to("POST", "/v1/customers")] == [False, True]


def test_a_known_customer_is_checked_and_brought_up_to_date(gateway, stripe_server):
    customer_id = gateway.ensure_customer(ACME, None)

    renamed = StripeCustomerSpec("acme", "Acme Group", None)
    assert gateway.ensure_customer(renamed, customer_id) == customer_id
    assert gateway.ensure_customer(renamed, customer_id) == customer_id

    customer = stripe_server.customers[customer_id]
    assert customer["name"] == "Acme Group"
    assert customer["email"] == "billing@acme.test"  # meterdesk has none now: Stripe's is kept
    assert len(stripe_server.requests_to("POST", f"/v1/customers/{customer_id}")) == 1


def test_a_recorded_customer_stripe_does_not_know_is_rejected(gateway):
    with pytest.raises(StripeRejected, match="No such customer: 'cus_gone'") as caught:
        gateway.ensure_customer(ACME, "cus_gone")

    assert caught.value.code == "resource_missing"
    assert caught.value.exit_status == 6


def test_reusing_meterdesk_ids_with_other_contents_is_rejected_not_duplicated():
    with StripeTestServer(search_lag=60) as server, StripeGateway(TEST_KEY, server.url) as gateway:
        gateway.ensure_customer(ACME, None)

        with pytest.raises(StripeRejected, match="different contents") as caught:
            gateway.ensure_customer(StripeCustomerSpec("acme", "Someone Else", None), None)

        assert caught.value.code == "idempotency_error"
        assert len(server.customers) == 1


# --------------------------------------------------------------------------------------------- invoices


def test_items_then_invoice_then_finalize_gives_an_open_invoice_totalling_the_lines(gateway, stripe_server):
    result = settle(gateway)

    assert result["status"] == "open"
    assert result["total"] == sum(spec.amount_minor for spec in LINES) == 6135
    assert result["number"].endswith("-0001")
    assert set(result) == {"id", "status", "total", "number"}
    (invoice,) = stripe_server.invoices.values()
    assert invoice["collection_method"] == "send_invoice"
    assert invoice["auto_advance"] is False
    assert invoice["currency"] == "eur"
    assert invoice["metadata"] == {"meterdesk_invoice_id": "7", "meterdesk_period": "2026-05"}
    status = gateway.invoice_status(result["id"])
    assert status == {"id": result["id"], "status": "open", "total": 6135, "amount_paid": 0}


def test_every_write_carries_a_key_made_of_meterdesk_ids(gateway, stripe_server):
    settle(gateway)

    keys = [r.idempotency_key for r in stripe_server.requests if r.method == "POST"]
    assert keys == [
        "meterdesk-customer-acme",
        "meterdesk-invoiceitem-7-1",
        "meterdesk-invoiceitem-7-2",
        "meterdesk-invoiceitem-7-3",
        "meterdesk-invoice-7",
        "meterdesk-finalize-7",
    ]


def test_the_items_of_an_invoice_can_be_listed_for_verification(gateway):
    result = settle(gateway)

    items = gateway.list_invoice_items(result["id"])

    assert [(i["meterdesk_invoice_id"], i["meterdesk_line_id"], i["amount"]) for i in items] == [
        (7, 1, 4900), (7, 2, 1234), (7, 3, 1)
    ]
    assert items[0]["currency"] == "eur"
    assert items[0]["description"] == "line 1"


def test_a_unit_price_and_quantity_are_sent_for_stripe_to_multiply_and_round(gateway, stripe_server):
    customer_id = gateway.ensure_customer(ACME, None)
    per_call = line(1, None, unit_amount_decimal=Decimal("0.05"), quantity=30)
    tiny = line(2, None, unit_amount_decimal=Decimal("1E-7"), quantity=10_000_000)

    gateway.create_invoice_item(customer_id, per_call)
    gateway.create_invoice_item(customer_id, tiny)

    sent = [r.params for r in stripe_server.requests_to("POST", "/v1/invoiceitems")]
    assert [(p["unit_amount_decimal"], p["quantity"]) for p in sent] == [("0.05", 30), ("0.0000001", 10_000_000)]
    assert sorted(i["amount"] for i in stripe_server.invoice_items.values()) == [1, 2]
    assert all("amount" not in p for p in sent)


def test_invoice_first_then_items_straight_onto_it(gateway, stripe_server):
    customer_id = gateway.ensure_customer(ACME, None)
    stripe_invoice_id = gateway.create_invoice(customer_id, 7, "2026-05", currency="EUR", include_pending_items=False)
    for spec in LINES:
        gateway.create_invoice_item(customer_id, spec, stripe_invoice_id=stripe_invoice_id)
        gateway.create_invoice_item(customer_id, spec, stripe_invoice_id=stripe_invoice_id)

    result = gateway.finalize_invoice(stripe_invoice_id, 7)

    assert result["total"] == 6135
    assert len(stripe_server.invoice_items) == len(LINES)


def test_pending_items_that_are_not_the_invoices_stop_it(gateway, stripe_server):
    customer_id = gateway.ensure_customer(ACME, None)
    gateway.create_invoice_item(customer_id, line(1, 500, invoice_id=6))  # left behind by another settlement
    gateway.create_invoice_item(customer_id, LINES[0])

    with pytest.raises(StripeRejected, match="also collected 1 pending invoice item"):
        gateway.create_invoice(customer_id, 7, "2026-05", currency="EUR")

    (invoice,) = stripe_server.invoices.values()
    assert invoice["status"] == "draft"  # nothing was finalized


def test_finalizing_again_leaves_the_invoice_as_it_is(gateway, stripe_server):
    result = settle(gateway)
    stripe_server.mark_invoice(result["id"], "paid")

    again = gateway.finalize_invoice(result["id"], 7)

    assert again == {**result, "status": "paid"}
    assert len(stripe_server.requests_to("POST", f"/v1/invoices/{result['id']}/finalize")) == 1
    assert gateway.invoice_status(result["id"])["amount_paid"] == 6135


def test_finalizing_an_invoice_of_another_meterdesk_invoice_is_refused(gateway):
    result = settle(gateway)

    with pytest.raises(StripeRejected, match="belongs to meterdesk invoice 7, not 8"):
        gateway.finalize_invoice(result["id"], 8)


def test_an_item_stripe_already_has_with_another_amount_is_refused(gateway):
    customer_id = gateway.ensure_customer(ACME, None)
    gateway.create_invoice_item(customer_id, line(1, 4900))

    with pytest.raises(StripeRejected, match="closed invoice must not change"):
        gateway.create_invoice_item(customer_id, line(1, 5000))


# ------------------------------------------------------------------------------------------- failures


def assert_settled_once(server: StripeTestServer) -> None:
    assert len(server.customers) == 1
    assert len(server.invoices) == 1
    metadata = [(i["metadata"]["meterdesk_invoice_id"], i["metadata"]["meterdesk_line_id"])
                for i in server.invoice_items.values()]
    assert sorted(metadata) == [("7", "1"), ("7", "2"), ("7", "3")]
    (invoice,) = server.invoices.values()
    assert (invoice["status"], invoice["total"]) == ("open", 6135)
    assert len(invoice["lines"]["data"]) == 3


WRITES = ["/v1/invoices/in_", "/v1/customers", "/v1/invoiceitems", "/v1/invoices"]  # finalize before create


@pytest.mark.parametrize("fault", ["drop_after_commit", "drop_before_commit", "500", "429"])
def test_a_failure_at_every_step_then_running_again_settles_exactly_once(stripe_server, fault):
    for prefix in WRITES:
        stripe_server.inject(fault, method="POST", path_prefix=prefix)
    failures = 0
    with StripeGateway(TEST_KEY, stripe_server.url, max_network_retries=0) as gateway:
        for _ in range(len(WRITES) + 1):
            try:
                result = settle(gateway)
                break
            except StripeUnavailable:
                failures += 1

    assert failures == len(WRITES)
    assert stripe_server.pending_faults() == 0
    assert result["total"] == 6135
    assert_settled_once(stripe_server)


@pytest.mark.parametrize("fault", ["drop_after_commit", "drop_before_commit", "500", "lock_timeout"])
def test_with_retries_a_failure_at_every_step_goes_unnoticed(stripe_server, fault):
    for prefix in WRITES:
        stripe_server.inject(fault, method="POST", path_prefix=prefix, times=2)

    with StripeGateway(TEST_KEY, stripe_server.url, max_network_retries=2) as gateway:
        settle(gateway)

    assert stripe_server.pending_faults() == 0
    assert_settled_once(stripe_server)


def test_a_failed_lookup_is_just_as_harmless(stripe_server):
    stripe_server.inject("drop_before_commit", method="GET")
    with StripeGateway(TEST_KEY, stripe_server.url, max_network_retries=0) as gateway:
        with pytest.raises(StripeUnavailable):
            settle(gateway)
        settle(gateway)

    assert_settled_once(stripe_server)


def test_a_rate_limit_is_waited_out(stripe_server):
    stripe_server.inject("429", method="POST", path_prefix="/v1/customers")

    with StripeGateway(TEST_KEY, stripe_server.url, max_network_retries=1) as gateway:
        gateway.ensure_customer(ACME, None)

    assert len(stripe_server.customers) == 1


def test_a_rate_limit_that_does_not_end_makes_stripe_unavailable(stripe_server):
    stripe_server.inject("429", path_prefix="/v1/customers", times=10)

    with StripeGateway(TEST_KEY, stripe_server.url, max_network_retries=1) as gateway:
        with pytest.raises(StripeUnavailable, match="rate-limiting") as caught:
            gateway.ensure_customer(ACME, None)

    assert "run again" in str(caught.value)
    assert isinstance(caught.value, Unavailable)
    assert caught.value.exit_status == 6


def test_stripe_failing_after_the_retries_makes_it_unavailable(stripe_server):
    stripe_server.inject("500", times=10)

    with StripeGateway(TEST_KEY, stripe_server.url, max_network_retries=2) as gateway:
        with pytest.raises(StripeUnavailable, match="HTTP 500"):
            gateway.ensure_customer(ACME, None)


def test_an_error_stripe_answered_is_reported_as_its_answer_not_as_unreachable(stripe_server):
    stripe_server.inject("500", times=10)

    with StripeGateway(TEST_KEY, stripe_server.url, max_network_retries=1) as gateway:
        with pytest.raises(StripeFailed) as caught:
            gateway.ensure_customer(ACME, None)

    assert isinstance(caught.value, StripeUnavailable) and caught.value.exit_status == 6  # settling again is safe
    assert caught.value.http_status == 500
    assert caught.value.stripe_message.startswith("An unknown error occurred")
    text = str(caught.value)
    assert "Stripe answered HTTP 500" in text and "An unknown error occurred" in text
    assert "reach" not in text


def test_an_unreachable_stripe_is_reported_quickly():
    base = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()

    with StripeGateway(TEST_KEY, base, max_network_retries=0) as gateway:
        with pytest.raises(StripeUnavailable, match="connection was refused") as caught:
            gateway.ensure_customer(ACME, None)

    assert time.monotonic() - started < 5
    assert base in str(caught.value)
    assert API_BASE_ENV in str(caught.value)


# ------------------------------------------------------------------------------------------------ keys


def test_no_key_anywhere_is_a_helpful_stripe_key_missing(no_keyring):
    with pytest.raises(StripeKeyMissing) as caught:
        StripeGateway.from_environment()

    message = str(caught.value)
    assert API_KEY_ENV in message
    assert "keyring" in message
    assert isinstance(caught.value, Unavailable)
    assert caught.value.exit_status == 6


def test_the_key_and_base_come_from_the_environment(stripe_server, monkeypatch, no_keyring):
    monkeypatch.setenv(API_KEY_ENV, TEST_KEY)
    monkeypatch.setenv(API_BASE_ENV, stripe_server.url + "/")

    with StripeGateway.from_environment() as gateway:
        gateway.ensure_customer(ACME, None)

    assert gateway.api_base == stripe_server.url
    assert len(stripe_server.customers) == 1


def test_the_key_can_live_in_the_os_keyring(stripe_server, monkeypatch, memory_keyring):
    monkeypatch.setenv(API_BASE_ENV, stripe_server.url)
    set_api_key_in_keyring(TEST_KEY)

    assert memory_keyring.passwords == {(KEYRING_SERVICE, KEYRING_USERNAME): TEST_KEY}
    with StripeGateway.from_environment() as gateway:
        gateway.ensure_customer(ACME, None)
    assert len(stripe_server.customers) == 1


def test_the_environment_key_wins_over_the_keyring(monkeypatch, memory_keyring):
    set_api_key_in_keyring("sk_test_from_keyring")
    monkeypatch.setenv(API_KEY_ENV, "sk_test_from_env")

    assert api_key_from_environment() == "sk_test_from_env"


def test_storing_a_key_without_a_keyring_says_what_to_do_instead(no_keyring):
    with pytest.raises(Unavailable, match=API_KEY_ENV):
        set_api_key_in_keyring(TEST_KEY)


def test_a_key_stripe_refuses_is_reported_without_showing_it():
    with StripeTestServer(api_keys={"sk_test_right"}) as server:
        with StripeGateway("sk_test_wrong_secret_value", server.url) as gateway:
            with pytest.raises(StripeKeyRejected, match="Stripe refused the API key") as caught:
                gateway.ensure_customer(ACME, None)

    assert "sk_test_wrong_secret_value" not in str(caught.value)
    assert "secret_value" not in str(caught.value)
    assert isinstance(caught.value, StripeKeyMissing)


def test_a_base_address_that_is_not_http_is_invalid_input():
    with pytest.raises(InvalidInput, match=API_BASE_ENV):
        StripeGateway(TEST_KEY, "127.0.0.1:12111")


# ------------------------------------------------------------------------------------- idempotency keys


def test_keys_read_as_the_meterdesk_ids_they_come_from():
    assert idempotency_key("customer", "acme") == "meterdesk-customer-acme"
    assert idempotency_key("invoiceitem", 7, 12) == "meterdesk-invoiceitem-7-12"
    assert idempotency_key("finalize", 7) == "meterdesk-finalize-7"


@pytest.mark.parametrize("customer_id", ["Müller & Söhne", "東京-42", "x" * 300, "a b"])
def test_ids_no_header_could_carry_become_a_hash_of_themselves(customer_id):
    key = idempotency_key("customer", customer_id)

    assert key.startswith("meterdesk-customer-sha256-")
    assert key.isascii() and len(key) <= 255
    assert key == idempotency_key("customer", customer_id)
    assert key != idempotency_key("customer", customer_id + "!")


def test_a_customer_with_a_non_ascii_id_is_settled_like_any_other(gateway, stripe_server):
    spec = StripeCustomerSpec("Müller & Söhne 東京", "Müller & Söhne", None)

    first = gateway.ensure_customer(spec, None)

    assert gateway.ensure_customer(spec, None) == first
    assert stripe_server.customers[first]["metadata"] == {"meterdesk_customer_id": "Müller & Söhne 東京"}
    (request,) = stripe_server.requests_to("POST", "/v1/customers")
    assert request.idempotency_key == idempotency_key("customer", "Müller & Söhne 東京")


# ------------------------------------------------------------------------------------------ item specs


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"amount_minor": None}, "either amount_minor or unit_amount_decimal"),
        ({"unit_amount_decimal": Decimal("1")}, "either amount_minor or unit_amount_decimal"),
        ({"quantity": 2}, "quantity goes with unit_amount_decimal"),
        ({"amount_minor": None, "unit_amount_decimal": Decimal("1")}, "needs a quantity"),
        ({"amount_minor": None, "unit_amount_decimal": Decimal("0.0000000000001"), "quantity": 1}, "12 decimal"),
        ({"amount_minor": None, "unit_amount_decimal": Decimal("NaN"), "quantity": 1}, "finite"),
        ({"currency": "euro"}, "ISO 4217"),
        ({"period_end": MAY_START - 1}, "period_end"),
    ],
)
def test_an_item_spec_that_stripe_could_not_take_is_refused(changes, problem):
    fields = {"amount_minor": 100, **changes}
    with pytest.raises(ValueError, match=problem):
        line(1, **fields)


def test_errors_are_meterdesk_errors():
    assert issubclass(StripeRejected, MeterdeskError)
    assert issubclass(StripeUnavailable, Unavailable)
    assert issubclass(StripeKeyRejected, StripeKeyMissing)
