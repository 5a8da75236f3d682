"""CustomerChart: one customer's usage per unit (bars, period-cumulative, allowance and tiers) and balance."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QTextDocument
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from meterdesk.services.chart_data import ChartData
from meterdesk.ui.charts import style
from meterdesk.ui.charts.axes import BillingTimeAxis, QuantityAxis
from meterdesk.ui.charts.export import write_csv, write_png
from meterdesk.ui.charts.items import ClippedBars, OverlayViewBox, ValueLine
from meterdesk.ui.charts.model import US, ChartModel, UnitTrack

BALANCE_ROW = "balance"
#: Pixels kept free above the data for the legend (plus a line label's height on the cumulative axis).
_LEGEND_ROOM = 8
_LEGEND_OFFSET = (6, 2)
_LABEL_ROOM = 18
_TITLE_POINTS = 10
#: Ends a row title shortened for a narrow row (the whole title is its tooltip).
_MORE = f" <span style='color:{style.MUTED}'>…</span>"
#: Value axes of every row are this wide, so the rows' time axes line up exactly.
AXIS_WIDTH = 74
#: A tier boundary above the data is drawn (and the axis stretched to it) while it is this close.
_NEXT_TIER_REACH = 2.0
_WIDE_LINE_POINTS = 1500


def _legend_sample(pen) -> pg.PlotDataItem:
    """A line that is never plotted, only shown in a legend (the value lines have no legend sample)."""
    return pg.PlotDataItem([], [], pen=pen)


#: The least height the data keeps in a row too short for the room asked above it.
_MIN_DATA_PX = 24


def fit_y(view: pg.ViewBox, low: float, high: float, reserved_px: float, height: float | None = None) -> None:
    """Set the y range so that [low, high] fills the view below `reserved_px` pixels kept free at the top
    (in a view too short for that, the data still keeps its lowest _MIN_DATA_PX pixels, or a quarter).
    `height`: the view's height if it is not yet its own (an overlay follows its view after a resize)."""
    span = (high - low) or 1.0
    height = float((view.height() if height is None else height) or 0)
    if height <= 0:
        view.setYRange(low, high + span * 0.3, padding=0)
        return
    room = max(height - reserved_px, min(height, max(_MIN_DATA_PX, height / 4)))
    view.setYRange(low, low + span * height / room, padding=0)


ROW_HEIGHT = 150  # a unit's plot row at its smallest, title and time axis included


class _PlotWidget(pg.PlotWidget):
    """A PlotWidget that asks for its minimum height: QGraphicsView asks for its scene's (480 px here), and the
    Charts page's scroll area gave every row that much, so five units needed 2,400 px of scrolling. Rows
    share the height there is and scroll only when they would fall below ROW_HEIGHT."""

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), ROW_HEIGHT)


class _TitleLabel(pg.LabelItem):
    """A plot title that asks for no width: pyqtgraph's LabelItem makes its text's width the plot's minimum,
    so a title longer than its row widened the plot past the chart's right edge and cut off the right axis
    (the demo's Acme "API calls" at 1280 px). The row shortens the text to the width there is instead."""

    def updateMin(self) -> None:  # noqa: N802 - pyqtgraph's name
        super().updateMin()
        self.setMinimumWidth(0)

    def sizeHint(self, hint, constraint):  # noqa: N802 - Qt's name
        size = super().sizeHint(hint, constraint)
        if hint in (Qt.SizeHint.MinimumSize, Qt.SizeHint.PreferredSize):
            size.setWidth(0)
        return size


