"""Per-customer usage charts: the numbers drawn are the summary's, browsing renders only the last customer,
exports round-trip, and nothing blocks or crashes (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import csv
import html
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from meterdesk.domain.periods import to_micros
from meterdesk.services.billing import close_period
from meterdesk.services.catalog import add_customer, add_unit, save_plan
from meterdesk.services.chart_data import chart_data
from meterdesk.services.corrections import correct_entry
from meterdesk.services.credits import grant_credits
from meterdesk.services.summary import usage_summary
from meterdesk.services.recording import record_usage
from meterdesk.store.engine import Ledger, make_engine
from meterdesk.ui.charts import ChartsPage, CustomerChart
from meterdesk.ui.charts.model import US, ChartModel
from tests.services.helpers import last_month, last_month_at, seed

HOUR_US = 3_600_000_000


# -- literal ledgers ----------------------------------------------------------------------------------

def this_month_instants(count: int) -> list[str]:
    """`count` instants spread over the current month so far (UTC), oldest first, as ISO text."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now.replace(day=1, hour=0, minute=0, second=0)
    span = (now - start).total_seconds() - 60
    return [(start + timedelta(seconds=1 + span * i / max(1, count))).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(count)]


@pytest.fixture
def acme_ledger(ledger):
    """acme (postpaid, plan pro): last month recorded then closed, usage arriving late for it, usage this
    month, and two corrections (one this month, one of a closed-month entry, which lands late)."""
    seed(ledger)
    record_usage(ledger, "acme", "api_calls", "1000", "old-1", occurred_at=last_month_at(10))
    closed_entry = record_usage(ledger, "acme", "api_calls", "2000", "old-2", occurred_at=last_month_at(20)).entry_id
    record_usage(ledger, "acme", "storage_gb", "1.5", "old-gb", occurred_at=last_month_at(12))
    close_period(ledger, last_month(), customer="acme", actor="tests")
    late = record_usage(ledger, "acme", "api_calls", "700", "late-1", occurred_at=last_month_at(25))
    assert late.late
    ids = []
    for index, instant in enumerate(this_month_instants(5)):
        ids.append(record_usage(ledger, "acme", "api_calls", str(100 * (index + 1)), f"now-{index}", occurred_at=instant).entry_id)
        record_usage(ledger, "acme", "storage_gb", "0.125", f"gb-{index}", occurred_at=instant)
    correct_entry(ledger, ids[2], "50", "meter double count", actor="tests")
    correct_entry(ledger, closed_entry, "1500", "late correction of a closed month", actor="tests")
    return ledger


def browse_ledger(ledger, names=("cust-a", "cust-b", "cust-c", "cust-d")):
    seed(ledger)
    for number, name in enumerate(names, start=1):
        add_customer(ledger, name, f"Customer {name[-1].upper()}", "pro", actor="tests")
        for index, instant in enumerate(this_month_instants(2)):
            record_usage(ledger, name, "api_calls", str(number * 1000 + index), f"{name}-{index}", occurred_at=instant)
    return ledger


def series_of(summary, unit: str) -> list[tuple[int, Decimal]]:
    return [(point.start_us, point.quantity) for point in summary.series if point.unit == unit]


@pytest.fixture
def chart(qtbot):
    widget = CustomerChart()
    widget.resize(1000, 640)
    qtbot.addWidget(widget)
    widget.show()
    return widget


@pytest.fixture
def page_for(qtbot):
    pages = []

    def make(ledger, provider=None):
        page = ChartsPage(provider or (lambda: ledger))
        page.resize(1280, 800)
        qtbot.addWidget(page)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.shutdown()


def wait_shown(qtbot, page, customer: str, timeout: int = 20_000) -> None:
    qtbot.waitUntil(lambda: page.shown_customer() == customer and not page.is_busy(), timeout=timeout)


