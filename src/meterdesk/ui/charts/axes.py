"""Axes for the usage charts: calendar ticks in the ledger's billing time zone, and readable quantities."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics

from meterdesk.ui.charts import style

HOUR = 3600
DAY = 24 * HOUR

# (unit, step, approximate seconds between ticks), coarsest first.
_STEPS = (
    ("year", 1, 365 * DAY),
    ("month", 3, 91 * DAY),
    ("month", 1, 30 * DAY),
    ("day", 7, 7 * DAY),
    ("day", 1, DAY),
    ("hour", 12, 12 * HOUR),
    ("hour", 6, 6 * HOUR),
    ("hour", 3, 3 * HOUR),
    ("hour", 1, HOUR),
    ("minute", 30, 1800),
    ("minute", 15, 900),
    ("minute", 5, 300),
    ("minute", 1, 60),
)
_EXAMPLE_LABEL = {"year": "2026", "month": "Sep 2026", "day": "30 Sep", "hour": "30 Sep", "minute": "00:00"}
_LABEL_PADDING = 18
_MINOR_TICK_PIXELS = 6
_MAX_TICKS = 2000


class BillingTimeAxis(pg.DateAxisItem):
    """A DateAxisItem (values are UTC epoch seconds) whose ticks fall on local midnights, month starts and
    hours of the billing time zone, and whose labels are written in it, across daylight saving changes.

    pyqtgraph's own DateAxisItem knows only a fixed utcOffset or the machine's zone; a billing desk in
    Lisbon looking at a ledger billed in Europe/Berlin must still see Berlin's days.
    """

    def __init__(self, timezone: ZoneInfo | None = None, orientation: str = "bottom", **kwargs) -> None:
        super().__init__(orientation=orientation, utcOffset=0, **kwargs)
        self.timezone = timezone or ZoneInfo("UTC")
        self._formats: dict[float, tuple[str, int]] = {}

    def set_timezone(self, timezone: ZoneInfo) -> None:
        if timezone != self.timezone:
            self.timezone = timezone
            self.picture = None
            self.update()

    def _label_width(self, unit: str) -> int:
        metrics = getattr(self, "fontMetrics", None) or QFontMetrics(self.style.get("tickFont") or style.tick_font())
        return metrics.boundingRect(_EXAMPLE_LABEL[unit]).width() + _LABEL_PADDING

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph's names
        self._formats = {}
        if not (math.isfinite(minVal) and math.isfinite(maxVal)) or maxVal <= minVal or size <= 0:
            return []
        try:
            datetime.fromtimestamp(minVal, self.timezone)
            datetime.fromtimestamp(maxVal, self.timezone)
        except (OverflowError, OSError, ValueError):
            return []
        density = (maxVal - minVal) / size  # seconds per pixel
        major = next(
            (i for i in range(len(_STEPS) - 1, -1, -1) if _STEPS[i][2] / density >= self._label_width(_STEPS[i][0])),
            None,
        )
        if major is None:
            major = 0
        levels = []
        unit, step, spacing = _STEPS[major]
        ticks = self._ticks(minVal, maxVal, unit, step)
        levels.append((spacing, ticks))
        self._formats[spacing] = (unit, step)
        minor = next(
            (i for i in range(len(_STEPS) - 1, major, -1) if _STEPS[i][2] / density >= _MINOR_TICK_PIXELS), None
        )
        if minor is not None:
            m_unit, m_step, m_spacing = _STEPS[minor]
            seen = set(ticks)
            levels.append((m_spacing, [t for t in self._ticks(minVal, maxVal, m_unit, m_step) if t not in seen]))
            self._formats[m_spacing] = ("", 0)
        return levels

    def _ticks(self, low: float, high: float, unit: str, step: int) -> list[float]:
        tz = self.timezone
        ticks: list[float] = []
        if unit in ("hour", "minute"):
            seconds = step * (HOUR if unit == "hour" else 60)
            offset = datetime.fromtimestamp(low, tz).utcoffset().total_seconds()
            value = math.ceil((low + offset) / seconds) * seconds - offset
            while value <= high and len(ticks) < _MAX_TICKS:
                ticks.append(float(value))
                value += seconds
            return ticks
        local = datetime.fromtimestamp(low, tz).replace(tzinfo=None)
        if unit == "year":
            wall = datetime(local.year, 1, 1)
        elif unit == "month":
            wall = datetime(local.year, (local.month - 1) // step * step + 1, 1)
        elif step == 7:
            wall = datetime(local.year, local.month, local.day) - timedelta(days=local.weekday())
        else:
            wall = datetime(local.year, local.month, local.day)
        while len(ticks) < _MAX_TICKS:
            value = wall.replace(tzinfo=tz).timestamp()
            if value > high:
                break
            if value >= low:
                ticks.append(value)
            wall = _advance(wall, unit, step)
        return ticks

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        unit, _ = self._formats.get(spacing, ("", 0))
        if not unit:
            return [""] * len(values)
        texts = []
        for value in values:
            local = datetime.fromtimestamp(value, self.timezone)
            if unit == "year":
                texts.append(f"{local:%Y}")
            elif unit == "month":
                texts.append(f"{local:%b %Y}")
            elif unit == "day" or (local.hour == 0 and local.minute == 0):
                texts.append(f"{local.day} {local:%b}")
            else:
                texts.append(f"{local:%H:%M}")
        return texts


def _advance(wall: datetime, unit: str, step: int) -> datetime:
    if unit == "year":
        return wall.replace(year=wall.year + step)
    if unit == "month":
        months = wall.month - 1 + step
        return wall.replace(year=wall.year + months // 12, month=months % 12 + 1)
    return wall + timedelta(days=step)


class QuantityAxis(pg.AxisItem):
    """Plain numbers with thousands separators and k/M/B for large ones, never pyqtgraph's '(x1e+06)'."""

    def __init__(self, orientation: str, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph's names
        """pyqtgraph's tick values, in plain Python: its version builds numpy arrays and an all-pairs
        `isclose` for a dozen ticks, which costs more than the ticks (every axis, every new customer)."""
        if self.logMode or self.scale != 1:
            return super().tickValues(minVal, maxVal, size)
        low, high = sorted((minVal, maxVal))
        levels, seen = [], []
        for spacing, offset in self.tickSpacing(low, high, size):
            start = math.ceil((low - offset) / spacing) * spacing + offset
            tolerance = spacing * 0.01  # a tick within 1% of a coarser level's is that tick
            values = [index * spacing + start for index in range(int((high - start) / spacing) + 1)]
            values = [v for v in values if not any(abs(v - other) <= tolerance for other in seen)]
            seen += values
            levels.append((spacing, values))
        return levels

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return compact_numbers(values, spacing)


def compact_numbers(values, spacing: float) -> list[str]:
    if not values:
        return []
    largest = max(abs(v) for v in values)
    divisor, suffix = 1.0, ""
    # From 10,000 on, '12k' reads faster than '12,000'; below it the digits are short enough.
    for threshold, scale, name in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if largest >= threshold:
            divisor, suffix = scale, name
            break
    scaled = [value / divisor for value in values]
    tolerance = (spacing / divisor if spacing > 0 else 1.0) * 1e-6
    places = next(
        (p for p in range(7) if all(abs(v - round(v, p)) <= tolerance for v in scaled)),
        6,
    )
    texts = []
    for value in scaled:
        if abs(value) <= tolerance:
            texts.append("0")
        else:
            texts.append(f"{value:,.{places}f}{suffix}")
    return texts