class _Row:
    """One plot row: a PlotWidget with the billing-time axis, a title, a legend, a hover readout and a
    highlight band. Subclasses draw a unit or the balance into it."""

    key: str = ""

    def __init__(self, chart: CustomerChart) -> None:
        self.chart = chart
        self._shown: dict[object, tuple] = {}
        self.time_axis = BillingTimeAxis()
        self.widget = _PlotWidget(
            background=style.BACKGROUND,
            axisItems={"bottom": self.time_axis, "left": QuantityAxis("left"), "right": QuantityAxis("right")},
        )
        self.widget.setMinimumHeight(ROW_HEIGHT)
        self.widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.plot = self.widget.getPlotItem()
        # pyqtgraph's own title label takes its text's width as the plot's minimum (see _TitleLabel).
        self.plot.layout.removeItem(self.plot.titleLabel)
        self.widget.scene().removeItem(self.plot.titleLabel)
        self.plot.titleLabel = _TitleLabel(" ", parent=self.plot)
        self.plot.layout.addItem(self.plot.titleLabel, 0, 1)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=False, y=True, alpha=1.0)
        self.view = self.plot.getViewBox()
        self.view.setMouseEnabled(x=True, y=False)
        self.view.disableAutoRange()
        for name in ("left", "bottom", "right"):
            axis = self.plot.getAxis(name)
            axis.setPen(style.pen(style.AXIS))
            axis.setTextPen(style.pen(style.TEXT))
            # Two tick levels at most: a third adds dozens of alpha-blended grid lines, slow to paint.
            axis.setStyle(tickFont=style.tick_font(), tickLength=-5, maxTickLevel=0 if name == "left" else 1)
        self.plot.getAxis("right").setGrid(False)
        # The grid is the left axis's ticks drawn across: opaque light lines, far cheaper than alpha ones.
        self.plot.getAxis("left").setTickPen(style.pen(style.GRID))
        # pyqtgraph stacks axes above the view, so the grid ran across bars, legend and line labels: put it behind.
        self.plot.getAxis("left").setZValue(self.view.zValue() - 1)
        self.plot.getAxis("left").setStyle(tickAlpha=255)
        self.plot.getAxis("left").setWidth(AXIS_WIDTH)
        self.plot.getAxis("right").setWidth(AXIS_WIDTH)
        # An opaque box: grid lines no longer show through the legend's text, and it fills faster.
        self.legend = pg.LegendItem(offset=_LEGEND_OFFSET, brush=pg.mkBrush(style.BACKGROUND), pen=style.pen("#d5dbe1"), labelTextColor=style.TEXT, horSpacing=14)
        # Qt's default layout margins made a one-line legend 40 px tall: a third of a row at its smallest.
        self.legend.layout.setContentsMargins(6, 1, 6, 1)
        self.legend.setParentItem(self.view)
        self.highlight = pg.LinearRegionItem(
            values=(0, 0), movable=False, brush=pg.mkBrush(style.with_alpha(style.HIGHLIGHT, 24)), pen=pg.mkPen(None)
        )
        self.highlight.setZValue(-10)
        self.highlight.hide()
        self.view.addItem(self.highlight, ignoreBounds=True)
        self.readout = pg.TextItem(anchor=(0, 0), border=style.pen("#c3ccd5"), fill=pg.mkBrush(255, 255, 255, 240))
        self.readout.setZValue(100)
        self.readout.hide()
        self.view.addItem(self.readout, ignoreBounds=True)
        scene = self.widget.scene()
        scene.sigMouseMoved.connect(self._mouse_moved)
        scene.sigMouseClicked.connect(self._mouse_clicked)
        self.view.sigXRangeChanged.connect(lambda *_: chart._x_range_changed(self))
        self._legends: list[tuple[list[tuple[object, str]], float | None]] = []  # (entries, width once built)
        self.view.sigResized.connect(lambda *_: self._fit_legend())  # first: fit() keeps the legend's height free
        self.view.sigResized.connect(lambda *_: self.fit())
        self._axis_labels: dict[str, tuple[str, str, str]] = {}  # axis: (label, short label, colour)
        self.view.sigResized.connect(lambda *_: self._fit_axis_labels())
        self._titles: list[tuple[str, float]] = []  # (title, its width), the whole title first
        self.view.sigResized.connect(lambda *_: self._fit_title())

    def fit(self) -> None:
        """Re-fit the value ranges to the view's current height (subclasses know their data)."""

    def legend_room(self) -> float:
        return self.legend.boundingRect().height() + _LEGEND_ROOM if self.legend.items else 0.0

    # -- shared plumbing -------------------------------------------------------------------------
    def set_timezone(self, timezone) -> None:
        self.time_axis.set_timezone(timezone)

    def changed(self, key: object, *value) -> bool:
        """Whether `value` differs from the last one given under `key` (and remember it). Qt lays text out
        again, pyqtgraph re-lays the plot out and restyles items on every set, even to the same value: this
        skips those."""
        if self._shown.get(key) == value:
            return False
        self._shown[key] = value
        return True

    def set_title(self, text: str, *shorter: str) -> None:
        """The row's title; the `shorter` forms (longest first) stand in while the row is too narrow for it,
        and the last is cut short with an ellipsis when even it does not fit. A shortened title has the
        whole one as its tooltip."""
        if self.changed("titles", text, shorter):
            self._titles = [(form, self._title_width(form)) for form in (text, *shorter)]
            self._fit_title()

    def _title_width(self, text: str) -> float:
        """The width `text` takes as the title (the text item's margins included)."""
        document = QTextDocument()
        document.setDefaultFont(self.plot.titleLabel.item.font())
        document.setHtml(f"<span style='font-size: {_TITLE_POINTS}pt'>{text}</span>")
        return document.idealWidth()

    def _fit_title(self) -> None:
        if not self._titles:
            return
        room = self.view.width()
        shown = next((form for form, width in self._titles if width <= room), None)
        if shown is None:
            font = QFont(self.plot.titleLabel.item.font())
            font.setPointSizeF(_TITLE_POINTS)
            margins = 2 * self.plot.titleLabel.item.document().documentMargin()
            plain = _plain_text(self._titles[-1][0])
            shown = html.escape(QFontMetrics(font).elidedText(plain, Qt.TextElideMode.ElideRight, max(0, int(room - margins))))
        if self.changed("title", shown):
            self.plot.setTitle(shown, color=style.TEXT, size=f"{_TITLE_POINTS}pt", justify="left")
            whole = self._titles[0][0]
            self.plot.titleLabel.setToolTip("" if shown == whole else whole)

    def set_axis_label(self, name: str, text: str, colour: str, short: str | None = None) -> None:
        """A value axis's title; `short` stands in while the row is too low for `text` (with five units
        in an 800-pixel window the titles were cut to "ats per day")."""
        self._axis_labels[name] = (text, short or text, colour)
        self._fit_axis_label(name)

    def _fit_axis_labels(self) -> None:
        for name in self._axis_labels:
            self._fit_axis_label(name)

    def _fit_axis_label(self, name: str) -> None:
        text, short, colour = self._axis_labels[name]
        axis = self.plot.getAxis(name)
        # The title is centred along the axis and cut off at its ends (the text item's margins included).
        needed = QFontMetrics(axis.label.font()).horizontalAdvance(text) + 2 * axis.label.document().documentMargin() + 6
        if short != text and needed > self.view.height():
            text = short
        if self.changed(name, text, colour):
            axis.setLabel(text, color=colour)

    def set_bottom_labels(self, shown: bool, timezone_name: str) -> None:
        if not self.changed("bottom", shown, timezone_name):
            return
        axis = self.plot.getAxis("bottom")
        axis.setStyle(showValues=shown)
        axis.setLabel(f"Billing time ({timezone_name})" if shown else None, color=style.MUTED)
        axis.showLabel(shown)

    def set_legend(self, entries: list[tuple[object, str]], shorter: list[tuple[object, str]] | None = None) -> None:
        """The legend; `shorter` stands in while the row is too narrow for `entries` (the view cuts a legend
        off at its right edge: a long unit name in the bars' entry hid the entries after it)."""
        forms = [entries, shorter] if shorter else [entries]
        if self.changed("legends", [[(id(item), name) for item, name in form] for form in forms]):
            self._legends = [(form, None) for form in forms]
        self._fit_legend()

    def _fit_legend(self) -> None:
        room = self.view.width() - 2 * _LEGEND_OFFSET[0]
        for index, (entries, width) in enumerate(self._legends):
            last = index == len(self._legends) - 1
            if width is None and not last:
                self._show_legend(entries)
                width = self.legend.boundingRect().width()
                self._legends[index] = (entries, width)
            if last or width <= room:
                self._show_legend(entries)
                return

    def _show_legend(self, entries: list[tuple[object, str]]) -> None:
        key = [(id(item), name) for item, name in entries]
        if key == getattr(self, "_legend_key", None):
            return  # the same entries: rebuilding the legend's labels is the slowest part of an update
        self._legend_key = key
        self.legend.clear()
        self.legend.setColumnCount(max(1, len(entries)))
        for item, name in entries:
            self.legend.addItem(item, html.escape(name))

    def _instant_at(self, scene_pos) -> int | None:
        if not self.view.sceneBoundingRect().contains(scene_pos):
            return None
        return int(round(self.view.mapSceneToView(scene_pos).x() * US))

    def _mouse_moved(self, scene_pos) -> None:
        instant = self._instant_at(scene_pos)
        if instant is None:
            self.chart._hover_left(self)
            return
        self.chart.hover_at(self.key, instant)

    def _mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        instant = self._instant_at(event.scenePos())
        if instant is None:
            return
        if event.double():
            self.chart.reset_zoom()
            return
        self.chart.click_at(self.key, instant)

    def show_highlight(self, start_us: int, end_us: int) -> None:
        self.highlight.setRegion((start_us / US, end_us / US))
        self.highlight.show()

    def show_readout(self, text_html: str, instant_us: int) -> None:
        view = self.readout.getViewBox() or self.view
        (low, high), (bottom, top) = view.viewRange()
        x = instant_us / US
        right_half = x > (low + high) / 2
        self.readout.setAnchor((1, 0) if right_half else (0, 0))
        offset = (high - low) * 0.01
        self.readout.setHtml(f'<div style="color:{style.TEXT}; font-size:9pt">{text_html}</div>')
        per_pixel = (top - bottom) / max(1.0, float(view.height() or 1))
        self.readout.setPos(x - offset if right_half else x + offset, top - (self.legend_room() + 2) * per_pixel)
        self.readout.show()

    def hide_hover(self) -> None:
        self.highlight.hide()
        self.readout.hide()


