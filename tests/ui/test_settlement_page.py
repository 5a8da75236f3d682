"""The Settlement page drives closing and settling against the local Stripe test server, through pytest-qt."""

from __future__ import annotations

from types import SimpleNamespace

import keyring
import pytest
import stripe
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import meterdesk.stripe_gateway
from meterdesk.services.billing import close_period, preview_invoice
from meterdesk.services.settlement import settlement_overview
from meterdesk.testing.stripe_server import StripeTestServer
from meterdesk.ui.desk import Desk
from meterdesk.ui.messages import Level
from meterdesk.ui.roles import Role
from meterdesk.ui.views.settlement_page import SettlementColumn, SettlementModel, SettlementPage
from tests.services.helpers import last_month
from tests.stripe.conftest import TEST_KEY
from tests.stripe.test_settlement import assert_stripe_holds_each_invoice_once, billed_ledger, minor

WAIT_MS = 20_000


@pytest.fixture
def no_stripe(monkeypatch):
    """No Stripe key anywhere (environment or keyring), and retries that do not sleep."""
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    monkeypatch.delenv("METERDESK_STRIPE_API_BASE", raising=False)
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.05)
    monkeypatch.setattr(meterdesk.stripe_gateway, "time", SimpleNamespace(sleep=lambda _seconds: None))
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def stripe_server(no_stripe, monkeypatch):
    with StripeTestServer() as server:
        monkeypatch.setenv("STRIPE_API_KEY", TEST_KEY)
        monkeypatch.setenv("METERDESK_STRIPE_API_BASE", server.url)
        yield server


@pytest.fixture
def desk(qtbot, ledger, app_settings):
    billed_ledger(ledger)
    made = Desk(app_settings, poll_ms=250)
    made.set_ledger(ledger)
    yield made
    made.shutdown()


@pytest.fixture
def page(qtbot, desk, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *args, **kwargs: QMessageBox.StandardButton.Yes))
    made = SettlementPage(desk)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitUntil(lambda: made.readout is not None, timeout=WAIT_MS)
    return made


def rows_by_customer(page: SettlementPage) -> dict:
    return {row.customer: row for row in page.model.rows()}


def select(page: SettlementPage, *customers: str) -> None:
    page.select([rows_by_customer(page)[c].invoice_id for c in customers])


def wait_idle(qtbot, page: SettlementPage) -> None:
    qtbot.waitUntil(lambda: page.job is None, timeout=WAIT_MS)
    page.desk.runner.wait()
    qtbot.wait(50)  # the queued results and the refresh they trigger


def test_close_preview_settle_and_refresh_statuses(qtbot, stripe_server, page, ledger):
    assert page.period() == last_month()  # the last ended period is offered first
    assert page.model.rowCount() == 0 and not page.empty.isHidden()
    assert page.message_bar.isHidden()  # a key is configured: no warning

    page.actions["close"].click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=WAIT_MS)
    assert [row.state for row in page.model.rows()] == ["pending"] * 3
    assert page.message_bar.level is Level.SUCCESS and "3 invoice(s) closed now" in page.message_bar.text

    select(page, "acme")
    page.actions["preview"].click()
    qtbot.waitUntil(lambda: page.preview_model.rowCount() == 4, timeout=WAIT_MS)
    invoice = preview_invoice(ledger, "acme", last_month())
    assert [line.amount for line in page.preview_model.rows()] == [line.amount for line in invoice.lines]
    assert "130.23" in page.preview_total.text()

    progress = []
    page.progress.valueChanged.connect(progress.append)
    page.actions["settle_all"].click()
    assert page.job is not None and not page.actions["settle_all"].isEnabled() and page.cancel_button.isVisible()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: all(row.settled for row in page.model.rows()), timeout=WAIT_MS)

    assert progress[-1] == 3
    assert page.message_bar.level is Level.SUCCESS and "3 invoices sent to Stripe" in page.message_bar.text
    assert_stripe_holds_each_invoice_once(ledger, stripe_server)
    acme_row = page.model.index_of(rows_by_customer(page)["acme"].invoice_id)
    assert page.model.index(acme_row, SettlementColumn.STATE).data() == "Sent"
    assert page.model.index(acme_row, SettlementColumn.STRIPE_STATUS).data() == "Open (awaiting payment)"
    assert page.model.index(acme_row, SettlementColumn.TOTAL).data(Role.SortRole) == invoice.total
    assert not page.actions["settle_all"].isEnabled() and page.actions["refresh_statuses"].isEnabled()
    stripe_invoice = stripe_server.invoices[rows_by_customer(page)["acme"].stripe_invoice_id]
    assert stripe_invoice["total"] == minor(invoice.total)

    stripe_server.mark_invoice(stripe_invoice["id"], "paid")
    page.actions["refresh_statuses"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: rows_by_customer(page)["acme"].stripe_status == "paid", timeout=WAIT_MS)
    assert page.model.index(acme_row, SettlementColumn.STRIPE_STATUS).data() == "Paid"
    assert "open → paid" in page.message_bar.text