# -- the numbers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("granularity", ["hour", "day"])
def test_bucket_values_are_the_summary_series_including_late_entries_and_corrections(acme_ledger, chart, granularity):
    summary = usage_summary(acme_ledger, "acme", granularity=granularity)  # what `usage summary` reports
    chart.set_data(chart_data(acme_ledger, "acme", granularity=granularity))

    quantities = {unit.unit: unit.quantity for unit in summary.units}
    # 100..500 with 300 corrected to 50, the late 700, and the closed month's 2000 corrected to 1500 (late).
    assert quantities["api_calls"] == Decimal(100 + 200 + 50 + 400 + 500 + 700 - 2000 + 1500)
    assert quantities["storage_gb"] == Decimal("0.625")
    for unit, quantity in quantities.items():
        drawn = chart.bucket_values(unit)
        assert drawn == series_of(summary, unit)
        assert sum((value for _, value in drawn), Decimal(0)) == quantity
    track = chart.model.unit("api_calls")
    assert sum(track.reversals.values()) == 2  # both reversals are marked where they landed
    assert track.cumulative[-1] == quantities["api_calls"]
    assert chart.model.start_us <= min(start for start, _ in chart.bucket_values("api_calls"))


def test_a_closed_period_keeps_its_own_numbers(acme_ledger, chart):
    summary = usage_summary(acme_ledger, "acme", period=last_month(), granularity="day")
    chart.set_data(chart_data(acme_ledger, "acme", period=last_month(), granularity="day"))
    assert chart.bucket_values("api_calls") == series_of(summary, "api_calls")
    assert sum(v for _, v in chart.bucket_values("api_calls")) == Decimal(3000)
    assert sum(v for _, v in chart.bucket_values("storage_gb")) == Decimal("1.500")


def test_month_buckets_of_a_range_cover_whole_periods(acme_ledger, chart):
    today = date.today()
    data = chart_data(acme_ledger, "acme", start=today - timedelta(days=40), end=today + timedelta(days=1), granularity="month")
    chart.set_data(data)
    assert chart.model.granularity == "month"
    api = next(unit for unit in data.summary.units if unit.unit == "api_calls")
    assert sum(v for _, v in chart.bucket_values("api_calls")) == api.quantity
    assert api.quantity == Decimal(3000 + 100 + 200 + 50 + 400 + 500 + 700 - 2000 + 1500)


def test_hover_reads_exact_decimals_not_the_drawing_floats(ledger, chart):
    seed(ledger)
    when = this_month_instants(1)[0]
    record_usage(ledger, "acme", "storage_gb", "0.1", "gb-1", occurred_at=when)
    record_usage(ledger, "acme", "storage_gb", "0.2", "gb-2", occurred_at=when)
    chart.set_data(chart_data(ledger, "acme", granularity="day"))
    start, value = chart.bucket_values("storage_gb")[0]
    assert value == Decimal("0.300")
    assert float(value) != 0.1 + 0.2  # the float sum would not even equal itself
    text = chart.hover_at("storage_gb", start + HOUR_US)
    assert "Storage GB: 0.300" in text
    assert "cumulative this period: 0.300" in text


def test_prepaid_balance_over_time_ends_at_the_balance(ledger, chart):
    seed(ledger)
    grant_credits(ledger, "bolt", "20", "grant-1")
    for index, instant in enumerate(this_month_instants(3)):
        record_usage(ledger, "bolt", "api_calls", str(1000 * (index + 1)), f"b-{index}", occurred_at=instant)
    grant_credits(ledger, "bolt", "3.5", "grant-2")
    data = chart_data(ledger, "bolt", granularity="day")
    chart.set_data(data)
    balance = chart.model.balance
    # 6000 calls at 0.002 = 12.00 charged from 23.50 granted.
    assert data.summary.balance == Decimal("11.5")
    assert balance.balances[-1] == data.summary.balance == balance.current
    assert balance.opening == Decimal(0)
    assert int(balance.at_us[-1]) <= data.now_us
    assert "balance at" in chart.hover_at("balance", int(balance.at_us[-1]) - 1)


