"""Graphics items the charts need beyond pyqtgraph's: bars clipped and downsampled to the view, a labelled
horizontal line that is cheap to move, and a second value axis that never takes the mouse from the plot
under it."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPen

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


class ValueLine(pg.GraphicsObject):
    """A horizontal line across the view at a value, with an optional label sitting on it at the right.

    Stands in for pyqtgraph's InfiniteLine and its InfLineLabel, which re-place the line and re-lay out the
    label's text on every change of the view (a few milliseconds per chart update for a handful of lines).
    This one is drawn in device pixels from its value, so a moved view costs nothing until the paint.
    Its value is a position on the axis, a float like every drawn coordinate (ui/charts/model.py); what a
    reader sees is its label, formatted from the exact Decimal by the caller.
    """

    _PAD_X = 4.0
    _PAD_Y = 1.0
    _GAP = 3.0  # pixels between the line and its label

    def __init__(self, pen: QPen, value: float = 0.0, label_colour: QColor | str | None = None) -> None:
        super().__init__()
        self._pen = QPen(pen)
        self._value = float(value)
        self._text = ""
        self._text_pen = QPen(QColor(label_colour if label_colour is not None else pen.color()))
        self._font = QFont()
        self._metrics = QFontMetricsF(self._font)
        self._fill = QBrush(QColor(255, 255, 255, 200))
        self._bounds: QRectF | None = None

    def value(self) -> float:
        return self._value

    def setValue(self, value: float) -> None:  # noqa: N802 - InfiniteLine's name
        value = float(value)
        if value != self._value:
            self.prepareGeometryChange()
            self._bounds = None
            self._value = value
            self.update()

    def label_text(self) -> str:
        return self._text

    def set_label(self, text: str) -> None:
        if text != self._text:
            self.prepareGeometryChange()
            self._bounds = None
            self._text = text
            self.update()

    def viewTransformChanged(self) -> None:  # noqa: N802 - pyqtgraph's name
        self.prepareGeometryChange()
        self._bounds = None
        super().viewTransformChanged()

    def _label_size(self) -> tuple[float, float]:
        if not self._text:
            return 0.0, 0.0
        return self._metrics.horizontalAdvance(self._text) + 2 * self._PAD_X, self._metrics.height() + 2 * self._PAD_Y

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        if self._bounds is None:
            view = self.viewRect()
            pixel = self.pixelHeight() if view is not None else 0.0
            if view is None or not pixel:
                self._bounds = QRectF()
            else:
                _, label_height = self._label_size()
                below, above = 2 * pixel, (label_height + self._GAP + 2) * pixel
                self._bounds = QRectF(view.left(), self._value - below, view.width(), below + above).normalized()
        return QRectF(self._bounds)

    def paint(self, painter, option, widget=None) -> None:
        view = self.viewRect()
        if view is None:
            return
        to_device = painter.transform()
        left = to_device.map(QPointF(view.left(), self._value))
        right = to_device.map(QPointF(view.right(), self._value))
        y = round(left.y()) + 0.5  # on a pixel row: a 1 px line stays crisp
        painter.save()
        painter.resetTransform()
        painter.setPen(self._pen)
        painter.drawLine(QLineF(left.x(), y, right.x(), y))
        if self._text:
            width, height = self._label_size()
            # As InfiniteLine's label at position 0.99 with anchor (1, 1): right-aligned, sitting on the line.
            x = left.x() + (right.x() - left.x()) * 0.99 - width
            box = QRectF(x, y - height - self._GAP, width, height)
            painter.fillRect(box, self._fill)
            painter.setFont(self._font)
            painter.setPen(self._text_pen)
            painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), self._text)
        painter.restore()


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