def test_settle_selected_a_stripe_outage_and_retry_failures(qtbot, stripe_server, page, ledger):
    close_period(ledger, last_month(), actor="tests")
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=WAIT_MS)

    # The gateway settlement makes from the environment tries each request four times; all of them fail.
    stripe_server.inject("500", method="POST", path_prefix="/v1/customers", times=4)
    select(page, "bolt")
    page.actions["settle_selected"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: rows_by_customer(page)["bolt"].failed, timeout=WAIT_MS)

    assert page.message_bar.isVisible() and page.message_bar.level is Level.ERROR  # said in the bar, not a dialog
    assert "Stripe could not be reached" in page.message_bar.text and "never sends anything twice" in page.message_bar.text
    assert [rows_by_customer(page)[c].state for c in ("acme", "cato")] == ["pending", "pending"]
    bolt_row = page.model.index_of(rows_by_customer(page)["bolt"].invoice_id)
    assert page.model.index(bolt_row, SettlementColumn.STATE).data() == "Failed"
    assert "Stripe" in page.model.index(bolt_row, SettlementColumn.NOTE).data()
    assert page.actions["retry"].isEnabled()

    page.actions["retry"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: rows_by_customer(page)["bolt"].settled, timeout=WAIT_MS)
    assert [rows_by_customer(page)[c].state for c in ("acme", "cato")] == ["pending", "pending"]
    assert not page.actions["retry"].isEnabled()

    page.actions["settle_all"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: all(row.settled for row in page.model.rows()), timeout=WAIT_MS)
    assert_stripe_holds_each_invoice_once(ledger, stripe_server)


def test_cancelling_stops_between_invoices(qtbot, stripe_server, page, ledger):
    close_period(ledger, last_month(), actor="tests")
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=WAIT_MS)

    page.actions["settle_all"].click()
    page.cancel_button.click()  # long before the first invoice is through
    wait_idle(qtbot, page)

    states = [row.state for row in settlement_overview(ledger)]
    assert "pending" in states and "failed" not in states
    assert page.message_bar.level is Level.INFO and "cancelled" in page.message_bar.text
    page.actions["settle_all"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: all(row.settled for row in page.model.rows()), timeout=WAIT_MS)
    assert_stripe_holds_each_invoice_once(ledger, stripe_server)


def test_without_a_key_the_page_says_so_and_closing_and_preview_still_work(qtbot, no_stripe, page, ledger):
    qtbot.waitUntil(lambda: page.message_bar.isVisible(), timeout=WAIT_MS)
    assert page.message_bar.level is Level.WARNING
    assert "STRIPE_API_KEY" in page.message_bar.text and "keyring" in page.message_bar.text

    page.actions["close"].click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=WAIT_MS)
    select(page, "cato")
    page.actions["preview"].click()
    qtbot.waitUntil(lambda: page.preview_model.rowCount() == 3, timeout=WAIT_MS)

    page.actions["settle_all"].click()
    wait_idle(qtbot, page)
    assert page.message_bar.level is Level.ERROR
    assert page.message_bar.text.startswith("Cannot settle: No Stripe API key")
    assert [row.state for row in settlement_overview(ledger)] == ["pending"] * 3


def test_the_settlement_model_passes_the_model_tester(qtmodeltester, stripe_server, ledger):
    billed_ledger(ledger)
    close_period(ledger, last_month(), actor="tests")
    model = SettlementModel()
    model.set_rows(settlement_overview(ledger))
    qtmodeltester.check(model)
    assert model.index(0, SettlementColumn.INVOICE).data().startswith("#")
    assert model.index(0, SettlementColumn.STRIPE_STATUS).data() == "—"
    assert model.index(0, 0).data(Qt.ItemDataRole.DecorationRole) is None


def test_the_main_window_shows_the_page_and_its_close_action_fills_it(qtbot, no_stripe, window):
    page = window.settlement
    assert isinstance(page, SettlementPage) and window.pages[-1] == ("Settlement", window.pages[-1][1], page)
    window.show_page(page)
    qtbot.waitUntil(lambda: page.readout is not None, timeout=WAIT_MS)
    assert page.model.rowCount() == 0

    window.close_period(last_month())  # the window's own "Close period…" action

    qtbot.waitUntil(lambda: page.model.rowCount() > 0, timeout=WAIT_MS)
    closed = settlement_overview(window.desk.ledger, last_month())
    assert page.model.rows() == closed and {row.state for row in closed} == {"pending"}
