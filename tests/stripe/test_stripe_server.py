"""The local Stripe test server, driven by the real stripe library: parameters, idempotency, behaviour, faults."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import stripe

from meterdesk.testing.stripe_server import (
    ParamError,
    StripeTestServer,
    check_params,
    decode_form,
    load_fixtures,
    param_schema,
)
from tests.stripe.conftest import TEST_KEY

FIXTURES = load_fixtures()
PERIOD = {"start": 1_777_593_600, "end": 1_780_271_999}  # May 2026


def raw_request(server: StripeTestServer, method: str, path: str, body: str = "", headers=None):
    """(status, headers, JSON body) of one request sent without the stripe library."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


def new_customer(client: stripe.StripeClient, **params) -> dict:
    return client.v1.customers.create(params={"name": "Acme", **params}).to_dict()


# ---------------------------------------------------------------------------------------- parameters


def test_an_unknown_parameter_is_refused_the_way_stripe_refuses_it(stripe_client, stripe_server):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.customers.create(params={"name": "Acme", "foo": "bar"})  # type: ignore[typeddict-unknown-key]

    assert caught.value.http_status == 400
    assert caught.value.json_body == {
        "error": {"type": "invalid_request_error", "message": "Received unknown parameter: foo", "param": "foo"}
    }
    assert stripe_server.customers == {}


def test_nested_parameters_are_checked_against_the_nested_typeddicts(stripe_client, stripe_server):
    customer = new_customer(stripe_client)
    item = {"customer": customer["id"], "currency": "eur", "amount": 100}

    with pytest.raises(stripe.InvalidRequestError, match=r"Received unknown parameter: period\[middle\]"):
        stripe_client.v1.invoice_items.create(params={**item, "period": {**PERIOD, "middle": 3}})
    with pytest.raises(stripe.InvalidRequestError, match=r"Missing required param: period\[end\]\."):
        stripe_client.v1.invoice_items.create(params={**item, "period": {"start": 1}})
    with pytest.raises(stripe.InvalidRequestError, match="Invalid integer: ten") as caught:
        stripe_client.v1.invoice_items.create(params={**item, "amount": "ten"})

    assert caught.value.param == "amount"
    assert stripe_server.invoice_items == {}


def test_request_options_are_headers_not_parameters():
    schema = param_schema(stripe.params.CustomerCreateParams)

    assert "idempotency_key" not in schema.fields
    assert "api_key" not in schema.fields
    assert {"name", "email", "metadata", "expand"} <= set(schema.fields)


def test_form_decoding_keeps_metadata_keys_and_turns_indexed_hashes_into_lists():
    raw = decode_form("metadata[0]=zero&metadata[line]=7&expand[0]=customer&period[start]=1&period[end]=2")
    params = check_params(param_schema(stripe.params.InvoiceItemCreateParams), raw)

    assert params == {
        "metadata": {"0": "zero", "line": "7"},
        "expand": ["customer"],
        "period": {"start": 1, "end": 2},
    }


def test_a_hash_where_a_string_belongs_is_refused():
    with pytest.raises(ParamError, match="Invalid string"):
        check_params(param_schema(stripe.params.CustomerCreateParams), decode_form("name[first]=Ada"))


def test_a_request_without_an_api_key_gets_a_401_in_stripes_shape(stripe_server):
    status, headers, body = raw_request(stripe_server, "GET", "/v1/customers")

    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("You did not provide an API key.")
    assert headers["WWW-Authenticate"] == 'Bearer realm="Stripe"'


def test_a_key_the_server_does_not_know_is_refused():
    with StripeTestServer(api_keys={"sk_test_right"}) as server:
        http = stripe.RequestsClient()
        client = stripe.StripeClient("sk_test_wrong_key", base_addresses={"api": server.url}, http_client=http)
        try:
            with pytest.raises(stripe.AuthenticationError, match="Invalid API Key provided"):
                client.v1.customers.list()
        finally:
            http.close()


def test_an_unknown_address_is_a_404_unrecognized_url(stripe_server):
    status, _, body = raw_request(stripe_server, "GET", "/v1/charges", headers={"Authorization": f"Bearer {TEST_KEY}"})

    assert status == 404
    assert body["error"]["message"].startswith("Unrecognized request URL (GET: /v1/charges)")


# -------------------------------------------------------------------------------------- idempotency


