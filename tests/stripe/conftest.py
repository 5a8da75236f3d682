"""Fixtures for the Stripe tests: the local Stripe test server, clients of the real stripe library, keyrings."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import keyring
import pytest
import stripe
from keyring.backend import KeyringBackend
from keyring.backends import fail

from meterdesk.stripe_gateway import API_BASE_ENV, API_KEY_ENV, StripeGateway
from meterdesk.testing.stripe_server import StripeTestServer

TEST_KEY = "sk_test_meterdesk_suite"


@pytest.fixture(autouse=True)
def quick_stripe_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stripe library sleeps at least half a second before each retry; retries under test need not wait."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.05)


@pytest.fixture(autouse=True)
def no_stripe_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own Stripe key or base address must not leak into the tests."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.delenv(API_BASE_ENV, raising=False)


@pytest.fixture
def stripe_server() -> Iterator[StripeTestServer]:
    with StripeTestServer() as server:
        yield server


@pytest.fixture
def make_client(stripe_server: StripeTestServer) -> Iterator[Callable[..., stripe.StripeClient]]:
    """Clients of the real stripe library pointed at the test server; their connections close after the test."""
    http_clients: list[stripe.RequestsClient] = []

    def make(max_network_retries: int = 2, api_key: str = TEST_KEY) -> stripe.StripeClient:
        http = stripe.RequestsClient()
        http_clients.append(http)
        return stripe.StripeClient(
            api_key,
            base_addresses={"api": stripe_server.url},
            max_network_retries=max_network_retries,
            http_client=http,
        )

    yield make
    for http in http_clients:
        http.close()


@pytest.fixture
def stripe_client(make_client: Callable[..., stripe.StripeClient]) -> stripe.StripeClient:
    return make_client()


@pytest.fixture
def gateway(stripe_server: StripeTestServer) -> Iterator[StripeGateway]:
    with StripeGateway(TEST_KEY, stripe_server.url, max_network_retries=2) as gw:
        yield gw


class MemoryKeyring(KeyringBackend):
    """An OS keyring stand-in that keeps passwords in a dict."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.passwords.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """No keyring backend at all, as on a headless machine: keyring raises NoKeyringError."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)