def test_plan_allowance_and_tier_boundaries_sit_on_the_cumulative_axis(acme_ledger, chart):
    chart.set_data(chart_data(acme_ledger, "acme", granularity="day"))
    track = chart.model.unit("api_calls")
    # pro: 10000 included, then tiers up to 100000 billable: the boundary is at 110000 in total.
    assert track.allowance.included == Decimal(10000)
    assert track.allowance.tier_bounds == (Decimal(110000),)
    row = chart._row("api_calls")
    assert row.included_line.value() == 10000.0
    assert row.included_line.isVisible()
    assert row.included_line.label_text() == "10,000 included"


# -- browsing -------------------------------------------------------------------------------------------

def test_arrow_keys_browse_to_the_last_customer_and_only_it_is_rendered(ledger, qtbot, page_for):
    browse_ledger(ledger)
    page = page_for(ledger)
    page.show()
    wait_shown(qtbot, page, "acme")  # customers are listed by id: acme, bolt, cust-a, ...
    rendered = []
    page.chartShown.connect(rendered.append)
    page.customer_list.setFocus()
    for _ in range(5):
        QTest.keyClick(page.customer_list, Qt.Key.Key_Down)
    assert page.current_customer() == "cust-d"
    wait_shown(qtbot, page, "cust-d")
    assert rendered == ["cust-d"]
    summary = usage_summary(ledger, "cust-d", granularity=page.chart.model.granularity)
    assert page.chart.bucket_values("api_calls") == series_of(summary, "api_calls")
    assert page.chart.model.unit("api_calls").quantity == Decimal(4000 + 4001)


def test_a_slow_stale_result_never_overwrites_the_current_customer(ledger, qtbot, page_for):
    browse_ledger(ledger)
    page = page_for(ledger)
    entered, release = threading.Event(), threading.Event()

    def slow_for_bolt(request):
        if request.customer == "bolt":
            entered.set()
            assert release.wait(30), "the test never released the slow fetch"

    page.fetch_hook = slow_for_bolt
    page.show()
    wait_shown(qtbot, page, "acme")
    page.customer_list.setFocus()
    try:
        QTest.keyClick(page.customer_list, Qt.Key.Key_Down)  # bolt: its fetch hangs in the hook
        qtbot.waitUntil(entered.is_set, timeout=10_000)
        QTest.keyClick(page.customer_list, Qt.Key.Key_Down)  # cust-a: fetched on the other worker
        qtbot.waitUntil(lambda: page.shown_customer() == "cust-a", timeout=20_000)
    finally:
        release.set()
    with qtbot.waitSignal(page.staleResultDropped, timeout=20_000, check_params_cb=lambda customer: customer == "bolt"):
        pass
    qtbot.wait(50)
    assert page.shown_customer() == "cust-a"
    assert page.chart.bucket_values("api_calls") == series_of(usage_summary(ledger, "cust-a", granularity=page.chart.model.granularity), "api_calls")


def test_show_customer_filter_presets_granularity_and_unit_selector(acme_ledger, qtbot, page_for):
    page = page_for(acme_ledger)
    page.show_customer("acme")
    page.show()
    wait_shown(qtbot, page, "acme")
    assert page.customer_list.currentIndex().data(Qt.ItemDataRole.DisplayRole) == "Acme Corp"
    assert page.granularity_box.itemText(0) == "Auto (daily)"
    assert page.unit_box.isVisibleTo(page) and page.unit_box.count() == 3  # all, api_calls, storage_gb

    page.set_unit("storage_gb")
    assert [row.key for row in page.chart._rows()] == ["storage_gb"]
    page.set_unit(None)
    assert [row.key for row in page.chart._rows()] == ["api_calls", "storage_gb"]

    page.set_granularity("hour")
    qtbot.waitUntil(lambda: page.chart.model.granularity == "hour" and not page.is_busy(), timeout=20_000)
    page.set_preset("last_period")
    qtbot.waitUntil(lambda: page.chart.model.period == last_month() and not page.is_busy(), timeout=20_000)
    assert sum(v for _, v in page.chart.bucket_values("api_calls")) == Decimal(3000)
    page.set_granularity(None)
    page.set_preset("last_90_days")
    qtbot.waitUntil(lambda: page.chart.model.period is None and not page.is_busy(), timeout=20_000)
    assert page.chart.model.granularity == "day"
    assert len(page.chart.model.edges_us) == 91
    yesterday = date.today() - timedelta(days=1)
    page.set_preset("custom", yesterday, date.today())
    qtbot.waitUntil(lambda: len(page.chart.model.edges_us) == 49 and not page.is_busy(), timeout=20_000)
    assert page.chart.model.granularity == "hour"

    page.filter_edit.setText("bolt")
    assert page.customer_proxy.rowCount() == 1


