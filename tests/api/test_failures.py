"""The usage API when things fail: a server killed with SIGKILL mid-batch, a database that goes away."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import create_engine, text

from meterdesk.services.entries import EntryFilter, list_entries
from meterdesk.services.summary import usage_summary
from meterdesk.store.engine import open_ledger
from tests.api.conftest import cli_env, seed_for_api, start_server
from tests.support.postgres import ThrowawayCluster, find_bindir

WAIT_S = 30


def batch_body(prefix: str, count: int) -> dict:
    events = []
    for n in range(count):
        customer = "bolt" if n % 2 else "acme"
        events.append({"customer": customer, "unit": "api_calls", "amount": str(1 + n % 9), "request_id": f"{prefix}-{n}"})
    return {"events": events}


def waiting_on_a_lock(connection) -> int:
    """Backends of this database waiting for a row lock (the killed server's batch, blocked behind ours)."""
    return connection.execute(text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )).scalar_one()


@pytest.mark.parametrize("api", ["postgresql"], indirect=True)
def test_a_server_killed_mid_batch_and_the_batch_resent_to_the_other_records_it_exactly_once(api, tmp_path):
    """Server A takes the batch and is killed (SIGKILL) inside its transaction, while it waits for a customer
    this test holds locked; the same batch sent to server B is recorded once, with a result per event, and
    sent again is all duplicates of the same entries."""
    ledger = api.ledger
    a = start_server(ledger.url, tmp_path / "a.log")
    b = start_server(ledger.url, tmp_path / "b.log")
    body = batch_body("kill", 400)
    request_ids = {event["request_id"] for event in body["events"]}
    balance_before = usage_summary(ledger, "bolt").balance
    engine = create_engine(ledger.url)
    locker = engine.connect()
    outcome: dict = {}
    try:
        locker.execute(text("SELECT id FROM customers WHERE external_id = 'bolt' FOR UPDATE"))

        def send_to_a() -> None:
            try:
                with httpx.Client(headers={"Authorization": f"Bearer {api.keys['write']}"}, timeout=WAIT_S) as http:
                    outcome["answer"] = http.post(a.base + "/v1/usage/batch", json=body)
            except httpx.TransportError as error:
                outcome["error"] = error

        sender = threading.Thread(target=send_to_a)
        sender.start()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
            deadline = time.monotonic() + WAIT_S
            while waiting_on_a_lock(watcher) == 0:
                assert time.monotonic() < deadline, "server A never reached the batch's lock"
                time.sleep(0.05)
        a.process.send_signal(signal.SIGKILL)
        a.process.wait(WAIT_S)
        sender.join(WAIT_S)
        assert "answer" not in outcome and isinstance(outcome.get("error"), httpx.TransportError)
    finally:
        locker.rollback()
        locker.close()
        engine.dispose()

    try:
        with httpx.Client(headers={"Authorization": f"Bearer {api.keys['write']}"}, timeout=WAIT_S) as http:
            answer = http.post(b.base + "/v1/usage/batch", json=body)
            assert answer.status_code == 200, answer.text
            result = answer.json()
            again = http.post(b.base + "/v1/usage/batch", json=body).json()
    finally:
        b.stop()
        a.stop()

    # Nothing of A's transaction stayed: B recorded every event, once, and answered each in order.
    assert (result["recorded"], result["duplicates"], result["rejected"]) == (400, 0, 0)
    assert [r["index"] for r in result["results"]] == list(range(400))
    entries = [e for e in list_entries(ledger, EntryFilter(), limit=10_000) if e.request_id in request_ids]
    assert sorted(e.request_id for e in entries) == sorted(request_ids)
    assert {e.id for e in entries} == {r["entry_id"] for r in result["results"]}
    charged = sum((e.charged for e in entries if e.customer == "bolt"), Decimal(0))
    assert usage_summary(ledger, "bolt").balance == balance_before - charged
    assert (again["recorded"], again["duplicates"]) == (0, 400)
    assert [r["entry_id"] for r in again["results"]] == [r["entry_id"] for r in result["results"]]


@pytest.fixture
def own_cluster():
    """A PostgreSQL cluster of this test's own, which it may stop and start again."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed")
    cluster = ThrowawayCluster(bindir)
    cluster.start()
    yield cluster
    try:
        cluster.stop()
    except subprocess.CalledProcessError:  # the test left it stopped
        shutil.rmtree(cluster.root, ignore_errors=True)


def test_health_answers_503_while_the_database_is_down_and_200_when_it_is_back(own_cluster, tmp_path):
    url = own_cluster.url
    ledger = open_ledger(url)
    keys = seed_for_api(ledger)
    ledger.close()
    server = start_server(url, tmp_path / "serve.log", env=cli_env(url))
    options = f"-p {own_cluster.port} -k {own_cluster.root} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        with httpx.Client(base_url=server.base, timeout=WAIT_S) as http:
            assert http.get("/v1/health").json() == {"status": "ok", "database": "postgresql"}
            own_cluster._run("pg_ctl", "-D", str(own_cluster.datadir), "-m", "immediate", "-w", "stop")

            down = http.get("/v1/health")
            assert down.status_code == 503, down.text
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["status"] == 503  # RFC 9457: the HTTP status, a number (it was the text "unavailable")
            write = http.post("/v1/usage", headers={"Authorization": f"Bearer {keys['rw']}"},
                              json={"customer": "acme", "unit": "api_calls", "amount": "1", "request_id": "while-down"})
            assert write.status_code == 503, write.text  # not a 401: the key could not even be checked

            own_cluster._run("pg_ctl", "-D", str(own_cluster.datadir), "-o", options, "-l", str(own_cluster.root / "log"), "-w", "start")
            deadline = time.monotonic() + WAIT_S
            while (back := http.get("/v1/health")).status_code != 200:
                assert time.monotonic() < deadline, back.text
                time.sleep(0.2)
            assert back.json() == {"status": "ok", "database": "postgresql"}
            retried = http.post("/v1/usage", headers={"Authorization": f"Bearer {keys['rw']}"},
                                json={"customer": "acme", "unit": "api_calls", "amount": "1", "request_id": "while-down"})
            assert retried.status_code == 201, retried.text
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()
