"""The windowed ledger model over 100,000 entries: counts, order, filters and sorting in SQL, paging without
loading the ledger whole, and entries written by another instance appearing by themselves."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from meterdesk.services.entries import EntryFilter, count_entries, list_entries
from meterdesk.services.ledger_pages import DEFAULT_PAGE_SIZE, LOOKBACK, LedgerQuery, SortKey, entries_after, open_window, read_page
from meterdesk.services.recording import record_usage
from meterdesk.store.engine import open_ledger
from meterdesk.ui.models.ledger import PLACEHOLDER, LedgerColumn, LedgerTableModel
from meterdesk.ui.roles import Role
from meterdesk.ui.tasks import TaskRunner
from tests.ui.conftest import BIG_ENTRIES

pytestmark = pytest.mark.slow


@pytest.fixture
def model(qtbot, big_ledger):
    runner = TaskRunner()
    made = LedgerTableModel(runner, lambda: big_ledger, poll_ms=200)
    yield made
    made.stop_polling()
    runner.shutdown()


def open_model(qtbot, model, query: LedgerQuery | None = None) -> None:
    with qtbot.waitSignal(model.window_opened, timeout=30_000):
        if query is None:
            model.refresh()
        else:
            model.set_query(query)


def load_row(qtbot, model, row: int):
    model.index(row, LedgerColumn.ID).data()  # asks for the page, as a view painting the row would
    qtbot.waitUntil(lambda: model.entry_at(row) is not None, timeout=15_000)
    return model.entry_at(row)


def test_row_count_up_front_and_pages_on_demand(qtbot, model, big_ledger):
    open_model(qtbot, model)
    assert model.rowCount() == count_entries(big_ledger) == BIG_ENTRIES
    # The first page comes with the window (a first screenful in one read); nothing else is read before a
    # row is looked at, and an unloaded row shows a placeholder.
    assert model.page_loads == 0
    assert model.index(0, LedgerColumn.ID).data(Role.LoadedRole) is True
    assert model.index(DEFAULT_PAGE_SIZE, LedgerColumn.ID).data(Role.LoadedRole) is False
    assert model.index(DEFAULT_PAGE_SIZE + 1, LedgerColumn.ID).data() == PLACEHOLDER
    first = load_row(qtbot, model, 0)
    newest = list_entries(big_ledger, limit=3)
    assert first.id == newest[0].id
    assert model.index(1, LedgerColumn.ID).data(Role.SortRole) == newest[1].id
    # Jump to the middle and the end: only those pages are read, never the whole ledger.
    middle = load_row(qtbot, model, 50_123)
    last = load_row(qtbot, model, BIG_ENTRIES - 1)
    oldest_first = open_window(big_ledger, LedgerQuery(descending=False), page_size=1)
    assert last.id == read_page(big_ledger, oldest_first, 0).rows[0].id
    assert middle.id == list_entries(big_ledger, limit=50_124)[-1].id
    assert model.page_loads <= 5


def test_order_is_deterministic_and_ends_on_the_id(qtbot, big_ledger):
    query = LedgerQuery(sort=SortKey.AMOUNT, descending=False)
    window = open_window(big_ledger, query, page_size=500)
    assert window.count == BIG_ENTRIES
    seen = []
    for index in (0, 1, window.pages // 2, window.pages - 1):
        page = read_page(big_ledger, window, index)
        keys = [(row.amount, row.id) for row in page.rows]
        assert keys == sorted(keys)
        assert len(page.rows) == 500
        seen.append(keys)
    assert seen[0][-1] < seen[1][0]  # consecutive pages continue exactly where the previous one ended
    assert seen[2][-1] < seen[3][0]


@pytest.mark.parametrize(
    "where",
    [
        EntryFilter(customer="bolt"),
        EntryFilter(text="batch 7"),
        EntryFilter(customer="acme", text="batch"),
        EntryFilter(kind="reversal"),
    ],
    ids=["customer", "text", "customer+text", "kind"],
)
def test_filters_count_and_page_in_sql(qtbot, model, big_ledger, where):
    open_model(qtbot, model, LedgerQuery(where))
    expected = count_entries(big_ledger, where)
    qtbot.waitUntil(lambda: not model.counting, timeout=30_000)  # a text search is counted after the first page
    assert model.rowCount() == expected
    if expected:
        entry = load_row(qtbot, model, expected - 1)
        assert entry.id == list_entries(big_ledger, where, limit=expected)[-1].id
        if where.customer:
            assert entry.customer == where.customer


def test_sorting_through_the_view_api_sorts_in_sql(qtbot, model, big_ledger):
    open_model(qtbot, model)
    with qtbot.waitSignal(model.window_opened, timeout=30_000):
        model.sort(LedgerColumn.OCCURRED, Qt.SortOrder.AscendingOrder)
    assert model.query.sort is SortKey.OCCURRED_AT and not model.query.descending
    first, second = load_row(qtbot, model, 0), load_row(qtbot, model, 1)
    assert (first.occurred_at_us, first.id) < (second.occurred_at_us, second.id)
    oldest = list_entries(big_ledger, limit=BIG_ENTRIES)[-1]
    assert first.occurred_at_us <= oldest.occurred_at_us


def test_entries_of_another_instance_appear_without_reload(qtbot, model, big_ledger):
    open_model(qtbot, model)
    top = load_row(qtbot, model, 0)
    other = open_ledger(big_ledger.url)  # a second app instance on the same ledger
    try:
        model.start_polling()
        with qtbot.waitSignal(model.rowsInserted, timeout=10_000):
            result = record_usage(other, "acme", "api_calls", "5", f"other-desk-{big_ledger.dialect}", source="gui", actor="other desk")
        assert model.rowCount() == BIG_ENTRIES + 1
        assert model.entry_at(0).id == result.entry_id
        assert model.entry_at(1).id == top.id  # everything below moved down by one, nothing reloaded
    finally:
        other.close()


def test_an_entry_committed_late_below_newer_ones_is_still_found(big_ledger):
    """PostgreSQL hands out ids from a sequence: a transaction may commit after one holding a higher id.
    Polling looks back below the highest id it saw, and reports only what the view does not show yet."""
    query = LedgerQuery()
    window = open_window(big_ledger, query)
    assert len(window.recent_ids) == LOOKBACK
    assert not entries_after(big_ledger, query, window.snapshot_id, known=window.recent_ids).ids
    straggler = window.snapshot_id - 3  # as if it had committed only after the window was opened
    found = entries_after(big_ledger, query, window.snapshot_id, known=window.recent_ids - {straggler})
    assert found.ids == {straggler}
    assert [entry.id for entry in found.rows] == [straggler]
