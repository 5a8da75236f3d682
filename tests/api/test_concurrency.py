"""Two server processes on one PostgreSQL ledger, clients racing overlapping request ids for a prepaid customer."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import httpx
import pytest

from meterdesk.services.entries import EntryFilter, list_entries
from meterdesk.services.summary import usage_summary
from tests.api.conftest import start_server

CLIENTS = 8
REQUEST_IDS = 40


@pytest.mark.parametrize("api", ["postgresql"], indirect=True)
def test_racing_retries_through_two_servers_leave_one_entry_per_request_id(api, tmp_path):
    second = start_server(api.ledger.url, tmp_path / "second.log")
    bases = [api.server.base, second.base]
    balance_before = usage_summary(api.ledger, "bolt").balance
    amounts = {f"race-{n}": str(1 + n % 7) for n in range(REQUEST_IDS)}
    answers: dict[str, list[dict]] = {rid: [] for rid in amounts}
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(number: int) -> None:
        order = list(amounts)
        random.Random(number).shuffle(order)
        with httpx.Client(headers={"Authorization": f"Bearer {api.keys['write']}"}, timeout=60) as http:
            start.wait()
            for position, rid in enumerate(order):
                body = {"customer": "bolt", "unit": "api_calls", "amount": amounts[rid], "request_id": rid}
                answer = http.post(bases[(number + position) % 2] + "/v1/usage", json=body)
                with lock:
                    if answer.status_code in (200, 201):
                        answers[rid].append({"status": answer.status_code, **answer.json()})
                    else:
                        failures.append(f"{rid}: {answer.status_code} {answer.text}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        entries = [e for e in list_entries(api.ledger, EntryFilter(customer="bolt"), limit=10_000) if e.request_id in amounts]
        assert sorted(e.request_id for e in entries) == sorted(amounts)  # one entry per request id
        for rid, seen in answers.items():
            assert len(seen) == CLIENTS
            assert [a["status"] for a in seen].count(201) == 1, rid
            assert len({a["entry_id"] for a in seen}) == 1 and all(a["duplicate"] is (a["status"] == 200) for a in seen)
        assert {e.actor for e in entries} == {"api:ingest"}
        charged = sum((e.charged for e in entries), Decimal(0))
        assert usage_summary(api.ledger, "bolt").balance == balance_before - charged
    finally:
        second.stop()