class _UnitRow(_Row):
    """Bars per bucket on the left axis; the period-cumulative, allowance and tier lines on the right."""

    def __init__(self, chart: CustomerChart) -> None:
        super().__init__(chart)
        self.track: UnitTrack | None = None
        self.bars = ClippedBars(self.view, brush=pg.mkBrush("#888888"))
        self.markers = pg.ScatterPlotItem(symbol="t", size=11, pen=style.pen("#ffffff", 1), brush=pg.mkBrush(style.REVERSAL))
        self.markers.setZValue(20)
        self.view.addItem(self.markers)
        self.plot.showAxis("right")
        self.overlay = OverlayViewBox()
        self.overlay.follow(self.view)
        self.overlay.disableAutoRange()
        self.plot.getAxis("right").linkToView(self.overlay)
        # The legend goes on the topmost box too, or the cumulative line is drawn across it in a short row.
        self.legend.setParentItem(self.overlay)
        self.cumulative = pg.PlotDataItem(pen=style.pen("#444444", 2))
        self.cumulative.setDownsampling(auto=True, method="peak")
        # pyqtgraph keeps ~5 samples per pixel; "peak" already keeps each pixel's low and high, so one bin
        # per pixel draws the same line with a fifth of the points (there is no setter for this option).
        self.cumulative.opts["autoDownsampleFactor"] = 1.0
        self.cumulative.setClipToView(True)
        # The value ranges are always fitted to the data, so the line never needs pyqtgraph's guard against
        # huge coordinates, which recomputes the drawn line on every change of the value range.
        self.cumulative.setDynamicRangeLimit(None)
        self.cumulative.setZValue(10)
        self.overlay.addItem(self.cumulative)
        self.included_line = ValueLine(style.allowance_pen(), label_colour=style.ALLOWANCE)
        self.overlay.addItem(self.included_line, ignoreBounds=True)
        # The readout goes on the topmost box, or the cumulative line would be drawn across it.
        self.view.removeItem(self.readout)
        self.overlay.addItem(self.readout, ignoreBounds=True)
        self.tier_lines: list[ValueLine] = []
        self._samples: dict[str, pg.PlotDataItem] = {}
        self._extents = (0.0, 1.0, 0.0, 1.0)

    def fit(self) -> None:
        bars_low, bars_high, line_low, line_high = self._extents
        room = self.legend_room()
        fit_y(self.view, bars_low, bars_high, room)
        # The overlay takes the view's new geometry after this runs (OverlayViewBox.follow): fit it to the view's.
        fit_y(self.overlay, line_low, line_high, room + _LABEL_ROOM, self.view.height())

    def _tier_line(self, index: int) -> ValueLine:
        while len(self.tier_lines) <= index:
            line = ValueLine(style.tier_pen(), label_colour=style.TIER)
            self.overlay.addItem(line, ignoreBounds=True)
            self.tier_lines.append(line)
        return self.tier_lines[index]

    def set_track(self, track: UnitTrack, colour: QColor, model: ChartModel) -> None:
        self.track = track
        self.key = track.code
        per = style.GRANULARITY_NOUN[model.granularity]
        bar_colour = style.flattened(colour, 200)
        line_colour = style.darker(colour, 150)
        if self.changed("bar colour", bar_colour.rgba()):
            self.bars.set_brush(pg.mkBrush(bar_colour))
        # Wide pens go through Qt's slow stroker; a dense line (a year of hours) reads fine at 1 px.
        line_width = 2.2 if len(track.line_x) <= _WIDE_LINE_POINTS else 1.0
        if self.changed("line pen", line_colour.rgba(), line_width):
            self.cumulative.setPen(style.pen(line_colour, line_width))
        self.bars.set_data(track.starts_s, track.ends_s, track.heights)
        self.cumulative.setData(track.line_x, track.line_y)

        low = min(0.0, float(track.heights.min())) if len(track) else 0.0
        high = float(track.heights.max()) if len(track) else 0.0
        high = high if high > 0 else 1.0

        allowance = track.allowance
        included = float(allowance.included)
        line_top = float(track.line_y.max()) if len(track.line_y) else 0.0
        line_low = min(0.0, float(track.line_y.min())) if len(track.line_y) else 0.0
        reach = max(line_top, included, 1.0)
        above = [float(b) for b in allowance.tier_bounds if float(b) > reach]
        if above and above[0] <= reach * _NEXT_TIER_REACH:
            reach = above[0]  # the next tier is near: show how close the customer is to it
        top = reach
        self._extents = (low * 1.06, high * 1.08, line_low * 1.04, reach * 1.02)
        self.included_line.setVisible(allowance.included > 0)
        self.included_line.setValue(included)
        self.included_line.set_label(f"{style.quantity_text(allowance.included)} included")
        tiers_in_view = 0
        for index, bound in enumerate(allowance.tier_bounds):
            line = self._tier_line(index)
            line.setValue(float(bound))
            line.set_label(f"tier {index + 2} above {style.quantity_text(bound)}")
            line.setVisible(float(bound) <= top)
            tiers_in_view += float(bound) <= top
        for line in self.tier_lines[len(allowance.tier_bounds):]:
            line.setVisible(False)

        marks = [(start, count) for start, count in sorted(track.reversals.items())]
        if marks:
            xs, ys = [], []
            for start, count in marks:
                bucket = model.bucket_at(start) or (start, start)
                xs.append((bucket[0] + bucket[1]) / 2 / US)
                ys.append(max(float(track.value_at(start)), 0.0) + high * 0.05)
            self.markers.setData(x=np.array(xs), y=np.array(ys))
        elif len(self.markers.data):
            self.markers.setData(x=[], y=[])

        self.set_axis_label("left", f"{track.name} per {per}", style.TEXT, f"per {per}")
        # A `max` unit (seats) is billed on its peak, so its line is the period's peak so far.
        line_name = "peak so far in period" if track.aggregation == "max" else "cumulative in period"
        self.set_axis_label("right", line_name, line_colour.name(), "peak so far" if track.aggregation == "max" else "cumulative")
        entries = [(self.bars.item, f"{track.name} per {per}"), (self.cumulative, line_name)]
        if allowance.included > 0:
            entries.append((self._sample("included", pen=style.allowance_pen()), "included allowance"))
        if tiers_in_view:
            entries.append((self._sample("tier", pen=style.tier_pen()), "tier boundary"))
        if marks:
            entries.append((self.markers, "correction (reversal)"))
        self.set_legend(entries, [(self.bars.item, f"per {per}"), *entries[1:]])
        self.set_title(*self._titles_of(track, model))
        self.fit()

    def _sample(self, name: str, **kwargs) -> pg.PlotDataItem:
        if name not in self._samples:
            self._samples[name] = _legend_sample(**kwargs)
        return self._samples[name]

    def _titles_of(self, track: UnitTrack, model: ChartModel) -> list[str]:
        """The row's title, then shorter forms for a narrow row: the next tier and the allowance go first
        (the plot labels their lines), then the unit's code, the total, and last the billable amount."""
        name = f"<b>{html.escape(track.name)}</b>"
        code = f" <span style='color:{style.MUTED}'>({html.escape(track.code)})</span>"
        facts: dict[str, str] = {}  # in reading order
        what = "peak" if track.aggregation == "max" else ("entries" if track.aggregation == "count" else "total")
        facts["total"] = f"{what} {style.quantity_text(track.quantity)}"
        if track.allowance.included > 0:
            facts["included"] = f"{style.quantity_text(track.allowance.included)} included"
        next_tier = next((b for b in track.allowance.tier_bounds if b > track.quantity), None)
        if next_tier is not None and track.allowance.model == "graduated":
            tier = track.allowance.tier_bounds.index(next_tier) + 2
            facts["tier"] = f"tier {tier} above {style.quantity_text(next_tier)}"
        summary = model.summary
        if summary is not None:
            unit = next((u for u in summary.units if u.unit == track.code), None)
            # A custom range is not an invoice: its amounts would only be an estimate, so none is shown.
            if unit is not None and track.allowance.model is not None and summary.period is not None:
                facts["billable"] = f"billable {style.quantity_text(unit.billable)} = {style.money_text(unit.amount, model.currency)}"
        titles = [" · ".join([name + code, *facts.values()])]
        for left_out in ("tier", "included", "code", "total", "billable"):
            if left_out == "code":
                code = ""
            elif facts.pop(left_out, None) is None:
                continue
            titles.append(" · ".join([name + code, *facts.values()]) + _MORE)
        return titles

    def describe(self, instant_us: int, model: ChartModel) -> str | None:
        track = self.track
        bucket = model.bucket_at(instant_us)
        if track is None or bucket is None:
            return None
        start, end = bucket
        index = track.index_at(start)
        when = style.bucket_text(start, end, model.granularity, model.timezone)
        if index is not None and index < len(track.values):
            value = track.values[index]
            cumulative = track.cumulative[index]
        elif index is not None:  # a synthetic track without exact values
            value = Decimal(repr(float(track.heights[index])))
            cumulative = None
        else:
            value = Decimal(0)
            cumulative = track.cumulative_before(start, model.period_starts_us)
        lines = [f"<b>{html.escape(when)}</b>", f"{html.escape(track.name)}: <b>{style.quantity_text(value)}</b>"]
        if cumulative is not None:
            label = "peak so far this period" if track.aggregation == "max" else "cumulative this period"
            text = f"{label}: {style.quantity_text(cumulative)}"
            if track.allowance.included > 0:
                text += f" of {style.quantity_text(track.allowance.included)} included"
            lines.append(text)
        reversals = track.reversals.get(start, 0)
        if reversals:
            noun = "reversal" if reversals == 1 else "reversals"
            lines.append(f"<span style='color:{style.REVERSAL}'>{reversals} {noun} (correction) landed here</span>")
        return "<br>".join(lines)