def test_the_same_key_and_parameters_replay_the_first_response(stripe_client, stripe_server):
    params = {"name": "Acme", "metadata": {"meterdesk_customer_id": "c-1"}}
    first = stripe_client.v1.customers.create(params=params, options={"idempotency_key": "k-1"})
    second = stripe_client.v1.customers.create(params=params, options={"idempotency_key": "k-1"})

    assert second.id == first.id
    assert second.to_dict() == first.to_dict()
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert len(stripe_server.customers) == 1
    assert [r.replayed for r in stripe_server.requests_to("POST", "/v1/customers")] == [False, True]


def test_the_same_key_with_other_parameters_is_an_idempotency_error(stripe_client, stripe_server):
    stripe_client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k-1"})

    with pytest.raises(stripe.IdempotencyError) as caught:
        stripe_client.v1.customers.create(params={"name": "Other"}, options={"idempotency_key": "k-1"})

    assert caught.value.http_status == 400
    assert caught.value.json_body["error"]["type"] == "idempotency_error"
    assert caught.value.user_message.startswith(
        "Keys for idempotent requests can only be used with the same parameters they were first used with"
    )
    assert len(stripe_server.customers) == 1


def test_the_same_key_on_another_endpoint_is_an_idempotency_error(stripe_client):
    customer = new_customer(stripe_client)
    stripe_client.v1.invoices.create(params={"customer": customer["id"]}, options={"idempotency_key": "k-2"})

    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        stripe_client.v1.invoice_items.create(
            params={"customer": customer["id"], "currency": "eur", "amount": 1}, options={"idempotency_key": "k-2"}
        )


def test_an_error_from_the_endpoint_is_stored_and_replayed_too(stripe_client, stripe_server):
    params = {"customer": "cus_missing", "currency": "eur", "amount": 5}
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError, match="No such customer: 'cus_missing'"):
            stripe_client.v1.invoice_items.create(params=params, options={"idempotency_key": "k-3"})

    assert [r.replayed for r in stripe_server.requests_to("POST", "/v1/invoiceitems")] == [False, True]


def test_idempotency_keys_longer_than_stripe_allows_are_refused(stripe_client, stripe_server):
    with pytest.raises(stripe.IdempotencyError, match="up to 255 characters"):
        stripe_client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k" * 256})

    assert stripe_server.customers == {}


def test_a_fault_in_the_server_itself_answers_500_rather_than_dropping_the_connection(
    make_client, stripe_server, monkeypatch
):
    def broken(params):
        raise KeyError("oops")

    monkeypatch.setattr(stripe_server._account, "create_customer", broken)

    with pytest.raises(stripe.APIError, match="test server failed: KeyError") as caught:
        make_client(max_network_retries=3).v1.customers.create(params={"name": "Acme"})

    assert caught.value.http_status == 500
    assert len(stripe_server.requests) == 1  # Stripe-Should-Retry: false, so the library did not retry


# --------------------------------------------------------------------------------------------- objects


@pytest.mark.parametrize("resource", ["customer", "invoiceitem", "invoice"])
def test_responses_carry_every_field_of_stripes_example_object(stripe_client, resource):
    customer = new_customer(stripe_client, email="billing@acme.test")
    item = stripe_client.v1.invoice_items.create(
        params={"customer": customer["id"], "currency": "eur", "amount": 1200, "period": PERIOD}
    ).to_dict()
    invoice = stripe_client.v1.invoices.create(
        params={"customer": customer["id"], "pending_invoice_items_behavior": "include"}
    ).to_dict()
    response = {"customer": customer, "invoiceitem": item, "invoice": invoice}[resource]

    assert set(FIXTURES[resource]) <= set(response)
    assert response["object"] == FIXTURES[resource]["object"]
    assert response["livemode"] is False
    assert response["id"] != FIXTURES[resource]["id"]
    assert response["id"].startswith({"customer": "cus_", "invoiceitem": "ii_", "invoice": "in_"}[resource])
    assert abs(response.get("created", response.get("date")) - time.time()) < 60
    if resource == "invoice":
        line = response["lines"]["data"][0]
        assert set(FIXTURES["invoice"]["lines"]["data"][0]) <= set(line)
        assert line["parent"]["invoice_item_details"]["invoice_item"] == item["id"]


