"""A ledger window opens on what is cheap and settles later: counts from the rollup, anchors from the ids, a
first page with the window, a provisional count that settles to the exact one, and the page filters' plans."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meterdesk.services.corrections import correct_entry
from meterdesk.services.entries import EntryFilter, count_entries, list_entries
from meterdesk.services.ledger_pages import (
    LOOKBACK,
    IdSteps,
    LedgerQuery,
    SortKey,
    open_window,
    open_with_first_page,
    read_page,
    settle_window,
)
from meterdesk.services.imports import import_text
from meterdesk.ui.models.ledger import LedgerColumn, LedgerTableModel
from meterdesk.ui.roles import Role
from meterdesk.ui.tasks import TaskRunner
from tests.services.helpers import seed

ENTRIES = 130


@pytest.fixture
def corrected(ledger):
    """acme and bolt usage in two periods, two entries corrected (one to zero: a reversal alone)."""
    seed(ledger)
    lines = [
        f"{'acme' if n % 3 else 'bolt'},api_calls,{n + 1},window-{n},2026-0{1 + n % 2}-1{n % 10}T10:00:00Z"
        for n in range(ENTRIES)
    ]
    result = import_text(ledger, "\n".join(lines) + "\n", actor="tests")
    assert result.recorded == ENTRIES, result.errors[:3]
    newest = list_entries(ledger, limit=5)
    correct_entry(ledger, newest[2].id, "7", "meter misread", actor="tests")
    correct_entry(ledger, newest[4].id, "0", "test traffic", actor="tests")
    return ledger


FILTERS = [
    EntryFilter(),
    EntryFilter(customer="acme"),
    EntryFilter(customer="nobody"),
    EntryFilter(unit="api_calls"),
    EntryFilter(period="2026-01"),
    EntryFilter(customer="bolt", period="2026-02"),
    EntryFilter(kind="usage"),
    EntryFilter(kind="reversal"),
    EntryFilter(customer="acme", kind="reversal"),
]


@pytest.mark.parametrize("where", FILTERS, ids=["all", "customer", "no-such-customer", "unit", "period", "customer+period", "usage", "reversals", "customer+reversals"])
def test_the_rollup_counts_what_count_star_counts(corrected, where):
    window = open_window(corrected, LedgerQuery(where), page_size=20, settled=False)
    if where == EntryFilter():
        assert window.estimated  # the whole ledger is estimated from its ids; the rollup checks the estimate
        window = settle_window(corrected, window)
    assert window.exact
    assert window.count == count_entries(corrected, where)
    assert settle_window(corrected, window).count == window.count


def test_ids_without_gaps_give_every_anchor_at_once(corrected):
    window = open_window(corrected, LedgerQuery(), page_size=20, settled=False)
    assert isinstance(window.anchors, IdSteps) and window.estimated  # from the lowest and highest id alone
    if corrected.dialect == "sqlite":  # SQLite never leaves a gap in the ids; a PostgreSQL sequence may
        assert open_window(corrected, LedgerQuery(), page_size=20).anchors == window.anchors
    numbered = settle_window(corrected, replace(window, anchors=None, exact=False))
    assert numbered.count == count_entries(corrected)
    for index in (0, 1, numbered.pages - 1):
        assert read_page(corrected, window, index).rows == read_page(corrected, numbered, index).rows


def _leave_a_gap_in_the_ids(ledger) -> None:
    """A PostgreSQL transaction that took an id and rolled back leaves a gap below the next entry's."""
    with ledger.write() as connection:
        connection.exec_driver_sql("SELECT nextval(pg_get_serial_sequence('usage_entries', 'id'))")
    assert import_text(ledger, "bolt,api_calls,3,after-the-gap,2026-02-20T10:00:00Z\n", actor="tests").recorded == 1


def test_an_estimate_from_the_ids_settles_to_the_exact_count(corrected):
    if corrected.dialect == "postgresql":
        _leave_a_gap_in_the_ids(corrected)
    window = open_window(corrected, LedgerQuery(), page_size=20, settled=False)
    assert window.estimated and not window.settled
    settled = settle_window(corrected, window)
    assert settled.settled and settled.count == count_entries(corrected)
    if corrected.dialect == "sqlite":
        assert settled.count == window.count and settled.anchors == window.anchors  # the estimate was the count
    else:
        assert settled.count == window.count - 1 and not isinstance(settled.anchors, IdSteps)
    newest_first = [entry.id for entry in list_entries(corrected, limit=1000)]
    pages = [entry.id for index in range(settled.pages) for entry in read_page(corrected, settled, index).rows]
    assert pages == newest_first


