"""The demo ledger: a living billing desk relative to today, seeded through the services."""

from __future__ import annotations

from meterdesk.domain.plans import PricingModel
from meterdesk.services.billing import preview_invoice
from meterdesk.services.catalog import list_plans
from meterdesk.services.context import now_us
from meterdesk.services.demo import seed_demo
from meterdesk.services.entries import EntryFilter, count_entries, list_entries
from meterdesk.services.overview import customers_overview
from meterdesk.ui.opening import open_demo_ledger
from meterdesk.ui.desk import Desk


def test_demo_seeds_a_living_ledger(ledger):
    assert seed_demo(ledger, density=0.15)
    assert not seed_demo(ledger)  # seeded once: opening it again changes nothing
    customers = customers_overview(ledger)
    assert len(customers) == 8
    assert {c.mode for c in customers} == {"invoice", "prepaid"}
    assert all(c.balance is not None for c in customers if c.prepaid)
    models = {charge.model for info in list_plans(ledger) for charge in info.plan.charges}
    assert {PricingModel.PER_UNIT, PricingModel.GRADUATED, PricingModel.VOLUME, PricingModel.PACKAGE} <= models
    current = ledger.timeline.period_of(now_us())
    oldest = current.previous().previous()
    assert preview_invoice(ledger, "acme", oldest).closed
    assert not preview_invoice(ledger, "acme", current).closed
    assert count_entries(ledger, EntryFilter(kind="reversal")) >= 4
    assert count_entries(ledger) > 1000
    periods = {e.period for e in list_entries(ledger, EntryFilter(customer="acme"), limit=5000)}
    assert {str(oldest), str(current)} <= periods
    assert max(e.occurred_at_us for e in list_entries(ledger, limit=50)) <= now_us()


def test_the_app_opens_and_seeds_the_demo(qtbot, tmp_path, app_settings):
    from meterdesk.ui.views.main_window import MainWindow

    desk = Desk(app_settings)
    window = MainWindow(desk)
    qtbot.addWidget(window)
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    open_demo_ledger(window, desk, url)
    qtbot.waitUntil(lambda: window.customers.model.rowCount() == 8, timeout=60_000)
    assert window.windowTitle().endswith("demo.sqlite3")
    assert "demo ledger" in window.message_bar.text
    window.close()
