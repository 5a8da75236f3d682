"""The Settlement page drives closing and settling against the local Stripe test server, through pytest-qt."""

from __future__ import annotations

from types import SimpleNamespace

import keyring
import pytest
import stripe
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QMessageBox

import meterdesk.stripe_gateway
from meterdesk.services.billing import close_period, preview_invoice
from meterdesk.services.settlement import settlement_overview
from meterdesk.testing.stripe_server import StripeTestServer
from meterdesk.ui.desk import Desk
from meterdesk.ui.messages import Level
from meterdesk.ui.roles import Role
from meterdesk.ui.views.settlement_page import SendConfirmation, SettlementColumn, SettlementModel, SettlementPage
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
def confirm(monkeypatch):
    """The confirmation asked before anything is sent, answered by the test (yes, sending what it offers, unless
    told otherwise); what each one showed is kept."""
    shown: list[SimpleNamespace] = []
    answer = SimpleNamespace(accept=True, include_zero=False)

    def exec_(dialog):
        if answer.include_zero:
            dialog.include_zero.setChecked(True)
        shown.append(SimpleNamespace(text=dialog.summary(), ids=dialog.chosen_ids(), sendable=dialog.send_button.isEnabled()))
        return QDialog.DialogCode.Accepted if answer.accept else QDialog.DialogCode.Rejected

    monkeypatch.setattr(SendConfirmation, "exec", exec_)
    return SimpleNamespace(shown=shown, answer=answer)


@pytest.fixture
def page(qtbot, desk, monkeypatch, confirm):
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
    assert "Stripe answered HTTP 500" in page.message_bar.text and "An unknown error occurred" in page.message_bar.text
    assert "could not be reached" not in page.message_bar.text and "never sends anything twice" in page.message_bar.text
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
    assert isinstance(page, SettlementPage) and [title for title, _tip, shown in window.pages if shown is page] == ["Settlement"]
    window.show_page(page)
    qtbot.waitUntil(lambda: page.readout is not None, timeout=WAIT_MS)
    assert page.model.rowCount() == 0

    window.close_period(last_month())  # the window's own "Close period…" action

    qtbot.waitUntil(lambda: page.model.rowCount() > 0, timeout=WAIT_MS)
    closed = settlement_overview(window.desk.ledger, last_month())
    assert page.model.rows() == closed and {row.state for row in closed} == {"pending"}


# ------------------------------------------------------------------------- asking before anything is sent


def closed_page(qtbot, page, ledger, count: int = 3) -> None:
    close_period(ledger, last_month(), actor="tests")
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == count, timeout=WAIT_MS)


def stripe_invoice_ids(server: StripeTestServer) -> set[int]:
    """The meterdesk invoice ids of the invoices the Stripe server holds."""
    return {int(invoice["metadata"]["meterdesk_invoice_id"]) for invoice in server.invoices.values()}


def posts(server: StripeTestServer) -> int:
    return sum(1 for request in server.requests if request.method == "POST")


def test_cancelling_the_confirmation_sends_nothing(qtbot, stripe_server, page, ledger, confirm):
    closed_page(qtbot, page, ledger)
    confirm.answer.accept = False

    page.actions["settle_all"].click()
    wait_idle(qtbot, page)

    assert len(confirm.shown) == 1
    asked = confirm.shown[0].text
    assert "3 invoices" in asked and "€184.28" in asked  # 130.23 + 5.00 + 49.05
    assert "TEST" in asked and "LIVE" not in asked
    assert "no e-mail" in asked.lower() and "bolt" in asked  # bolt (Bolt Ltd) has no e-mail address
    assert stripe_server.requests == [] and stripe_server.invoices == {}
    assert {row.state for row in settlement_overview(ledger)} == {"pending"}


def test_confirming_sends_exactly_the_chosen_invoices(qtbot, stripe_server, page, ledger, confirm):
    closed_page(qtbot, page, ledger)
    select(page, "acme", "cato")

    page.actions["settle_selected"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: rows_by_customer(page)["cato"].settled, timeout=WAIT_MS)

    assert len(confirm.shown) == 1
    assert "2 invoices" in confirm.shown[0].text and "€179.28" in confirm.shown[0].text
    assert "no e-mail" not in confirm.shown[0].text.lower()  # acme and cato have one
    rows = rows_by_customer(page)
    assert stripe_invoice_ids(stripe_server) == {rows["acme"].invoice_id, rows["cato"].invoice_id}
    assert rows["bolt"].state == "pending"


