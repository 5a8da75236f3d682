"""Billing periods and days of a ledger's time zone, on integer microsecond timestamps."""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.periods import Period, from_micros, parse_timestamp, to_micros


class Timeline:
    """Maps instants to periods and local days; month and day boundaries are computed once per period."""

    def __init__(self, timezone: ZoneInfo) -> None:
        self.timezone = timezone
        self._last: tuple[int, int, Period] | None = None

    def period_of(self, instant_us: int) -> Period:
        last = self._last
        if last and last[0] <= instant_us < last[1]:
            return last[2]
        local = from_micros(instant_us).astimezone(self.timezone)
        period = Period(local.year, local.month)
        start, end = self.bounds(period)
        self._last = (start, end, period)
        return period

    def name(self, period: Period) -> str:
        """'YYYY-MM', remembered: formatting it is measurable at a million entries."""
        return _name(period)

    def bounds(self, period: Period) -> tuple[int, int]:
        """(start, end) of a period in microseconds, end exclusive."""
        return _bounds(period, self.timezone)

    def day_of(self, instant_us: int, period: Period | None = None) -> str:
        """The local date (ISO) of an instant; `period` must contain it when given."""
        period = period or self.period_of(instant_us)
        starts, names = self.days(period)
        return names[bisect_right(starts, instant_us) - 1]

    def days(self, period: Period) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """The first instant (microseconds) and the ISO date of each local day of a period."""
        return _day_starts(period, self.timezone), _day_names(period)

    def periods_between(self, start_us: int, end_us: int) -> list[Period]:
        """The periods that overlap [start, end)."""
        periods = []
        cursor = self.period_of(start_us)
        while self.bounds(cursor)[0] < end_us:
            periods.append(cursor)
            cursor = cursor.next()
        return periods

    def clamp(self, instant_us: int, period: Period) -> int:
        start, end = self.bounds(period)
        return min(max(instant_us, start), end - 1)


def parse_instant(value, field: str, timezone: ZoneInfo) -> int:
    """A range boundary as microseconds: an int is taken as it is, a datetime as its instant, a date (or
    'YYYY-MM-DD') as local midnight in the billing time zone, other text as an ISO 8601 timestamp."""
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a date or a timestamp")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return to_micros(value)
    if isinstance(value, date):
        return to_micros(datetime.combine(value, time.min, tzinfo=timezone))
    text = str(value).strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(field, f"{text!r} is not a date or timestamp") from None
        return parse_instant(day, field, timezone)
    return to_micros(parse_timestamp(text, field))


@lru_cache(maxsize=4096)
def _name(period: Period) -> str:
    return str(period)


@lru_cache(maxsize=4096)
def _bounds(period: Period, timezone: ZoneInfo) -> tuple[int, int]:
    return to_micros(period.start(timezone)), to_micros(period.end(timezone))


@lru_cache(maxsize=4096)
def _day_names(period: Period) -> tuple[str, ...]:
    first = period.first_day
    return tuple((first + timedelta(days=n)).isoformat() for n in range(period.days))


@lru_cache(maxsize=4096)
def _day_starts(period: Period, timezone: ZoneInfo) -> tuple[int, ...]:
    first = period.first_day
    return tuple(
        to_micros(datetime.combine(first + timedelta(days=n), datetime.min.time(), tzinfo=timezone))
        for n in range(period.days)
    )