def test_fields_the_request_set_are_in_the_response(stripe_client):
    customer = new_customer(stripe_client, email="a@acme.test", metadata={"meterdesk_customer_id": "c-9"})
    item = stripe_client.v1.invoice_items.create(
        params={
            "customer": customer["id"],
            "currency": "EUR",
            "amount": 4900,
            "description": "Base fee",
            "period": PERIOD,
            "metadata": {"meterdesk_line_id": "3"},
        }
    ).to_dict()

    assert (customer["name"], customer["email"]) == ("Acme", "a@acme.test")
    assert customer["metadata"] == {"meterdesk_customer_id": "c-9"}
    assert item["amount"] == 4900
    assert item["currency"] == "eur"
    assert item["description"] == "Base fee"
    assert item["period"] == PERIOD
    assert item["metadata"] == {"meterdesk_line_id": "3"}
    assert item["invoice"] is None


def test_an_invoice_collects_pending_items_and_adds_them_up(stripe_client, stripe_server):
    customer = new_customer(stripe_client)
    other = new_customer(stripe_client, name="Other")
    for params in (
        {"customer": customer["id"], "currency": "eur", "amount": 4900},
        # Stripe rounds quantity * unit_amount_decimal per line, halves up: 0.05 * 30 = 1.5 -> 2
        {"customer": customer["id"], "currency": "eur", "unit_amount_decimal": "0.05", "quantity": 30},
        {"customer": customer["id"], "currency": "eur", "unit_amount_decimal": "12.345", "quantity": 2},
        {"customer": other["id"], "currency": "eur", "amount": 999},
    ):
        stripe_client.v1.invoice_items.create(params=params)  # type: ignore[arg-type]

    invoice = stripe_client.v1.invoices.create(
        params={"customer": customer["id"], "pending_invoice_items_behavior": "include"}
    ).to_dict()

    assert [line["amount"] for line in invoice["lines"]["data"]] == [4900, 2, 25]
    assert invoice["subtotal"] == invoice["total"] == invoice["amount_due"] == 4927
    assert invoice["status"] == "draft"
    assert invoice["number"] is None
    pending = stripe_client.v1.invoice_items.list(params={"pending": True}).data
    assert [i.amount for i in pending] == [999]


def test_without_include_an_invoice_leaves_pending_items_alone(stripe_client):
    customer = new_customer(stripe_client)
    stripe_client.v1.invoice_items.create(params={"customer": customer["id"], "currency": "eur", "amount": 10})

    invoice = stripe_client.v1.invoices.create(params={"customer": customer["id"]})

    assert invoice.total == 0
    assert invoice.lines.data == []


def test_an_item_can_go_straight_onto_a_draft_invoice(stripe_client, stripe_server):
    customer = new_customer(stripe_client)
    invoice = stripe_client.v1.invoices.create(params={"customer": customer["id"], "currency": "eur"})
    item = stripe_client.v1.invoice_items.create(
        params={"customer": customer["id"], "currency": "eur", "amount": 700, "invoice": invoice.id}
    )

    assert item.invoice == invoice.id
    assert stripe_client.v1.invoices.retrieve(invoice.id).total == 700
    stripe_client.v1.invoices.finalize_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError, match="draft"):
        stripe_client.v1.invoice_items.create(
            params={"customer": customer["id"], "currency": "eur", "amount": 1, "invoice": invoice.id}
        )


def test_finalizing_numbers_the_invoice_and_opens_it_once(stripe_client):
    customer = new_customer(stripe_client)
    stripe_client.v1.invoice_items.create(params={"customer": customer["id"], "currency": "eur", "amount": 10})
    draft = stripe_client.v1.invoices.create(
        params={
            "customer": customer["id"],
            "pending_invoice_items_behavior": "include",
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )

    invoice = stripe_client.v1.invoices.finalize_invoice(draft.id)

    assert invoice.status == "open"
    assert invoice.number == f"{customer['invoice_prefix']}-0001"
    assert invoice.status_transitions.finalized_at is not None
    assert invoice.due_date == draft.created + 30 * 86400
    with pytest.raises(stripe.InvalidRequestError, match="already finalized"):
        stripe_client.v1.invoices.finalize_invoice(draft.id)


def test_send_invoice_needs_days_until_due(stripe_client):
    customer = new_customer(stripe_client)

    with pytest.raises(stripe.InvalidRequestError, match="days_until_due"):
        stripe_client.v1.invoices.create(params={"customer": customer["id"], "collection_method": "send_invoice"})


def test_an_invoice_with_nothing_to_pay_is_paid_when_finalized(stripe_client):
    customer = new_customer(stripe_client)
    draft = stripe_client.v1.invoices.create(params={"customer": customer["id"]})

    assert stripe_client.v1.invoices.finalize_invoice(draft.id).status == "paid"


def test_invoices_are_paid_voided_or_marked_uncollectible(stripe_client, stripe_server):
    customer = new_customer(stripe_client)
    ids = []
    for _ in range(3):
        stripe_client.v1.invoice_items.create(params={"customer": customer["id"], "currency": "eur", "amount": 10})
        draft = stripe_client.v1.invoices.create(
            params={"customer": customer["id"], "pending_invoice_items_behavior": "include"}
        )
        ids.append(stripe_client.v1.invoices.finalize_invoice(draft.id).id)

    paid = stripe_client.v1.invoices.pay(ids[0], params={"paid_out_of_band": True})
    void = stripe_client.v1.invoices.void_invoice(ids[1])
    stripe_server.mark_invoice(ids[2], "uncollectible")

    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 10, 0)
    assert void.status == "void"
    assert stripe_client.v1.invoices.retrieve(ids[2]).status == "uncollectible"
    with pytest.raises(ValueError, match="only void open or uncollectible"):
        stripe_server.mark_invoice(ids[0], "void")


