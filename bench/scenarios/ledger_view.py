"""The usage ledger page at 10M entries, offscreen: first paint, a jump to the last row, and the memory it takes.

meterdesk: the real ledger page (`ui/views/ledger_page.LedgerView` on a `Desk`, its windowed
`LedgerTableModel` reading pages on workers) — from creating the page until its first screenful of rows is
painted; then from `scrollToBottom()` until the last rows are painted; and how much the process grew
(resident memory) for all of it. Baseline: a naive model that loads every row into a list and serves the
view from it, at 1M entries (the issue's baseline), through a bare QTableView.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import ledgers
from bench.harness import Context, Result, Target, median, not_available

SCENARIO = "ledger view"
FIRST_PAINT = Target("<= 300 ms", max_value=300.0)
JUMP = Target("<= 500 ms", max_value=500.0)
MEMORY = Target("<= 100 MB", max_value=100.0)
SIZE = (1280, 800)
TIMEOUT_S = 120.0


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(context: Context) -> list[Result]:
    names = ("ledger page first paint", "ledger page jump to the last row", "ledger page memory growth")
    units = ("ms", "ms", "MB")
    targets = (FIRST_PAINT, JUMP, MEMORY)
    try:
        from meterdesk.ui.desk import Desk
        from meterdesk.ui.models.ledger import LedgerTableModel  # noqa: F401 - the page's model must exist
        from meterdesk.ui.settings import AppSettings
        from meterdesk.ui.views.ledger_page import LedgerView
    except ImportError as error:
        return [not_available(SCENARIO, n, u, t, f"the ledger page is not there yet ({error})") for n, u, t in zip(names, units, targets)]
    from PySide6.QtCore import QSettings

    from meterdesk.store.engine import open_ledger
    from meterdesk.ui.charts.screenshot import application, wait_for

    app = application()
    large, small = context.sizes.ledger_large, context.sizes.ledger_small
    large_path, _ = ledgers.sqlite_ledger(large, context.log)
    small_path, _ = ledgers.sqlite_ledger(small, context.log)
    rounds = 1 if context.quick else 3

    # meterdesk: the real page, its windowed model
    settings_dir = tempfile.TemporaryDirectory(prefix="meterdesk-bench-")
    settings = AppSettings(QSettings(os.path.join(settings_dir.name, "meterdesk.ini"), QSettings.Format.IniFormat))
    desk = Desk(settings, poll_ms=3_600_000)
    desk.set_ledger(open_ledger(f"sqlite:///{large_path}", upgrade=False))
    if not wait_for(lambda: bool(desk.catalog.customers), TIMEOUT_S):
        raise RuntimeError("the desk did not read the catalog")
    app.processEvents()
    before = resident_mb()
    paints, jumps = [], []
    context.log(f"ledger page on {large:,} entries (SQLite), {rounds} rounds")
    for _ in range(rounds):
        start = time.perf_counter()
        page = LedgerView(desk)
        page.resize(*SIZE)
        page.show()
        page.apply_filters()
        if not wait_for(lambda: page.model.rowCount() > 0 and page.model.entry_at(0) is not None, TIMEOUT_S):
            raise RuntimeError("the ledger page never showed its first rows")
        page.table.viewport().grab()
        paints.append((time.perf_counter() - start) * 1000)
        rows = page.model.rowCount()
        if rows != large:
            raise RuntimeError(f"the ledger page counts {rows:,} entries, expected {large:,}")
        start = time.perf_counter()
        page.table.scrollToBottom()
        if not wait_for(lambda: page.model.entry_at(rows - 1) is not None, TIMEOUT_S):
            raise RuntimeError("the ledger page never showed its last row")
        page.table.viewport().grab()
        jumps.append((time.perf_counter() - start) * 1000)
        page.close()
        page.deleteLater()
        app.processEvents()
    grown = resident_mb() - before
    desk.shutdown()
    app.processEvents()
    settings_dir.cleanup()

    # baseline: everything loaded into a list
    naive_paint, naive_jump, naive_grown = _naive(app, small_path, small, context)
    label = f"{large / 1e6:g}M entries" if large >= 1_000_000 else f"{large:,} entries"
    naive_label = f"naive load-everything model at {small / 1e6:g}M" if small >= 1_000_000 else f"naive model at {small:,}"
    return [
        Result(SCENARIO, f"{names[0]}, SQLite, {label}", median(paints), "ms", naive_paint, FIRST_PAINT, naive_label,
               "page created until its first rows are painted"),
        Result(SCENARIO, f"{names[1]}, SQLite, {label}", median(jumps), "ms", naive_jump, JUMP, naive_label,
               "scrollToBottom until the last rows are painted"),
        Result(SCENARIO, f"{names[2]}, SQLite, {label}", max(grown, 0.0), "MB", naive_grown, MEMORY, naive_label,
               f"resident memory growth over {rounds} opens and jumps"),
    ]


def _naive(app, path, rows: int, context: Context) -> tuple[float, float, float]:
    from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
    from PySide6.QtWidgets import QTableView

    from meterdesk.services.entries import entries_query, entry_from_row
    from meterdesk.store.engine import open_ledger
    from meterdesk.ui.widgets import setup_table

    class EverythingModel(QAbstractTableModel):
        """Every entry read up front, newest first, shown as text."""

        COLUMNS = ("id", "occurred_at_us", "customer", "unit", "amount", "kind", "corrects", "period", "source",
                   "actor", "request_id", "note", "charged", "recorded_at_us")

        def __init__(self, entries) -> None:
            super().__init__()
            self.entries = entries

        def rowCount(self, parent=QModelIndex()) -> int:
            return 0 if parent.isValid() else len(self.entries)

        def columnCount(self, parent=QModelIndex()) -> int:
            return 0 if parent.isValid() else len(self.COLUMNS)

        def data(self, index, role=Qt.ItemDataRole.DisplayRole):
            if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
                return None
            value = getattr(self.entries[index.row()], self.COLUMNS[index.column()])
            return "" if value is None else str(value)

    ledger = open_ledger(f"sqlite:///{path}", upgrade=False)
    context.log(f"naive ledger model on {rows:,} entries (SQLite)")
    before = resident_mb()
    start = time.perf_counter()
    with ledger.read() as connection:
        from meterdesk.store.schema import usage_entries

        entries = [entry_from_row(row) for row in connection.execute(entries_query().order_by(usage_entries.c.id.desc()))]
    model = EverythingModel(entries)
    view = QTableView()
    setup_table(view)
    view.setModel(model)
    view.resize(*SIZE)
    view.show()
    app.processEvents()
    view.viewport().grab()
    paint = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    view.scrollToBottom()
    app.processEvents()
    view.viewport().grab()
    jump = (time.perf_counter() - start) * 1000
    grown = resident_mb() - before
    view.close()
    view.deleteLater()
    app.processEvents()
    del model, entries
    ledger.close()
    return paint, jump, grown
