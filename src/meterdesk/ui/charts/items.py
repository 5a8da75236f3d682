"""Graphics items the charts need beyond pyqtgraph's: bars clipped and downsampled to the view, and a
second value axis that never takes the mouse from the plot under it."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

_EMPTY = np.empty(0, dtype=np.float64)
#: Bars at least this many pixels wide get a small gap, so neighbouring buckets read as separate bars.
GAP_FROM_PIXELS = 5.0
GAP_FRACTION = 0.12


class _Bars(pg.BarGraphItem):
    """A BarGraphItem that works its bounding rectangle out once per data or view change.

    Qt asks for it dozens of times per paint, and pyqtgraph's pads it by half a pixel each time, mapping a
    pixel into data coordinates anew (a quarter of a millisecond per call).
    """

    def __init__(self, **opts) -> None:
        self._bounds: QRectF | None = None
        super().__init__(**opts)

    def setOpts(self, **opts) -> None:  # noqa: N802 - pyqtgraph's name
        self._bounds = None
        super().setOpts(**opts)

    def viewTransformChanged(self) -> None:  # noqa: N802 - pyqtgraph's name
        self._bounds = None
        super().viewTransformChanged()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        if self._bounds is None:
            self._bounds = super().boundingRect()
        return QRectF(self._bounds)


class ClippedBars:
    """A BarGraphItem fed only the bars inside the view, and at most one bar per pixel column.

    BarGraphItem has neither clip-to-view nor downsampling; a year of hourly buckets (or a million raw
    points) would otherwise be a million rectangles each paint. When several buckets share a pixel the
    drawn bar spans their lowest and highest values (the envelope), so a spike is never averaged away.
    Hover and click read the full arrays, never the drawn bars.
    """

    def __init__(self, view_box: pg.ViewBox, brush, pen=None) -> None:
        self.view_box = view_box
        self.item = _Bars(x0=_EMPTY, width=_EMPTY, y0=_EMPTY, height=_EMPTY, brush=brush, pen=pen or pg.mkPen(None))
        self._x0 = _EMPTY
        self._x1 = _EMPTY
        self._heights = _EMPTY
        self._drawn = 0
        self._stale = False
        view_box.addItem(self.item)
        # The bars are cut to the view once per paint, not on every range or size change before it (a new
        # customer moves the ranges several times).
        view_box.sigXRangeChanged.connect(self.invalidate)
        view_box.sigResized.connect(self.invalidate)
        view_box.scene().sigPrepareForPaint.connect(self._before_paint)

    @property
    def drawn(self) -> int:
        """How many bars the view's current range hands to Qt (benchmarks and tests read it)."""
        self._before_paint()
        return self._drawn

    def set_brush(self, brush) -> None:
        self.item.setOpts(brush=brush)

    def set_data(self, x0: np.ndarray, x1: np.ndarray, heights: np.ndarray) -> None:
        self._x0 = np.asarray(x0, dtype=np.float64)
        self._x1 = np.asarray(x1, dtype=np.float64)
        self._heights = np.asarray(heights, dtype=np.float64)
        self.invalidate()

    def invalidate(self, *_args) -> None:
        if not self._stale:
            self._stale = True
            self.item.update()

    def _before_paint(self) -> None:
        if self._stale:
            self.refresh()

    def refresh(self, *_args) -> None:
        self._stale = False
        (low, high), _ = self.view_box.viewRange()
        pixels = max(1, int(self.view_box.width() or 1))
        first = int(np.searchsorted(self._x1, low, side="right"))
        stop = int(np.searchsorted(self._x0, high, side="left"))
        count = stop - first
        if count <= 0 or high <= low:
            self._show(_EMPTY, _EMPTY, _EMPTY, _EMPTY)
            return
        heights = self._heights[first:stop]
        if count > pixels:
            group = math.ceil(count / pixels)
            starts = np.arange(0, count, group)
            tops = np.maximum(np.maximum.reduceat(heights, starts), 0.0)
            bottoms = np.minimum(np.minimum.reduceat(heights, starts), 0.0)
            x0 = self._x0[first + starts]
            x1 = self._x1[first + np.minimum(starts + group - 1, count - 1)]
        else:
            tops = np.maximum(heights, 0.0)
            bottoms = np.minimum(heights, 0.0)
            x0 = self._x0[first:stop]
            x1 = self._x1[first:stop]
        widths = x1 - x0
        pixels_per_unit = pixels / (high - low)
        if count <= pixels and len(widths) and float(np.median(widths)) * pixels_per_unit >= GAP_FROM_PIXELS:
            x0 = x0 + widths * GAP_FRACTION
            widths = widths * (1 - 2 * GAP_FRACTION)
        self._show(x0, widths, bottoms, tops - bottoms)

    def _show(self, x0, widths, y0, heights) -> None:
        self._drawn = len(x0)
        self.item.setOpts(x0=x0, width=widths, y0=y0, height=heights)


class OverlayViewBox(pg.ViewBox):
    """A ViewBox laid over a plot's own to carry a second value axis (pyqtgraph's MultiplePlotAxes
    recipe). It draws, but passes every drag, click and wheel on to the plot underneath."""

    def __init__(self) -> None:
        super().__init__(enableMenu=False)
        self.setMouseEnabled(x=False, y=False)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt's name
        ev.ignore()

    def mouseClickEvent(self, ev):  # noqa: N802 - Qt's name
        ev.ignore()

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - Qt's name
        ev.ignore()

    def follow(self, main: pg.ViewBox) -> None:
        """Keep this box exactly over `main`, sharing its x range, and above the plot holding `main`
        (a scene's top-level items stack by z: at pyqtgraph's default -100 the overlay hides under the bars)."""
        main.scene().addItem(self)
        holder = main
        while holder.parentItem() is not None:
            holder = holder.parentItem()
        self.setZValue(holder.zValue() + 1)
        self.setXLink(main)

        def fit(*_args) -> None:
            self.setGeometry(main.sceneBoundingRect())
            self.linkedViewChanged(main, self.XAxis)

        main.sigResized.connect(fit)
        fit()