def test_the_model_settles_an_estimate_with_gaps_to_the_exact_count(qtbot, corrected):
    if corrected.dialect == "postgresql":
        _leave_a_gap_in_the_ids(corrected)
    runner = TaskRunner()
    model = LedgerTableModel(runner, lambda: corrected, page_size=20)
    try:
        expected = count_entries(corrected)
        with qtbot.waitSignal(model.window_settled, timeout=15_000):
            model.refresh()
        assert model.rowCount() == expected and model.window.settled
        model.index(expected - 1, LedgerColumn.ID).data()
        qtbot.waitUntil(lambda: model.entry_at(expected - 1) is not None, timeout=15_000)
        assert model.entry_at(expected - 1).id == list_entries(corrected, limit=1000)[-1].id
        model.index(0, LedgerColumn.ID).data()  # read again when the estimate was off (its rows moved)
        qtbot.waitUntil(lambda: model.entry_at(0) is not None, timeout=15_000)
        assert model.entry_at(0).id == list_entries(corrected, limit=1)[0].id
    finally:
        runner.shutdown()


@pytest.mark.parametrize("descending", [True, False])
def test_pages_near_either_end_read_before_the_window_is_settled(corrected, descending):
    """An unsettled window reads its first pages from the top and its last ones backwards from the bottom."""
    query = LedgerQuery(EntryFilter(customer="acme"), SortKey.AMOUNT, descending)
    window = open_window(corrected, query, page_size=3, settled=False)
    assert window.exact and window.anchors is None and not window.settled
    settled = settle_window(corrected, window)
    assert settled.settled and settled.count == window.count and len(settled.anchors) == window.pages
    for index in (0, 1, window.pages - 2, window.pages - 1):
        assert window.readable(index)
        assert read_page(corrected, window, index).rows == read_page(corrected, settled, index).rows
    assert not window.readable(window.pages // 2)
    with pytest.raises(LookupError):
        read_page(corrected, window, window.pages // 2)


def test_a_count_the_rollup_cannot_give_starts_at_the_first_page(corrected):
    where = EntryFilter(text="window-1")
    window, first = open_with_first_page(corrected, LedgerQuery(where), page_size=4)
    assert not window.exact and window.count == 4 and len(first.rows) == 4
    settled = settle_window(corrected, window)
    assert settled.exact and settled.count == count_entries(corrected, where) > 4
    few, rows = open_with_first_page(corrected, LedgerQuery(EntryFilter(text="window-99")), page_size=4)
    assert few.exact and few.count == len(rows.rows) == count_entries(corrected, EntryFilter(text="window-99"))


def test_the_model_count_settles_to_the_exact_count(qtbot, corrected):
    """Rows show as soon as the first page is read; the count grows to the exact one at the bottom."""
    runner = TaskRunner()
    model = LedgerTableModel(runner, lambda: corrected, page_size=4)
    try:
        where = EntryFilter(text="window-1")
        expected = count_entries(corrected, where)
        with qtbot.waitSignal(model.window_settled, timeout=15_000) as settled:
            model.set_query(LedgerQuery(where))
        assert settled.args == [expected]
        assert model.rowCount() == expected and not model.counting
        assert model.index(0, LedgerColumn.ID).data(Role.LoadedRole) is True
        model.index(expected - 1, LedgerColumn.ID).data()
        qtbot.waitUntil(lambda: model.entry_at(expected - 1) is not None, timeout=15_000)
        assert model.entry_at(expected - 1).id == list_entries(corrected, where, limit=expected)[-1].id
    finally:
        runner.shutdown()


def test_reversals_are_read_through_the_corrections_index(corrected):
    """Never a walk over every id of the ledger for its few reversals (seconds at ten million entries)."""
    from meterdesk.services.ledger_pages import _page_statement

    window = open_window(corrected, LedgerQuery(EntryFilter(kind="reversal")), page_size=20)
    statement = _page_statement(window, 0)
    with corrected.read() as connection:
        compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN" if corrected.dialect == "sqlite" else "EXPLAIN"
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"{explain} {compiled}"))
    if corrected.dialect == "sqlite":
        assert "uq_usage_entries_corrects_id_kind" in plan and "SCAN" not in plan
    assert [entry.kind for entry in read_page(corrected, window, 0).rows] == ["reversal", "reversal"]


@pytest.mark.parametrize("customer", ["acme", "bolt"])
def test_a_customer_reads_the_same_rows_whichever_way_its_pages_are_found(corrected, customer):
    """bolt has a small share of this ledger (its pages pick ids from its index first), acme a large one
    (its pages walk the ids): either way, settled or not, the pages are its entries newest first."""
    from meterdesk.services.ledger_pages import _walks_ids

    where = EntryFilter(customer=customer)
    expected = [entry.id for entry in list_entries(corrected, where, limit=1000)]
    window = open_window(corrected, LedgerQuery(where), page_size=5, settled=False)
    assert _walks_ids(window) is (customer == "acme")
    for opened in (window, settle_window(corrected, replace(window, anchors=None, exact=False))):
        readable = [index for index in range(opened.pages) if opened.readable(index)]
        seen = {index: [entry.id for entry in read_page(corrected, opened, index).rows] for index in readable}
        for index, ids in seen.items():
            assert ids == expected[index * 5:(index + 1) * 5]