def test_lists_page_newest_first_with_starting_after(stripe_client):
    created = [new_customer(stripe_client, name=f"c{i}")["id"] for i in range(5)]

    first = stripe_client.v1.customers.list(params={"limit": 2})
    second = stripe_client.v1.customers.list(params={"limit": 2, "starting_after": first.data[-1].id})
    everything = [c.id for c in stripe_client.v1.customers.list(params={"limit": 2}).auto_paging_iter()]

    assert [c.id for c in first.data] == created[::-1][:2]
    assert first.has_more is True
    assert first.url == "/v1/customers"
    assert [c.id for c in second.data] == created[::-1][2:4]
    assert everything == created[::-1]


def test_lists_filter_invoice_items_by_customer_and_invoice(stripe_client):
    one, two = new_customer(stripe_client), new_customer(stripe_client)
    for customer in (one, two, one):
        stripe_client.v1.invoice_items.create(params={"customer": customer["id"], "currency": "eur", "amount": 3})
    invoice = stripe_client.v1.invoices.create(
        params={"customer": one["id"], "pending_invoice_items_behavior": "include"}
    )

    assert len(stripe_client.v1.invoice_items.list(params={"customer": one["id"]}).data) == 2
    assert len(stripe_client.v1.invoice_items.list(params={"invoice": invoice.id}).data) == 2
    assert len(stripe_client.v1.invoice_items.list(params={"customer": two["id"], "pending": True}).data) == 1


def test_customers_are_found_by_metadata_search(stripe_client):
    wanted = new_customer(stripe_client, metadata={"meterdesk_customer_id": "it's-7"})
    new_customer(stripe_client, metadata={"meterdesk_customer_id": "8"})

    result = stripe_client.v1.customers.search(params={"query": "metadata['meterdesk_customer_id']:'it\\'s-7'"})

    assert [c.id for c in result.data] == [wanted["id"]]


def test_search_can_trail_writes_as_stripes_does():
    with StripeTestServer(search_lag=60) as server:
        http = stripe.RequestsClient()
        client = stripe.StripeClient(TEST_KEY, base_addresses={"api": server.url}, http_client=http)
        try:
            client.v1.customers.create(params={"name": "Acme", "email": "a@acme.test"})
            assert client.v1.customers.search(params={"query": "email:'a@acme.test'"}).data == []
        finally:
            http.close()


# ----------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("fault", ["500", "lock_timeout", "drop_before_commit"])
def test_failures_before_the_write_are_retried_by_the_library_and_succeed(make_client, stripe_server, fault):
    stripe_server.inject(fault, method="POST", path_prefix="/v1/customers", times=2)

    customer = make_client(max_network_retries=2).v1.customers.create(params={"name": "Acme"})

    assert list(stripe_server.customers) == [customer.id]
    assert [r.fault for r in stripe_server.requests_to("POST", "/v1/customers")] == [fault, fault, None]
    assert stripe_server.pending_faults() == 0


def test_a_reply_lost_after_the_write_is_replayed_on_retry_not_written_twice(make_client, stripe_server):
    stripe_server.inject("drop_after_commit", method="POST", path_prefix="/v1/customers")

    customer = make_client(max_network_retries=2).v1.customers.create(params={"name": "Acme"})

    assert list(stripe_server.customers) == [customer.id]
    first, retry = stripe_server.requests_to("POST", "/v1/customers")
    assert (first.status, first.fault) == (None, "drop_after_commit")
    assert (retry.status, retry.replayed) == (200, True)
    assert retry.idempotency_key == first.idempotency_key  # the library generated it and kept it for the retry


