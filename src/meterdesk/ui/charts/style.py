"""The charts' look in one place: a light business palette, pens, and exact text for numbers and dates."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPen

from meterdesk.domain.money import round_money
from meterdesk.domain.periods import from_micros

BACKGROUND = "#ffffff"
TEXT = "#26323d"
MUTED = "#6b7785"
GRID = "#e8ecf0"
AXIS = "#8a96a3"

# Colour-blind-safe, distinct at a glance, none of them the red used for corrections and the credit limit.
UNIT_COLOURS = ("#3b73b9", "#e8871e", "#2a9d8f", "#8e5ea2", "#b5838d", "#6a994e", "#d4a017", "#577590")
ALLOWANCE = "#1f2d3a"
TIER = "#7a8591"
REVERSAL = "#c0392b"
BALANCE = "#2e7d5b"
BALANCE_NEGATIVE = "#c0392b"
HIGHLIGHT = "#26323d"

GRANULARITY_NOUN = {"hour": "hour", "day": "day", "month": "month"}
GRANULARITY_ADJECTIVE = {"hour": "hourly", "day": "daily", "month": "monthly"}


def unit_colour(index: int) -> QColor:
    return QColor(UNIT_COLOURS[index % len(UNIT_COLOURS)])


def with_alpha(colour: QColor | str, alpha: int) -> QColor:
    colour = QColor(colour)
    colour.setAlpha(alpha)
    return colour


def flattened(colour: QColor | str, alpha: int, background: str = BACKGROUND) -> QColor:
    """`colour` at `alpha` over the chart's background, as one opaque colour: the same look as a translucent
    fill on white, but Qt fills opaque rectangles several times faster than blended ones."""
    top, under = QColor(colour), QColor(background)
    share = alpha / 255
    return QColor(*(round(a * share + b * (1 - share)) for a, b in zip(top.getRgb()[:3], under.getRgb()[:3])))


def darker(colour: QColor | str, factor: int = 135) -> QColor:
    return QColor(colour).darker(factor)


def pen(colour: QColor | str, width: float = 1.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    result = QPen(QColor(colour))
    result.setWidthF(width)
    result.setStyle(style)
    result.setCosmetic(True)
    return result


def dashed_pen(colour: QColor | str, dash: float = 4, gap: float = 2) -> QPen:
    """A 1 px dashed line (allowance, tier boundary, credit limit). At 1 px Qt draws dashes on its fast path;
    a wider or fractional dashed pen goes through the stroker, tens of times slower across a whole plot."""
    result = pen(colour, 1.0, Qt.PenStyle.CustomDashLine)
    result.setDashPattern([dash, gap])
    return result


def allowance_pen() -> QPen:
    return dashed_pen(ALLOWANCE, 5, 3)


def tier_pen() -> QPen:
    return dashed_pen(TIER, 2, 2)


def limit_pen() -> QPen:
    return dashed_pen(BALANCE_NEGATIVE, 5, 3)


def tick_font() -> QFont:
    font = QFont()
    font.setPointSizeF(max(8.0, font.pointSizeF() * 0.9))
    return font


# -- exact text ---------------------------------------------------------------------------------------

def quantity_text(value: Decimal) -> str:
    """A quantity as stored, with thousands separators: Decimal('12345.500') -> '12,345.500'."""
    return format(value, ",f")


def money_text(value: Decimal, currency: str) -> str:
    """Money rounded once to the currency's minor unit (ROUND_HALF_UP), with separators: '1,234.50 EUR'."""
    return f"{format(round_money(value, currency), ',f')} {currency}"


def exact_money_text(value: Decimal, currency: str) -> str:
    """A prepaid balance at the ledger's full precision (1e-6)."""
    return f"{format(value.quantize(Decimal('0.000001')), ',f')} {currency}"


def local_time(instant_us: int, timezone: ZoneInfo) -> datetime:
    return from_micros(instant_us).astimezone(timezone)


def bucket_text(start_us: int, end_us: int, granularity: str, timezone: ZoneInfo) -> str:
    """A bucket as a person names it, in the billing time zone: 'Tue 3 Nov 2026', 'November 2026', ..."""
    start = local_time(start_us, timezone)
    if granularity == "month":
        return f"{start:%B %Y}"
    if granularity == "day":
        return f"{start:%a} {start.day} {start:%b %Y}"
    end = local_time(end_us, timezone)
    return f"{start:%a} {start.day} {start:%b %Y}, {start:%H:%M}–{end:%H:%M} {start:%Z}"


def range_text(start_us: int, end_us: int, timezone: ZoneInfo) -> str:
    """[start, end) as inclusive local dates: '1 Nov – 30 Nov 2026'."""
    first = local_time(start_us, timezone)
    last = local_time(end_us - 1, timezone)
    if first.year == last.year:
        return f"{first.day} {first:%b} – {last.day} {last:%b %Y}"
    return f"{first.day} {first:%b %Y} – {last.day} {last:%b %Y}"