def test_a_prepaid_customers_zero_invoice_is_sent_only_when_asked(qtbot, stripe_server, page, ledger, confirm):
    from meterdesk.services.catalog import add_customer, save_plan
    from meterdesk.services.credits import grant_credits
    from meterdesk.services.recording import record_usage
    from tests.services.helpers import last_month_at

    save_plan(ledger, {"code": "payg", "name": "Pay as you go", "currency": "EUR", "base_fee": "0",
                       "charges": [{"unit": "api_calls", "model": "per_unit", "unit_price": "0.002"}]}, actor="tests")
    add_customer(ledger, "dora", "Dora GmbH", "payg", prepaid=True, email="ap@dora.test", actor="tests")
    grant_credits(ledger, "dora", "20", "dora-grant", actor="tests")
    record_usage(ledger, "dora", "api_calls", "1000", "dora-1", occurred_at=last_month_at(6))
    closed_page(qtbot, page, ledger, count=4)
    dora = rows_by_customer(page)["dora"]
    assert dora.prepaid and dora.total == 0

    page.actions["settle_all"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: rows_by_customer(page)["cato"].settled, timeout=WAIT_MS)

    assert "3 invoices" in confirm.shown[0].text and "dora" in confirm.shown[0].text
    assert dora.invoice_id not in confirm.shown[0].ids
    assert rows_by_customer(page)["dora"].state == "pending"
    assert dora.invoice_id not in stripe_invoice_ids(stripe_server)

    select(page, "dora")
    page.actions["settle_selected"].click()  # chosen alone, still not sent without saying so
    wait_idle(qtbot, page)
    assert confirm.shown[1].ids == [] and not confirm.shown[1].sendable
    assert rows_by_customer(page)["dora"].state == "pending" and dora.invoice_id not in stripe_invoice_ids(stripe_server)

    confirm.answer.include_zero = True
    page.actions["settle_selected"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: rows_by_customer(page)["dora"].settled, timeout=WAIT_MS)
    assert confirm.shown[2].ids == [dora.invoice_id]
    assert_stripe_holds_each_invoice_once(ledger, stripe_server)


def test_the_key_mode_is_shown_at_all_times_and_a_live_key_is_named_in_the_confirmation(
        qtbot, stripe_server, page, ledger, confirm, monkeypatch):
    assert "TEST" in page.mode_label.text() and page.mode_label.isVisible()
    closed_page(qtbot, page, ledger)

    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_meterdesk_suite")
    page.refresh()
    qtbot.waitUntil(lambda: "LIVE" in page.mode_label.text(), timeout=WAIT_MS)
    confirm.answer.accept = False
    page.actions["settle_all"].click()
    assert "LIVE" in confirm.shown[0].text and "TEST" not in confirm.shown[0].text
    assert stripe_server.requests == []

    monkeypatch.delenv("STRIPE_API_KEY")
    page.refresh()
    qtbot.waitUntil(lambda: "no API key" in page.mode_label.text(), timeout=WAIT_MS)


def test_try_again_after_a_failed_refresh_reads_the_statuses_and_sends_nothing(qtbot, stripe_server, page, ledger, confirm):
    """The issue's case: one invoice settled from the command line, the status refresh fails (Stripe down),
    and Try again repeated the last settle: it sent the other invoices nobody chose to send."""
    from meterdesk.services.settlement import settle

    close_period(ledger, last_month(), actor="tests")
    settle(ledger, period=last_month(), customer="acme", actor="cli")
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == 3 and rows_by_customer(page)["acme"].settled, timeout=WAIT_MS)
    assert len(stripe_server.invoices) == 1
    posted_by_the_cli = posts(stripe_server)

    stripe_server.inject("drop_before_commit", method="GET", path_prefix="/v1/invoices", times=4)
    page.actions["refresh_statuses"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: page.message_bar.level is Level.ERROR, timeout=WAIT_MS)
    assert "could not be reached" in page.message_bar.text
    assert page.message_bar._action.isVisible() and page.message_bar._action.text() == "Try again"

    stripe_server.mark_invoice(next(iter(stripe_server.invoices)), "paid")
    page.message_bar._action.click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: rows_by_customer(page)["acme"].stripe_status == "paid", timeout=WAIT_MS)

    assert confirm.shown == []
    assert len(stripe_server.invoices) == 1
    assert posts(stripe_server) == posted_by_the_cli  # nothing written to Stripe from the page
    assert [rows_by_customer(page)[c].state for c in ("bolt", "cato")] == ["pending", "pending"]


def test_try_again_after_a_failed_settle_asks_again_and_sends_only_those_invoices(qtbot, stripe_server, page, ledger, confirm):
    closed_page(qtbot, page, ledger)
    stripe_server.inject("drop_before_commit", method="POST", path_prefix="/v1/customers", times=4)
    select(page, "bolt")
    page.actions["settle_selected"].click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: page.message_bar.level is Level.ERROR, timeout=WAIT_MS)
    assert "could not be reached" in page.message_bar.text and page.message_bar._action.text() == "Try again"

    page.message_bar._action.click()
    wait_idle(qtbot, page)
    qtbot.waitUntil(lambda: rows_by_customer(page)["bolt"].settled, timeout=WAIT_MS)

    assert len(confirm.shown) == 2 and confirm.shown[1].ids == [rows_by_customer(page)["bolt"].invoice_id]
    assert stripe_invoice_ids(stripe_server) == {rows_by_customer(page)["bolt"].invoice_id}
    assert [rows_by_customer(page)[c].state for c in ("acme", "cato")] == ["pending", "pending"]