class _BalanceRow(_Row):
    """A prepaid customer's balance over time, with zero and the credit limit drawn across."""

    key = BALANCE_ROW

    def __init__(self, chart: CustomerChart) -> None:
        super().__init__(chart)
        self.plot.getAxis("right").setStyle(showValues=False, tickLength=0)  # only keeps the time axes aligned
        self.plot.showAxis("right")
        # Above zero the area is green, below it red; the line is drawn on top of both.
        self.fill_above = pg.PlotDataItem(pen=None, fillLevel=0, fillBrush=pg.mkBrush(style.with_alpha(style.BALANCE, 38)))
        self.fill_below = pg.PlotDataItem(pen=None, fillLevel=0, fillBrush=pg.mkBrush(style.with_alpha(style.BALANCE_NEGATIVE, 46)))
        self.line = pg.PlotDataItem(pen=style.pen(style.BALANCE, 2.2))
        for item in (self.fill_above, self.fill_below, self.line):
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            self.view.addItem(item)
        self.zero = ValueLine(style.pen(style.AXIS, 1), 0.0)
        self.view.addItem(self.zero, ignoreBounds=True)
        self.limit = ValueLine(style.limit_pen(), label_colour=style.BALANCE_NEGATIVE)
        self.view.addItem(self.limit, ignoreBounds=True)
        self.model: ChartModel | None = None
        self._extents = (0.0, 1.0)
        self._limit_sample = _legend_sample(pen=style.limit_pen())
        self._line_sample = _legend_sample(pen=style.pen(style.BALANCE, 2.2))

    def set_model(self, model: ChartModel) -> None:
        self.model = model
        balance = model.balance
        assert balance is not None
        self.line.setData(balance.line_x, balance.line_y)
        x, y = _with_zero_crossings(balance.line_x, balance.line_y)
        self.fill_above.setData(x, np.maximum(y, 0.0))
        self.fill_below.setData(x, np.minimum(y, 0.0))
        floor = -float(balance.credit_limit)
        low = min(float(balance.line_y.min()), floor, 0.0)
        high = max(float(balance.line_y.max()), 0.0)
        span = (high - low) or 1.0
        self._extents = (low - span * 0.06, high + span * 0.04)
        self.limit.setValue(floor)
        self.limit.set_label(f"credit limit {style.money_text(-balance.credit_limit, model.currency)}")
        self.set_axis_label("left", f"Balance ({model.currency})", style.TEXT, model.currency)
        self.set_legend([(self._line_sample, f"prepaid balance ({model.currency})"), (self._limit_sample, "credit limit")])
        current = balance.current
        colour = style.BALANCE_NEGATIVE if current < -balance.credit_limit else (style.TEXT if current >= 0 else "#b9770e")
        state = ""
        if current < -balance.credit_limit:
            state = " — <b>over the credit limit</b>"
        elif current < 0:
            state = " — below zero, within the credit limit"
        now = f"<b>Prepaid balance</b> <span style='color:{colour}'>{style.money_text(current, model.currency)} now"
        if state:
            self.set_title(f"{now}{state}</span>", f"{now}</span>{_MORE}")
        else:
            self.set_title(f"{now}</span>")
        self.fit()

    def fit(self) -> None:
        fit_y(self.view, *self._extents, self.legend_room())

    def describe(self, instant_us: int, model: ChartModel) -> str | None:
        balance = model.balance
        bucket = model.bucket_at(instant_us)
        if balance is None or bucket is None:
            return None
        index = balance.index_at(instant_us, model.edges_us)
        when = style.bucket_text(bucket[0], bucket[1], model.granularity, model.timezone)
        if index is None:
            return f"<b>{html.escape(when)}</b><br>not yet"
        value = balance.balances[index]
        at = style.local_time(int(balance.at_us[index]), model.timezone)
        return (
            f"<b>{html.escape(when)}</b><br>balance at {at:%d %b %H:%M}: <b>{style.money_text(value, model.currency)}</b>"
            f"<br><span style='color:{style.MUTED}'>exact {style.exact_money_text(value, model.currency)}</span>"
        )


