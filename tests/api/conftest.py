"""A real `meterdesk serve` subprocess on a seeded ledger (SQLite and the throwaway PostgreSQL), driven by httpx."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from meterdesk.services.apikeys import create_api_key
from meterdesk.services.catalog import add_unit
from meterdesk.services.entries import EntryFilter, count_entries
from meterdesk.store.engine import Ledger, open_ledger
from tests.conftest import new_postgres_database
from tests.services.helpers import seed

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """One `meterdesk serve` process; its stderr (the access log) goes to `log`."""

    url: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def cli_env(url: str, **extra: str) -> dict:
    env = dict(os.environ, METERDESK_DB=url, METERDESK_ACTOR="api-tests", **extra)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start_server(url: str, log: Path, *args: str, env: dict | None = None) -> Server:
    port = free_port()
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "meterdesk", "serve", "--port", str(port), *args],
        env=env or cli_env(url), stdout=handle, stderr=subprocess.STDOUT,
    )
    handle.close()
    server = Server(url, port, process, log)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError(f"meterdesk serve exited with {process.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(server.base + "/v1/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"meterdesk serve did not answer within 30 s:\n{server.log_text()}")
        time.sleep(0.1)


@dataclass
class Api:
    """A served, seeded ledger: keys for each scope and an httpx client per key."""

    ledger: Ledger
    server: Server
    keys: dict[str, str]
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, key: str | None = "rw") -> httpx.Client:
        if key not in self.clients:
            headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
            self.clients[key] = httpx.Client(base_url=self.server.base, headers=headers, timeout=30)
        return self.clients[key]

    @property
    def dialect(self) -> str:
        return self.ledger.dialect

    def entries(self, customer: str | None = None) -> int:
        return count_entries(self.ledger, EntryFilter(customer=customer))


def served_ledger_url(request, tmp_path: Path) -> tuple[str, callable]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}", lambda: None
    return new_postgres_database(request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_template"))


def seed_for_api(ledger: Ledger) -> dict[str, str]:
    seed(ledger)
    add_unit(ledger, "tokens", "Tokens (millions)", 6, "sum", actor="tests")
    return {
        "rw": create_api_key(ledger, "backend", "usage:write,usage:read", actor="tests").key,
        "write": create_api_key(ledger, "ingest", "usage:write", actor="tests").key,
        "read": create_api_key(ledger, "reports", "usage:read", actor="tests").key,
    }


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def api(request, tmp_path_factory):
    """One server per module and database: tests use request ids of their own."""
    folder = tmp_path_factory.mktemp(f"api-{request.param}")
    url, drop = served_ledger_url(request, folder)
    ledger = open_ledger(url)
    keys = seed_for_api(ledger)
    server = start_server(url, folder / "serve.log")
    served = Api(ledger, server, keys)
    yield served
    for client in served.clients.values():
        client.close()
    server.stop()
    ledger.close()
    drop()


@pytest.fixture
def rid() -> str:
    """A request id of the test's own (the module's tests share one ledger)."""
    return f"t-{uuid.uuid4().hex}"