def test_a_caller_repeating_a_lost_write_with_its_own_key_gets_the_same_object(make_client, stripe_server):
    client = make_client(max_network_retries=0)
    stripe_server.inject("drop_after_commit", path_prefix="/v1/invoiceitems")
    customer = new_customer(client)
    params = {"customer": customer["id"], "currency": "eur", "amount": 100}

    with pytest.raises(stripe.APIConnectionError):
        client.v1.invoice_items.create(params=params, options={"idempotency_key": "line-1"})
    item = client.v1.invoice_items.create(params=params, options={"idempotency_key": "line-1"})

    assert list(stripe_server.invoice_items) == [item.id]


def test_a_plain_429_is_not_retried_by_the_stripe_library(make_client, stripe_server):
    # stripe-python retries a 429 only when Stripe says so (Stripe-Should-Retry); rate limits are the caller's.
    stripe_server.inject("429", path_prefix="/v1/customers")

    with pytest.raises(stripe.RateLimitError):
        make_client(max_network_retries=3).v1.customers.create(params={"name": "Acme"})

    assert stripe_server.customers == {}
    assert len(stripe_server.requests) == 1


def test_unknown_faults_are_refused(stripe_server):
    with pytest.raises(ValueError, match="unknown fault"):
        stripe_server.inject("explode")


def test_faults_only_hit_the_requests_they_match(make_client, stripe_server):
    client = make_client(max_network_retries=0)
    stripe_server.inject("500", method="POST", path_prefix="/v1/invoices")

    customer = new_customer(client)
    client.v1.customers.list()
    with pytest.raises(stripe.APIError):
        client.v1.invoices.create(params={"customer": customer["id"]})

    assert stripe_server.pending_faults() == 0
    assert stripe_server.invoices == {}


# ------------------------------------------------------------------------------------------ life cycle


def test_the_fixtures_file_can_be_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("METERDESK_STRIPE_FIXTURES", str(tmp_path / "missing.json"))

    with pytest.raises(FileNotFoundError, match="METERDESK_STRIPE_FIXTURES"):
        StripeTestServer()


def test_a_lone_copy_of_the_package_finds_its_own_fixtures(tmp_path, monkeypatch):
    """A fresh clone (or the installed package) has no `shared/stripe` beside it: the fixtures and their licence
    ship inside the package, and the server starts from them with no environment variable set."""
    import shutil

    import meterdesk

    monkeypatch.delenv("METERDESK_STRIPE_FIXTURES", raising=False)
    clone = tmp_path / "clone" / "src"
    shutil.copytree(Path(meterdesk.__file__).parent, clone / "meterdesk", ignore=shutil.ignore_patterns("__pycache__"))
    assert not (tmp_path / "shared").exists() and not (tmp_path / "clone" / "shared").exists()
    script = (
        "import meterdesk.testing.stripe_server as s\n"
        "assert s.__file__.startswith(%r), s.__file__\n"
        "with s.StripeTestServer() as server: print(server.url)\n" % str(clone)
    )
    environment = {k: v for k, v in os.environ.items() if k != "METERDESK_STRIPE_FIXTURES"}
    environment["PYTHONPATH"] = str(clone)
    finished = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("http://127.0.0.1:")
    assert (clone / "meterdesk" / "testing" / "stripe_fixtures" / "LICENSE").read_text().startswith("The MIT License")


def test_the_fixtures_are_declared_package_data():
    """`pip install .` copies only declared data files: the vendored fixtures and their licence are among them."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["meterdesk"]
    for name in ("testing/stripe_fixtures/fixtures3.json", "testing/stripe_fixtures/LICENSE"):
        assert (root / "src" / "meterdesk" / name).is_file(), name
        assert any(fnmatch.fnmatch(name, pattern) for pattern in declared), (name, declared)


def test_the_module_runs_as_a_program(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "meterdesk.testing.stripe_server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = banner.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        http = stripe.RequestsClient()
        try:
            client = stripe.StripeClient(TEST_KEY, base_addresses={"api": url}, http_client=http)
            assert client.v1.customers.create(params={"name": "Acme"}).id.startswith("cus_")
        finally:
            http.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def test_stopping_twice_and_reading_the_url_of_a_stopped_server():
    server = StripeTestServer().start()
    server.stop()
    server.stop()

    with pytest.raises(RuntimeError, match="not running"):
        server.url