def test_embedded_in_a_customer_detail_it_charts_one_customer_without_the_list(acme_ledger, qtbot, page_for):
    page = page_for(acme_ledger)
    page.set_customer_list_visible(False)
    page.show_customer("bolt")
    page.show()
    wait_shown(qtbot, page, "bolt")
    assert not page.list_panel.isVisible()
    assert page.customer_model.rowCount() == 0  # the hidden list is never read
    assert page.chart.model.balance is not None
    page.show_customer("acme")
    wait_shown(qtbot, page, "acme")
    before = page.chart.model.unit("api_calls").quantity
    record_usage(acme_ledger, "acme", "api_calls", "5", "after-refresh")
    page.refresh()
    qtbot.waitUntil(lambda: page.chart.model.unit("api_calls").quantity == before + 5 and not page.is_busy(), timeout=20_000)


def test_clicking_a_bucket_emits_bucket_activated(acme_ledger, qtbot, page_for):
    page = page_for(acme_ledger)
    page.show_customer("acme")
    page.show()
    wait_shown(qtbot, page, "acme")
    start, _ = page.chart.bucket_values("api_calls")[-1]
    widget = page.chart.row_widget("api_calls")
    row = page.chart._row("api_calls")
    scene_point = row.view.mapViewToScene(QPointF((start + 12 * HOUR_US) / US, 1.0))
    with qtbot.waitSignal(page.bucketActivated, timeout=5000) as blocker:
        QTest.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=widget.mapFromScene(scene_point))
    customer, unit, bucket_start, bucket_end = blocker.args
    assert (customer, unit, bucket_start) == ("acme", "api_calls", start)
    assert bucket_end == chart_bucket_end(page.chart.model, start)
    point = widget.mapFromScene(scene_point)
    for dx in (-3, 2):  # two different positions: a move to where the mouse already is sends nothing
        QTest.mouseMove(widget.viewport(), point + type(point)(dx, 0))
    qtbot.waitUntil(lambda: "API calls:" in page.chart.hover_text, timeout=5000)


def chart_bucket_end(model: ChartModel, start: int) -> int:
    return model.bucket_at(start)[1]


def test_database_errors_are_shown_in_the_page_not_raised(qtbot, page_for, tmp_path):
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    broken = Ledger(url=unreachable, engine=make_engine(unreachable), timezone=ZoneInfo("UTC"))
    page = page_for(None, provider=lambda: broken)
    page.show()
    page.show_customer("acme")
    qtbot.waitUntil(lambda: page.banner_message() is not None and not page.is_busy(), timeout=30_000)
    assert "cannot be reached" in page.banner_message()
    assert page.chart.model is None
    broken.close()

    empty = page_for(None, provider=lambda: None)
    empty.show()
    qtbot.waitUntil(lambda: empty.banner_message() == "No ledger is open.", timeout=5000)


# -- exports --------------------------------------------------------------------------------------------------