class CustomerChart(QWidget):
    """One customer's usage per unit over time and, for prepaid customers, their balance.

    Built once; `set_model` (or `set_data`) only feeds new arrays to the existing items. Rows are added the
    first time a customer has that many units and are reused after.
    """

    bucketActivated = Signal(str, str, "qint64", "qint64")  # customer, unit, bucket start (us), bucket end (us)
    modelChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("customerChart")
        self.setAutoFillBackground(True)
        palette = self.palette()
        palette.setColor(self.backgroundRole(), QColor(style.BACKGROUND))
        self.setPalette(palette)
        self.model: ChartModel | None = None
        self.hover_text: str = ""
        self._unit_filter: str | None = None
        self._syncing = False
        self._unit_rows: list[_UnitRow] = []
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.figures = QLabel()
        self.figures.setTextFormat(Qt.TextFormat.RichText)
        self.figures.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        header_box = QWidget()
        header_layout = QHBoxLayout(header_box)
        header_layout.setContentsMargins(10, 8, 12, 6)
        header_layout.addWidget(self.header, 1)
        header_layout.addWidget(self.figures)
        self.placeholder = QLabel("Choose a customer to see their usage.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet(f"color: {style.MUTED}; font-size: 12pt;")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self._layout.addWidget(header_box)
        self._layout.addWidget(self.placeholder, 1)
        self.balance_row = _BalanceRow(self)
        self._layout.addWidget(self.balance_row.widget, 3)
        self.balance_row.widget.hide()
        self._show_header(None)

    # -- data --------------------------------------------------------------------------------------
    def set_data(self, data: ChartData) -> None:
        self.set_model(ChartModel.from_data(data))

    def set_model(self, model: ChartModel | None) -> None:
        self.model = model
        self.hover_text = ""
        if model is None:
            for row in self._unit_rows:
                row.widget.hide()
            self.balance_row.widget.hide()
            self.placeholder.show()
            self._show_header(None)
            self.modelChanged.emit()
            return
        self.placeholder.hide()
        while len(self._unit_rows) < len(model.units):
            row = _UnitRow(self)
            self._unit_rows.append(row)
            self._layout.insertWidget(self._layout.indexOf(self.balance_row.widget), row.widget, 3)
        # The time range first: the lines are then cut and downsampled to the view once, as the data arrives.
        self._show_whole_range()
        for index, (row, track) in enumerate(zip(self._unit_rows, model.units)):
            row.set_timezone(model.timezone)
            row.set_track(track, style.unit_colour(index), model)
            row.hide_hover()
        if model.balance is not None:
            self.balance_row.set_timezone(model.timezone)
            self.balance_row.set_model(model)
            self.balance_row.hide_hover()
        self._show_header(model)
        self._apply_visibility()
        self._settle()
        self.modelChanged.emit()

    def clear(self) -> None:
        self.set_model(None)

    def set_unit_filter(self, unit: str | None) -> None:
        """Show one unit's row only (None: every unit)."""
        self._unit_filter = unit
        self._apply_visibility()

    @property
    def unit_filter(self) -> str | None:
        return self._unit_filter

    def _visible_rows(self) -> list[_Row]:
        """The rows on screen: the chosen unit, or every unit with usage in the range (all of them when
        none has any), then the balance."""
        model = self.model
        if model is None:
            return []
        rows = self._unit_rows[: len(model.units)]
        chosen = [row for row in rows if row.key == self._unit_filter]
        if not chosen:
            chosen = [row for row in rows if row.track is not None and len(row.track)] or rows
        visible: list[_Row] = list(chosen)
        if model.balance is not None:
            visible.append(self.balance_row)
        return visible

    def idle_units(self) -> list[str]:
        """Units of the customer's plan without usage in the range (their rows are left out)."""
        if self.model is None:
            return []
        return [track.code for track in self.model.units if not len(track)]

    def _apply_visibility(self) -> None:
        visible = self._visible_rows()
        for row in [*self._unit_rows, self.balance_row]:
            row.widget.setVisible(row in visible)
        timezone_name = self.model.timezone.key if self.model else "UTC"
        for row in visible:
            row.set_bottom_labels(row is visible[-1], timezone_name)

    def _rows(self) -> list[_Row]:
        return self._visible_rows()

    def _row(self, key: str) -> _Row | None:
        return next((row for row in self._rows() if row.key == key), None)

    # -- range ---------------------------------------------------------------------------------------
    def reset_zoom(self) -> None:
        if self.model is None:
            return
        self._show_whole_range()
        self._settle()

    def _show_whole_range(self) -> None:
        model = self.model
        low, high = model.start_us / US, model.end_us / US
        self._syncing = True
        try:
            for row in [*self._unit_rows, self.balance_row]:
                row.view.setLimits(xMin=low, xMax=high, minXRange=min(3600.0, high - low))
                row.view.setXRange(low, high, padding=0)
        finally:
            self._syncing = False

    def _settle(self) -> None:
        """Lay the rows out and bring their view transforms and bars up to date now, before the paint.

        Left to the paint, a changed title re-lays a row out just after it was painted, and pyqtgraph's
        views move their items inside the paint: either way Qt paints every row a second time.
        """
        for row in self._visible_rows():
            row.plot.layout.activate()
            row.widget.scene().prepareForPaint()

    def _x_range_changed(self, source: _Row) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            low, high = source.view.viewRange()[0]
            for row in [*self._unit_rows, self.balance_row]:
                if row is not source:
                    row.view.setXRange(low, high, padding=0)
        finally:
            self._syncing = False
        self._settle()

    def visible_range_us(self) -> tuple[int, int]:
        rows = self._rows()
        if not rows:
            return (0, 0)
        low, high = rows[0].view.viewRange()[0]
        return int(low * US), int(high * US)

    def set_visible_range_us(self, start_us: int, end_us: int) -> None:
        rows = self._rows()
        if rows:
            rows[0].view.setXRange(start_us / US, end_us / US, padding=0)

    # -- reading values ------------------------------------------------------------------------------
    def bucket_values(self, unit: str) -> list[tuple[int, Decimal]]:
        """The exact (bucket start, value) pairs the chart draws for `unit`, as the series gave them."""
        track = self.model.unit(unit) if self.model else None
        if track is None:
            return []
        return [(int(start), value) for start, value in zip(track.starts_us.tolist(), track.values)]

    def drawn_bars(self, unit: str) -> int:
        row = self._row(unit)
        return row.bars.drawn if isinstance(row, _UnitRow) else 0

    def hover_at(self, row_key: str, instant_us: int) -> str:
        """Show the readout for the bucket at `instant_us` in a row (a unit code, or 'balance'); returns
        the readout's text. The mouse calls this; so can tests and the screenshot script."""
        model = self.model
        row = self._row(row_key)
        if model is None or row is None:
            return ""
        text = row.describe(instant_us, model)
        bucket = model.bucket_at(instant_us)
        for other in self._rows():
            if bucket is not None:
                other.show_highlight(*bucket)
            if other is not row:
                other.readout.hide()
        if text is None or bucket is None:
            row.readout.hide()
            self.hover_text = ""
            return ""
        row.show_readout(text, instant_us)
        self.hover_text = _plain_text(text)
        return self.hover_text

    def _hover_left(self, row: _Row) -> None:
        row.readout.hide()
        if not any(other.readout.isVisible() for other in self._rows()):
            for other in self._rows():
                other.highlight.hide()
            self.hover_text = ""

    def click_at(self, row_key: str, instant_us: int) -> bool:
        """Emit bucketActivated for the unit bucket at `instant_us`; False when there is none."""
        model = self.model
        if model is None or row_key == BALANCE_ROW or model.unit(row_key) is None:
            return False
        bucket = model.bucket_at(instant_us)
        if bucket is None:
            return False
        self.bucketActivated.emit(model.customer, row_key, bucket[0], bucket[1])
        return True

    def row_widget(self, row_key: str) -> pg.PlotWidget | None:
        row = self._row(row_key)
        return row.widget if row else None

    # -- export ----------------------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> QSize:
        """The chart as you see it, as a PNG of the widget's size (times the screen's pixel ratio)."""
        return write_png(self, path)

    def export_csv(self, path: str | Path) -> int:
        """The chart's numbers as CSV with exact decimal strings; returns the number of data rows."""
        if self.model is None:
            raise ValueError("there is no chart to export")
        return write_csv(self.model, path)

    # -- header ----------------------------------------------------------------------------------------
    def _show_header(self, model: ChartModel | None) -> None:
        if model is None:
            self.header.setText(f"<span style='color:{style.MUTED}; font-size:13pt'>Usage charts</span>")
            self.figures.clear()
            return
        mode = "prepaid" if model.mode == "prepaid" else "invoiced at period close"
        plan = f"plan <b>{html.escape(model.plan)}</b> · " if model.plan else "no plan · "
        when = _period_title(model) if model.period else style.range_text(model.start_us, model.end_us, model.timezone)
        facts = [html.escape(when), f"{style.GRANULARITY_ADJECTIVE[model.granularity]} buckets", html.escape(model.timezone.key)]
        idle = [track.name for track in model.units if not len(track)]
        if idle and len(idle) < len(model.units):
            facts.append(f"<span style='color:{style.MUTED}'>no usage of {html.escape(', '.join(idle))}</span>")
        self.header.setText(
            f"<span style='font-size:14pt; font-weight:600; color:{style.TEXT}'>{html.escape(model.name)}</span>"
            f"&nbsp;&nbsp;<span style='color:{style.MUTED}'>{html.escape(model.customer)} · {plan}{mode}</span><br>"
            f"<span style='color:{style.TEXT}'>{' · '.join(facts)}</span>"
        )
        first, second = [], []
        summary = model.summary
        if summary is not None:
            if summary.period is not None:
                first.append(f"base fee {style.money_text(summary.base_fee, model.currency)}")
                first.append(f"usage {style.money_text(summary.usage_amount, model.currency)}")
                label = "due" if model.mode == "prepaid" else "total"
                second.append(f"{label} <b>{style.money_text(summary.due, model.currency)}</b>")
            if summary.corrections:
                noun = "correction" if summary.corrections == 1 else "corrections"
                second.append(f"<span style='color:{style.REVERSAL}'>{summary.corrections} {noun}</span>")
        if model.balance is not None:
            colour = style.BALANCE_NEGATIVE if model.balance.current < 0 else style.BALANCE
            second.append(f"balance <b style='color:{colour}'>{style.money_text(model.balance.current, model.currency)}</b>")
        self.figures.setText(
            f"<span style='color:{style.MUTED}'>{' · '.join(first)}</span><br>"
            f"<span style='color:{style.TEXT}; font-size:11pt'>{' · '.join(second)}</span>"
        )


def _with_zero_crossings(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The polyline with a point added wherever it crosses zero, so fills split exactly at zero."""
    if len(y) < 2:
        return x, y
    crossing = np.nonzero((y[:-1] > 0) & (y[1:] < 0) | (y[:-1] < 0) & (y[1:] > 0))[0]
    if not len(crossing):
        return x, y
    x0, x1, y0, y1 = x[crossing], x[crossing + 1], y[crossing], y[crossing + 1]
    at = x0 + (x1 - x0) * (y0 / (y0 - y1))
    return np.insert(x, crossing + 1, at), np.insert(y, crossing + 1, 0.0)


def _period_title(model: ChartModel) -> str:
    first = style.local_time(model.start_us, model.timezone)
    return f"{first:%B %Y} ({style.range_text(model.start_us, model.end_us, model.timezone)})"


def _plain_text(text_html: str) -> str:
    return html.unescape(re.sub(r"<br\s*/?>", "\n", re.sub(r"<(?!br)[^>]+>", "", text_html)))
