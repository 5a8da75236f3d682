"""`meterdesk settle` as another program runs it: a subprocess pointed at the Stripe test server by environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from meterdesk.services.settlement import settlement_overview
from meterdesk.services.recording import record_usage
from meterdesk.store.schema import customers
from tests.services.helpers import last_month, last_month_at, seed
from tests.stripe.conftest import TEST_KEY
from tests.stripe.test_settlement import assert_stripe_holds_each_invoice_once, closed_period_ledger


def meterdesk(ledger_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("STRIPE_API_KEY", "METERDESK_STRIPE_API_BASE")}
    # A developer's OS keyring must not hand the subprocess a real key.
    environment.update(METERDESK_DB=ledger_url, METERDESK_ACTOR="cli-tests",
                       PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", **env)
    return subprocess.run([sys.executable, "-m", "meterdesk", *args], capture_output=True, text=True,
                          env=environment, timeout=120)


@pytest.fixture
def closed(ledger):
    return closed_period_ledger(ledger)


def test_settle_json_then_again_then_refresh(closed, ledger_url, stripe_server):
    stripe = {"STRIPE_API_KEY": TEST_KEY, "METERDESK_STRIPE_API_BASE": stripe_server.url}

    run = meterdesk(ledger_url, "settle", "--json", **stripe)

    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert [(i["customer"], i["total"], i["status"]) for i in document["invoices"]] == [
        ("acme", "130.23", "open"), ("bolt", "5.00", "open"), ("cato", "49.05", "open")]
    assert all(set(i) >= {"id", "customer", "total", "stripe_invoice_id", "status"} for i in document["invoices"])
    progress = run.stderr.splitlines()
    assert len(progress) == 3 and progress[0].startswith("[1/3] invoice ") and progress[0].endswith("acme: finalized")
    assert_stripe_holds_each_invoice_once(closed, stripe_server)

    requests = len(stripe_server.requests)
    again = meterdesk(ledger_url, "settle", "--period", last_month(), "--json", **stripe)
    assert again.returncode == 0 and again.stderr == ""
    assert json.loads(again.stdout)["invoices"] == document["invoices"]  # settled earlier, listed as they stand
    assert len(stripe_server.requests) == requests  # nothing sent, nothing even asked

    acme = settlement_overview(closed, customer="acme")[0]
    stripe_server.mark_invoice(acme.stripe_invoice_id, "paid")
    refreshed = meterdesk(ledger_url, "settle", "--refresh", "--customer", "acme", "--json", **stripe)
    assert refreshed.returncode == 0, refreshed.stderr
    assert [(i["customer"], i["status"]) for i in json.loads(refreshed.stdout)["invoices"]] == [("acme", "paid")]

    text = meterdesk(ledger_url, "settle", **stripe)
    assert text.returncode == 0 and f"-> {acme.stripe_invoice_id} paid" in text.stdout


def test_without_a_key_settle_fails_with_one_line_and_close_and_preview_work(ledger, ledger_url, stripe_server):
    seed(ledger)
    record_usage(ledger, "acme", "api_calls", "20000", "a", occurred_at=last_month_at(2))

    closed = meterdesk(ledger_url, "period", "close", last_month(), "--json")
    assert closed.returncode == 0, closed.stderr
    assert {i["customer"]: i["total"] for i in json.loads(closed.stdout)["invoices"]} == {"acme": "59.00", "bolt": "5.00"}
    preview = meterdesk(ledger_url, "invoice", "preview", "acme", "--period", last_month(), "--json")
    assert preview.returncode == 0 and json.loads(preview.stdout)["total"] == "59.00"

    run = meterdesk(ledger_url, "settle", "--json", METERDESK_STRIPE_API_BASE=stripe_server.url)

    assert run.returncode == 6
    assert run.stdout == ""
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: No Stripe API key") and "STRIPE_API_KEY" in line and "keyring" in line
    assert stripe_server.requests == []


def test_an_unreachable_stripe_exits_6_with_one_line(closed, ledger_url):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    run = meterdesk(ledger_url, "settle", "--json", STRIPE_API_KEY=TEST_KEY,
                    METERDESK_STRIPE_API_BASE=f"http://127.0.0.1:{port}")

    assert run.returncode == 6 and run.stdout == ""
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: Could not reach Stripe") and "can be run again" in line
    assert settlement_overview(closed)[0].state == "failed"


def test_an_invoice_stripe_refuses_is_reported_and_exits_6(closed, ledger_url, stripe_server):
    with closed.write() as connection:
        connection.execute(customers.update().where(customers.c.external_id == "bolt").values(stripe_customer_id="cus_gone"))

    run = meterdesk(ledger_url, "settle", "--json", STRIPE_API_KEY=TEST_KEY, METERDESK_STRIPE_API_BASE=stripe_server.url)

    assert run.returncode == 6
    statuses = {i["customer"]: i["status"] for i in json.loads(run.stdout)["invoices"]}
    assert statuses == {"acme": "open", "bolt": "failed", "cato": "open"}
    error_lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "(bolt)" in error_lines[0] and "cus_gone" in error_lines[0]
