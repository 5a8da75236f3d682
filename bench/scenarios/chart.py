"""Chart rendering, offscreen: a year of hourly buckets for 3 units, and a million raw points.

meterdesk: the customer chart (`ui/charts/widget.py`: bars clipped and downsampled to the view, the line
auto-downsampled), handed its data, left to the event loop (deferred layout, the window's own repaint), then
painted once in full; each repeat gets a different data set of the same size. Baseline: pyqtgraph as it
comes — every bar and every point, no downsampling — timed the same way. The measurement lives beside the
chart, in `meterdesk.ui.charts.perf`.
"""

from __future__ import annotations

from bench.harness import Context, Result, Target, not_available

SCENARIO = "chart"
YEAR = Target("<= 100 ms", max_value=100.0)
RAW = Target("<= 500 ms", max_value=500.0)
HOURS_IN_A_YEAR = 8760


def run(context: Context) -> list[Result]:
    year_name = "render a year of hourly buckets, 3 units"
    raw_name = "render 1M raw points" if not context.quick else "render 100k raw points"
    try:
        from meterdesk.ui.charts.perf import time_raw_points, time_render
    except ImportError as error:
        why = f"meterdesk.ui.charts.perf is missing ({error})"
        return [not_available(SCENARIO, year_name, "ms", YEAR, why), not_available(SCENARIO, raw_name, "ms", RAW, why)]
    repeat = 2 if context.quick else 5
    context.log("chart: a year of hourly buckets")
    year = time_render(HOURS_IN_A_YEAR, units=3, repeat=repeat)
    context.log("chart: raw points")
    points = 100_000 if context.quick else 1_000_000
    raw = time_raw_points(points, repeat=repeat)
    return [
        Result(SCENARIO, year_name, year["meterdesk_ms"], "ms", year["plain_ms"], YEAR, "pyqtgraph without downsampling",
               f"{HOURS_IN_A_YEAR:,} buckets per unit, {year['meterdesk_bars_drawn']:,} bars drawn; "
               f"zoomed to a week {year['meterdesk_zoomed_week_ms']:.1f} ms"),
        Result(SCENARIO, raw_name, raw["meterdesk_ms"], "ms", raw["plain_ms"], RAW, "pyqtgraph plot(x, y) without downsampling",
               f"{points:,} one-second buckets, {raw['meterdesk_bars_drawn']:,} bars drawn"),
    ]