def test_exported_csv_round_trips_to_the_same_numbers(acme_ledger, chart, tmp_path):
    chart.set_data(chart_data(acme_ledger, "acme", granularity="hour"))
    path = tmp_path / "acme.csv"
    rows = chart.export_csv(path)
    with open(path, newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert len(read) == rows
    for track in chart.model.units:
        mine = [row for row in read if row["series"] == "usage" and row["unit"] == track.code]
        assert [Decimal(row["value"]) for row in mine] == list(track.values)
        assert [Decimal(row["cumulative"]) for row in mine] == list(track.cumulative)
        assert [to_micros(datetime.fromisoformat(row["start"].replace("Z", "+00:00"))) for row in mine] == track.starts_us.tolist()
        assert sum((Decimal(row["value"]) for row in mine), Decimal(0)) == track.quantity
    assert sum(int(row["reversals"]) for row in read) == 2


def test_exported_csv_carries_the_exact_prepaid_balance(ledger, chart, tmp_path):
    seed(ledger)
    grant_credits(ledger, "bolt", "10", "grant-1")
    record_usage(ledger, "bolt", "api_calls", "333", "b-1")
    chart.set_data(chart_data(ledger, "bolt"))
    path = tmp_path / "bolt.csv"
    chart.export_csv(path)
    with open(path, newline="", encoding="utf-8") as handle:
        balances = [row for row in csv.DictReader(handle) if row["series"] == "balance"]
    assert Decimal(balances[-1]["value"]) == Decimal("9.334")
    assert balances[-1]["value"] == "9.334000"


def test_exported_png_exists_and_has_the_charts_size(acme_ledger, chart, tmp_path):
    chart.set_data(chart_data(acme_ledger, "acme"))
    path = tmp_path / "acme.png"
    size = chart.export_png(path)
    image = QImage(str(path))
    ratio = chart.devicePixelRatioF()
    assert path.exists() and not image.isNull()
    assert (image.width(), image.height()) == (round(chart.width() * ratio), round(chart.height() * ratio))
    assert (size.width(), size.height()) == (image.width(), image.height())


def test_page_exports_through_a_save_dialog(acme_ledger, qtbot, page_for, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    page = page_for(acme_ledger)
    page.show_customer("acme")
    page.show()
    wait_shown(qtbot, page, "acme")
    target = tmp_path / "chosen.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, **kwargs: (str(target), "")))
    page.csv_button.click()
    assert target.exists() and target.read_text(encoding="utf-8").startswith("customer,series,unit,start")


# -- time and scale ---------------------------------------------------------------------------------------

def test_days_and_axis_ticks_follow_the_billing_time_zone(tmp_path, monkeypatch, chart):
    from meterdesk.store.engine import open_ledger

    monkeypatch.setenv("METERDESK_TIMEZONE", "Europe/Berlin")
    ledger = open_ledger(f"sqlite:///{tmp_path / 'berlin.sqlite3'}")
    try:
        seed(ledger)
        # 22:30 UTC on 24 Oct 2026 is 00:30 on the 25th in Berlin, the day summer time ends (25 hours long).
        record_usage(ledger, "acme", "api_calls", "5", "dst-1", occurred_at="2026-10-24T22:30:00Z")
        chart.set_data(chart_data(ledger, "acme", period="2026-10"))
    finally:
        ledger.close()
    berlin = ZoneInfo("Europe/Berlin")
    start, value = chart.bucket_values("api_calls")[0]
    assert value == Decimal(5)
    assert start == to_micros(datetime(2026, 10, 25, tzinfo=berlin))
    assert chart.model.bucket_at(start) == (start, to_micros(datetime(2026, 10, 26, tzinfo=berlin)))
    assert chart.model.bucket_at(start)[1] - start == 25 * HOUR_US

    axis = chart._row("api_calls").time_axis
    low = datetime(2026, 10, 24, 12, tzinfo=timezone.utc).timestamp()
    levels = axis.tickValues(low, low + 3 * 86400, 250)
    spacing, ticks = levels[0]
    assert spacing == 86400
    assert ticks == [datetime(2026, 10, d, tzinfo=berlin).timestamp() for d in (25, 26, 27)]
    assert axis.tickStrings(ticks, 1, spacing) == ["25 Oct", "26 Oct", "27 Oct"]


def test_a_year_of_hours_is_clipped_to_the_view_and_downsampled(chart, qtbot):
    from meterdesk.ui.charts.model import synthetic_model

    model = synthetic_model(8760, 3)
    chart.set_model(model)
    chart.grab()
    width = chart._row("unit_1").view.width()
    assert 0 < chart.drawn_bars("unit_1") <= width
    row = chart._row("unit_1")
    assert row.cumulative.opts["autoDownsample"] and row.cumulative.opts["clipToView"]
    chart.set_visible_range_us(model.start_us, model.start_us + 24 * HOUR_US)
    assert chart.drawn_bars("unit_1") == 24
    # Hover still reads the exact bucket, not a drawn (merged) bar.
    assert "Unit 1: " + format(model.units[0].values[5], ",f") in chart.hover_at("unit_1", model.start_us + 5 * HOUR_US + 1)
    chart.reset_zoom()
    assert chart.visible_range_us() == (model.start_us, model.end_us)


def test_a_million_raw_points_draw_at_most_a_bar_per_pixel(chart):
    from meterdesk.ui.charts.model import synthetic_model

    model = synthetic_model(1_000_000, 1, bucket_s=1, exact=False)
    chart.set_model(model)
    chart.grab()
    assert 0 < chart.drawn_bars("unit_1") <= chart._row("unit_1").view.width()
    assert np.isclose(chart._row("unit_1").bars.item.opts["height"].max(), model.units[0].heights.max())


def test_in_the_shortest_rows_the_legend_stays_clear_of_the_bars_and_the_line(chart, qtbot):
    """At a row's smallest height (two units in a customer detail's Chart tab), the value ranges kept too
    little room for the legend and the cumulative line ran through it, across the legend's text. The bars
    and the line now stay below the legend in a row of any height, and the legend is drawn above them."""
    from meterdesk.ui.charts.model import synthetic_model
    from meterdesk.ui.charts.widget import ROW_HEIGHT

    chart.set_model(synthetic_model(31, 2, bucket_s=86400, seed=3))
    for height in (2 * ROW_HEIGHT, 4 * ROW_HEIGHT):
        chart.resize(1000, height)
        qtbot.waitUntil(lambda: chart._row("unit_2").widget.height() <= height // 2)
        chart.grab()
        for code, track in (("unit_1", chart.model.units[0]), ("unit_2", chart.model.units[1])):
            row = chart._row(code)
            legend = row.legend.sceneBoundingRect()
            bars_top = row.view.mapViewToScene(QPointF(0, float(track.heights.max()))).y()
            line_top = row.overlay.mapViewToScene(QPointF(0, float(row.cumulative.yData.max()))).y()
            assert bars_top >= legend.bottom(), (code, height, bars_top, legend)
            assert line_top >= legend.bottom(), (code, height, line_top, legend)
            assert row.legend.parentItem() is row.overlay  # above the overlay's lines, not under them
        if height == 2 * ROW_HEIGHT:  # a view hardly taller than the legend and the line labels' room above the data
            shortest = chart._row("unit_2")
            assert shortest.view.height() < shortest.legend.boundingRect().height() + 70


def test_a_new_customer_paints_each_row_once(chart, qapp):
    """Rows are laid out and their views settled before the paint; left to the paint, pyqtgraph moves items
    inside it and a changed title re-lays a row out after it, and Qt paints every row twice."""
    from PySide6.QtCore import QEvent, QObject

    from meterdesk.ui.charts.model import synthetic_model

    chart.set_model(synthetic_model(500, 2, seed=1))
    for _ in range(3):  # the rows are new: let them be shown, laid out and painted
        qapp.processEvents()

    class PaintCounter(QObject):
        def __init__(self):
            super().__init__()
            self.paints: dict[int, int] = {}

        def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint:
                self.paints[id(watched)] = self.paints.get(id(watched), 0) + 1
            return False

    counter = PaintCounter()
    viewports = [chart.row_widget(code).viewport() for code in ("unit_1", "unit_2")]
    for viewport in viewports:
        viewport.installEventFilter(counter)
    chart.set_model(synthetic_model(500, 2, seed=2))
    qapp.processEvents()
    assert [counter.paints.get(id(viewport), 0) for viewport in viewports] == [1, 1]


def test_micro_benchmarks_report_milliseconds(qapp):
    from meterdesk.ui.charts.perf import time_raw_points, time_render

    render = time_render(200, units=2, repeat=1)
    raw = time_raw_points(5000, repeat=1)
    assert render["meterdesk_ms"] > 0 and render["plain_ms"] > 0
    assert raw["meterdesk_ms"] > 0 and raw["plain_ms"] > 0


@pytest.mark.parametrize("units", [1, 5])
def test_many_units_scroll_at_full_row_height_and_titles_fit_their_axes(ledger, qtbot, page_for, units):
    """Five units in an 800-pixel window were squeezed below their rows' minimum: plots cut off at the
    bottom (zero out of sight) and axis titles cut at the top. Now rows keep ROW_HEIGHT and the chart
    scrolls; one unit fills the height without a scroll bar; a title too long for its axis is shortened."""
    from PySide6.QtGui import QFontMetrics

    from meterdesk.ui.charts.model import synthetic_model
    from meterdesk.ui.charts.widget import ROW_HEIGHT

    page = page_for(ledger)
    page.resize(1280, 700)
    page.show()
    page.chart.set_model(synthetic_model(24 * 30, units))
    scroll = page.chart_scroll.verticalScrollBar()
    if units == 1:
        qtbot.waitUntil(lambda: page.chart._row("unit_1").widget.height() > 2 * ROW_HEIGHT)
    else:
        qtbot.waitUntil(lambda: scroll.maximum() > 0)
    page.grab()
    rows = [page.chart._row(f"unit_{n + 1}") for n in range(units)]
    if units == 1:
        assert scroll.maximum() == 0
    else:
        assert all(row.widget.height() >= ROW_HEIGHT for row in rows)
        assert page.chart.height() >= units * ROW_HEIGHT
    for row in rows:
        for name in ("left", "right"):
            axis = row.plot.getAxis(name)
            shown = axis.labelText
            assert shown, name
            width = QFontMetrics(axis.label.font()).horizontalAdvance(shown) + 2 * axis.label.document().documentMargin()
            assert width <= row.view.height(), (name, shown, row.view.height())


LONG_UNIT_NAME = "API calls through the partner gateway, metered per request, retries and webhooks included"


@pytest.fixture
def long_title_ledger(ledger):
    """zeta (postpaid) on a plan whose graduated unit has a long name: with its allowance, next tier and
    billable amount, that row's title is wider than the chart of a 1280-pixel Charts page."""
    seed(ledger)
    add_unit(ledger, "gateway_calls", LONG_UNIT_NAME, 0, "sum", actor="tests")
    save_plan(ledger, {
        "code": "gateway", "name": "Gateway", "currency": "EUR", "base_fee": "10.00",
        "charges": [
            {"unit": "gateway_calls", "model": "graduated", "included": "1000", "tiers": [
                {"up_to": "100000", "unit_price": "0.001"},
                {"unit_price": "0.0005"},
            ]},
            {"unit": "api_calls", "model": "per_unit", "unit_price": "0.002"},
        ],
    }, actor="tests")
    add_customer(ledger, "zeta", "Zeta Gateways", "gateway", actor="tests")
    for index, instant in enumerate(this_month_instants(4)):
        record_usage(ledger, "zeta", "gateway_calls", str(2000 * (index + 1)), f"gw-{index}", occurred_at=instant)
        record_usage(ledger, "zeta", "api_calls", str(100 * (index + 1)), f"api-{index}", occurred_at=instant)
    return ledger


def legend_of(row) -> list[str]:
    return [label.text for _, label in row.legend.items]


def title_of(row) -> tuple[str, str, float]:
    """A row's title as shown (plain text), its tooltip, and the width the shown text takes."""
    label = row.plot.titleLabel
    return label.item.toPlainText(), label.toolTip(), label.itemRect().width()


def assert_rows_keep_the_chart_width(chart, width: int) -> None:
    for row in chart._visible_rows():
        shown, _, title_width = title_of(row)
        assert row.widget.width() <= width, row.key
        assert row.plot.width() <= row.widget.viewport().width(), (row.key, shown)
        axis = row.plot.getAxis("right")
        assert axis.isVisible()
        assert axis.mapRectToScene(axis.boundingRect()).right() <= row.widget.viewport().width(), (row.key, shown)
        assert title_width <= row.view.width(), (row.key, shown)


def test_a_long_unit_title_is_shortened_and_every_row_keeps_the_charts_width(long_title_ledger, qtbot, page_for):
    """A title longer than its row was the plot's minimum width (pyqtgraph's title label asks for its
    text's width), so the row's plot grew past the chart's right edge and its right axis was cut off: the
    demo's Acme "API calls" row at 1280 px. Now every row keeps the chart's width, a title too long is
    shortened (the whole title its tooltip), and it comes back whole when the row is wide enough. The unit
    selector no longer grows with the name either: it made the page itself wider than 1280 px."""
    page = page_for(long_title_ledger)
    page.show()
    page.show_customer("zeta")
    wait_shown(qtbot, page, "zeta")
    gateway, api = page.chart._row("gateway_calls"), page.chart._row("api_calls")
    for size in ((1280, 800), (1100, 700), (2400, 800)):  # page_for made it 1280 x 800
        if page.size().toTuple() != size:
            before = page.chart.width()
            page.resize(*size)

            def laid_out():
                assert page.width() == size[0]  # the unit selector, as wide as the long name, held it wider
                assert page.chart.width() != before

            qtbot.waitUntil(laid_out)
        page.grab()
        assert_rows_keep_the_chart_width(page.chart, page.chart_scroll.viewport().width())
        for row in (gateway, api):  # the view cuts a legend off at its right edge
            legend = row.legend.mapRectToItem(row.view, row.legend.boundingRect())
            assert legend.right() <= row.view.width(), (row.key, legend_of(row))
        shown, tooltip, _ = title_of(gateway)
        if size[0] < 2400:
            assert shown.startswith("API calls through") and shown.endswith("…"), shown
            assert LONG_UNIT_NAME in tooltip and "tier 2 above 101,000" in tooltip and "billable" in tooltip
            assert legend_of(gateway) == ["per day", "cumulative in period", "included allowance"]
        else:
            assert shown.startswith(LONG_UNIT_NAME) and "tier 2 above 101,000" in shown and "billable" in shown
            assert tooltip == ""
            assert legend_of(gateway)[0] == html.escape(f"{LONG_UNIT_NAME} per day")
        shown, tooltip, _ = title_of(api)
        assert shown.startswith("API calls (api_calls) · total 1,000") and tooltip == ""  # it fits: left whole


def test_the_unit_selector_elides_a_long_name_and_shows_it_whole_only_then_as_its_tooltip(long_title_ledger, qtbot, page_for):
    from PySide6.QtCore import QEvent, QPoint
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QToolTip

    page = page_for(long_title_ledger)
    page.show()
    page.show_customer("zeta")
    wait_shown(qtbot, page, "zeta")
    box = page.unit_box

    def hover() -> str:
        QToolTip.hideText()
        QApplication.sendEvent(box, QHelpEvent(QEvent.Type.ToolTip, QPoint(5, 5), box.mapToGlobal(QPoint(5, 5))))
        return QToolTip.text() if QToolTip.isVisible() else ""

    long_index = next(i for i in range(box.count()) if LONG_UNIT_NAME in box.itemText(i))
    box.setCurrentIndex(long_index)
    option, whole = box._option()
    assert option.currentText.endswith("…") and option.currentText != whole
    assert hover() == box.itemText(long_index)
    box.setCurrentIndex(0)  # all units: fits, no tooltip
    assert box._option()[0].currentText == box.itemText(0)
    assert hover() == ""


def test_a_title_too_long_for_even_its_unit_name_is_cut_with_an_ellipsis(long_title_ledger, chart, qtbot):
    """The shortest form of the title (the unit's name) is elided to the row's width, the whole title its tooltip."""
    chart.resize(480, 640)
    chart.set_data(chart_data(long_title_ledger, "zeta", granularity="day"))
    row = chart._row("gateway_calls")
    qtbot.waitUntil(lambda: row.widget.width() == 480)
    chart.grab()
    assert_rows_keep_the_chart_width(chart, 480)
    shown, tooltip, _ = title_of(row)
    assert shown.startswith("API calls") and shown.endswith("…") and len(shown) < len(LONG_UNIT_NAME)
    assert LONG_UNIT_NAME in tooltip
