"""Every custom model passes pytest-qt's model tester, and serves raw values for sorting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from PySide6.QtCore import Qt

from meterdesk.services.billing import preview_invoice
from meterdesk.services.catalog import list_plans, list_units
from meterdesk.services.ledger_pages import LedgerQuery, SortKey
from meterdesk.services.overview import customers_overview
from meterdesk.services.summary import usage_summary
from meterdesk.ui.models.base import RawSortProxy
from meterdesk.ui.models.catalog import PlansModel, TierDraft, TierTableModel, UnitsModel
from meterdesk.ui.models.customers import CustomerColumn, CustomersModel
from meterdesk.ui.models.ledger import LedgerColumn, LedgerTableModel
from meterdesk.ui.models.summary import InvoiceLinesModel, SummaryUnitsModel
from meterdesk.ui.roles import Role
from meterdesk.ui.tasks import TaskRunner


@pytest.fixture
def runner():
    made = TaskRunner()
    yield made
    made.shutdown()


def test_customers_model(qtmodeltester, seeded):
    model = CustomersModel()
    model.set_rows(customers_overview(seeded))
    qtmodeltester.check(model)
    bolt = model.index_of("bolt")
    assert model.index(bolt, CustomerColumn.BALANCE).data(Role.SortRole) == Decimal("19")  # 20 granted, 500 × 0.002 charged
    assert model.index(bolt, CustomerColumn.MODE).data() == "Prepaid"
    assert model.index(model.index_of("acme"), CustomerColumn.BALANCE).data(Role.SortRole) is None
    assert model.index(0, 0).data(Role.ErrorRole) is None  # a role the model does not serve


def test_sort_proxy_orders_by_raw_values(qtmodeltester, seeded):
    model = CustomersModel()
    model.set_rows(customers_overview(seeded))
    proxy = RawSortProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    proxy.sort(CustomerColumn.USAGE)
    amounts = [proxy.index(row, CustomerColumn.USAGE).data(Role.SortRole) for row in range(proxy.rowCount())]
    assert amounts == sorted(amounts)
    proxy.setFilterFixedString("bolt")
    assert proxy.rowCount() == 1


def test_units_and_plans_models(qtmodeltester, seeded):
    units = UnitsModel()
    units.set_rows(list_units(seeded))
    qtmodeltester.check(units)
    plans = PlansModel()
    plans.set_rows(list_plans(seeded))
    qtmodeltester.check(plans)
    assert plans.index(0, 3).data(Role.SortRole) == Decimal("49.00")


def test_tier_table_model_is_editable(qtmodeltester):
    model = TierTableModel()
    model.set_tiers([TierDraft("100", "0.01"), TierDraft("", "0.005", "2")])
    qtmodeltester.check(model)
    assert model.setData(model.index(0, 0), "200")
    assert model.as_dicts() == [{"up_to": "200", "unit_price": "0.01"}, {"up_to": None, "unit_price": "0.005", "flat_fee": "2"}]
    model.set_error(0, 1, "must be a number")
    assert model.index(0, 1).data(Role.ErrorRole) == "must be a number"
    model.add_tier()
    model.remove_tier(0)
    qtmodeltester.check(model)


def test_summary_and_invoice_models(qtmodeltester, seeded):
    summary = usage_summary(seeded, "acme")
    units = SummaryUnitsModel()
    units.set_summary(summary.units, summary.currency)
    qtmodeltester.check(units)
    invoice = preview_invoice(seeded, "acme", summary.period)
    lines = InvoiceLinesModel()
    lines.set_invoice(invoice.lines, invoice.currency)
    qtmodeltester.check(lines)
    assert lines.index(0, 3).data(Role.SortRole) == Decimal("49.00")


@pytest.mark.parametrize("sort", [SortKey.ID, SortKey.CUSTOMER])
def test_ledger_model(qtbot, qtmodeltester, seeded, runner, sort):
    model = LedgerTableModel(runner, lambda: seeded, page_size=7)
    with qtbot.waitSignal(model.window_opened, timeout=15_000):
        model.set_query(LedgerQuery(sort=sort))
    qtmodeltester.check(model)  # while rows are still placeholders
    for row in range(model.rowCount()):
        model.index(row, LedgerColumn.ID).data()  # what a view painting every row would ask for
    qtbot.waitUntil(lambda: all(model.entry_at(row) is not None for row in range(model.rowCount())), timeout=15_000)
    qtmodeltester.check(model)
    assert model.rowCount() == 31
    ids = [model.index(row, LedgerColumn.ID).data(Role.SortRole) for row in range(model.rowCount())]
    if sort is SortKey.ID:
        assert ids == sorted(ids, reverse=True)
    assert model.index(0, LedgerColumn.AMOUNT).data(Role.SortRole) > 0
    assert model.headerData(LedgerColumn.NOTE, Qt.Orientation.Horizontal) == "Note / reason"
    assert model.headerData(LedgerColumn.NOTE, Qt.Orientation.Horizontal, Role.SortRole) is None
