"""Micro-benchmarks of the usage chart against plain pyqtgraph, for bench/ (no timing is asserted in tests).

Each measurement is "hand the chart its data, let the event loop do what it would before the person sees it
(deferred layout, the window's own repaint), then paint it once more in full" (`QWidget.grab()` paints every
item), repeated, and reported as the median in milliseconds. Successive repeats alternate between two data
sets of the same size, so nothing can be skipped because the data did not change. The data is synthetic and
prepared before the clock starts: what is measured is drawing, not SQL.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pyqtgraph as pg

from meterdesk.ui.charts.model import US, synthetic_model
from meterdesk.ui.charts.screenshot import application
from meterdesk.ui.charts.widget import CustomerChart

DEFAULT_SIZE = (1280, 800)


def _median_ms(render, repeat: int) -> float:
    """`render(i)` for i in 0..repeat-1, each timed; the median in milliseconds."""
    timings = []
    for index in range(repeat):
        started = time.perf_counter()
        render(index)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _on_screen(app, widget) -> None:
    """What happens after data is handed over: the posted layout and repaint requests, then a full paint."""
    app.processEvents()
    widget.grab()


def _plain_bars(model, size) -> tuple[pg.GraphicsLayoutWidget, list]:
    """pyqtgraph as it comes: one BarGraphItem of every bucket and a full-resolution line per unit."""
    layout = pg.GraphicsLayoutWidget()
    layout.resize(*size)
    items = []
    for index, track in enumerate(model.units):
        plot = layout.addPlot(row=index, col=0, axisItems={"bottom": pg.DateAxisItem()})
        bars = pg.BarGraphItem(x0=np.empty(0), width=np.empty(0), height=np.empty(0), brush="#3b73b9", pen=None)
        line = pg.PlotDataItem(pen="#1f3f66")
        plot.addItem(bars)
        plot.addItem(line)
        items.append((track, bars, line))
    return layout, items


def time_render(n_buckets: int, units: int = 3, *, size: tuple[int, int] = DEFAULT_SIZE, repeat: int = 3) -> dict:
    """Milliseconds to put `units` units of `n_buckets` hourly buckets on screen: meterdesk's chart
    (bars clipped and downsampled to the view, line auto-downsampled) vs plain pyqtgraph (every bar,
    every point). A year of hourly data is n_buckets=8760."""
    app = application()
    models = [synthetic_model(n_buckets, units, seed=seed) for seed in (7, 8)]
    model = models[0]
    chart = CustomerChart()
    chart.resize(*size)
    chart.show()
    app.processEvents()

    def render_chart(index: int) -> None:
        chart.set_model(models[index % 2])
        _on_screen(app, chart)

    meterdesk_ms = _median_ms(render_chart, repeat)
    week = 7 * 24 * 3600 * US

    def render_zoomed(index: int) -> None:
        start = model.start_us + (index % 2) * week  # a different week each time
        chart.set_visible_range_us(start, start + week)
        _on_screen(app, chart)

    zoomed_ms = _median_ms(render_zoomed, repeat)
    drawn = max((chart.drawn_bars(track.code) for track in model.units), default=0)
    chart.close()
    chart.deleteLater()

    layout, items = _plain_bars(model, size)
    layout.show()
    app.processEvents()

    def render_plain(index: int) -> None:
        for track, (_, bars, line) in zip(models[index % 2].units, items):
            bars.setOpts(x0=track.starts_s, width=track.ends_s - track.starts_s, height=track.heights)
            line.setData(track.line_x, track.line_y)
        _on_screen(app, layout)

    plain_ms = _median_ms(render_plain, repeat)
    layout.close()
    layout.deleteLater()
    app.processEvents()
    return {
        "n_buckets": n_buckets,
        "units": units,
        "meterdesk_ms": meterdesk_ms,
        "meterdesk_zoomed_week_ms": zoomed_ms,
        "plain_ms": plain_ms,
        "meterdesk_bars_drawn": drawn,
        "plain_bars_drawn": n_buckets,
    }


def time_raw_points(n: int = 1_000_000, *, size: tuple[int, int] = DEFAULT_SIZE, repeat: int = 3) -> dict:
    """Milliseconds to draw `n` raw points (one unit, one-second buckets): meterdesk's chart vs a plain
    pyqtgraph `plot(x, y)` without downsampling or clip-to-view."""
    app = application()
    models = [synthetic_model(n, 1, bucket_s=1, exact=False, seed=seed) for seed in (7, 8)]
    track = models[0].units[0]
    chart = CustomerChart()
    chart.resize(*size)
    chart.show()
    app.processEvents()

    def render_chart(index: int) -> None:
        chart.set_model(models[index % 2])
        _on_screen(app, chart)

    meterdesk_ms = _median_ms(render_chart, repeat)
    drawn = chart.drawn_bars(track.code)
    chart.close()
    chart.deleteLater()

    plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem()})
    plot.resize(*size)
    plot.show()
    curve = plot.plot(pen="#3b73b9")
    app.processEvents()
    points = [(model.units[0].starts_s, model.units[0].heights) for model in models]

    def render_plain(index: int) -> None:
        curve.setData(*points[index % 2])
        _on_screen(app, plot)

    plain_ms = _median_ms(render_plain, repeat)
    plot.close()
    plot.deleteLater()
    app.processEvents()
    return {"points": n, "meterdesk_ms": meterdesk_ms, "plain_ms": plain_ms, "meterdesk_bars_drawn": drawn}