@pytest.mark.parametrize("cap", [0, 10_000], ids=["unbounded", "bounded"])
def test_a_time_range_reads_the_same_rows_with_or_without_its_id_bounds(corrected, monkeypatch, cap):
    """The ids of a time range bound its pages (entries.time_range_ids). Here the months alternate line by
    line, so a range's entries are spread over the whole id order: the bounds must still keep every one."""
    from meterdesk.services import entries as entries_module

    monkeypatch.setattr(entries_module, "TIME_RANGE_IDS_CAP", cap)
    everything = list_entries(corrected, limit=10_000)
    for start, end in (("2026-01-12", "2026-01-15"), ("2026-02-10", "2026-02-20"), ("2026-01-13", None), (None, "2026-01-12"), ("2025-01-01", "2025-01-02")):
        where = EntryFilter.from_strings(corrected, start=start, end=end)
        expected = [
            row.id for row in everything
            if (where.start_us is None or row.occurred_at_us >= where.start_us) and (where.end_us is None or row.occurred_at_us < where.end_us)
        ]
        assert [row.id for row in list_entries(corrected, where, limit=10_000)] == expected
        assert count_entries(corrected, where) == len(expected)
        window = settle_window(corrected, open_window(corrected, LedgerQuery(where=where), page_size=7, settled=False))
        assert [row.id for index in range(window.pages) for row in read_page(corrected, window, index).rows] == expected
        if not expected:
            assert window.id_range == (1, 0) and window.count == 0
        elif cap:
            assert window.id_range == (min(expected), max(expected))
        else:
            assert window.id_range is None


@pytest.mark.parametrize("cap", [0, 10_000], ids=["above the cap", "bounded"])
def test_listing_a_time_range_never_sorts_it_by_id(corrected, monkeypatch, cap):
    """`entries list --from --to` over a range too big to bound (a month of ten million entries): SQLite
    would read the whole range from the occurred_at index and sort it by id (30 s); it walks the ids down
    instead, as it does between the bounds of a smaller range."""
    from meterdesk.services import entries as entries_module
    from meterdesk.services.entries import list_statement

    monkeypatch.setattr(entries_module, "TIME_RANGE_IDS_CAP", cap)
    where = EntryFilter.from_strings(corrected, start="2026-01-12", end="2026-02-20")
    with corrected.read() as connection:
        statement = list_statement(connection, where, 10, None)
        compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN" if corrected.dialect == "sqlite" else "EXPLAIN"
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"{explain} {compiled}"))
    if corrected.dialect == "sqlite":
        assert "TEMP B-TREE" not in plan and "occurred_at" not in plan, plan
    newest = [row.id for row in list_entries(corrected, limit=10_000)
              if where.start_us <= row.occurred_at_us < where.end_us][:10]
    assert [row.id for row in list_entries(corrected, where, limit=10)] == newest


def test_polling_a_filtered_window_reads_only_the_newest_ids(corrected):
    """The newest entries of a filtered window (opening it, and every poll for new ones) are read through
    their short id range, never through the occurred_at or customer indexes: given a month, SQLite read all
    of it from the occurred_at index first (0.8 s per poll at ten million entries)."""
    from sqlalchemy import event

    from meterdesk.services.ledger_pages import entries_after

    where = EntryFilter.from_strings(corrected, customer="acme", start="2026-01-01", end="2026-03-01")
    query = LedgerQuery(where=where)
    statements: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        if "occurred_at" in statement and "usage_entries.id >" in statement:
            statements.append((statement, parameters))

    event.listen(corrected.engine, "before_cursor_execute", seen)
    try:
        window = open_window(corrected, query, settled=False)
        straggler = max(window.recent_ids)  # as if it had committed after the window was opened
        found = entries_after(corrected, query, window.snapshot_id, known=window.recent_ids - {straggler})
    finally:
        event.remove(corrected.engine, "before_cursor_execute", seen)
    everything = list_entries(corrected, limit=10_000)
    expected = {row.id for row in everything if row.customer == "acme" and where.start_us <= row.occurred_at_us < where.end_us}
    assert window.recent_ids == {id_ for id_ in expected if id_ > window.snapshot_id - LOOKBACK}
    assert found.ids == {straggler} and [entry.id for entry in found.rows] == [straggler]
    assert len(statements) == 3  # the window's recent ids, the poll's ids and its rows
    if corrected.dialect == "sqlite":
        with corrected.read() as connection:
            for statement, parameters in statements:
                plan = [str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
                steps = [step for step in plan if "usage_entries" in step]
                assert len(steps) == 1 and steps[0].startswith("SEARCH usage_entries USING INTEGER PRIMARY KEY (rowid"), plan
