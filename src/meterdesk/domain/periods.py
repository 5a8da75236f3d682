"""Billing periods (calendar months in the ledger's time zone) and the UTC timestamps meterdesk reads and writes."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterdesk.domain.errors import InvalidInput, quote_input

#: Usage may be stamped at most this far ahead of the clock (clocks of reporting servers drift a little).
MAX_FUTURE_SKEW = timedelta(minutes=5)
#: The billing time zone when the ledger does not name one.
DEFAULT_TIMEZONE = "UTC"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PERIOD_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
_TIMESTAMP_EXAMPLE = "e.g. 2026-11-03T10:00:00Z, 2026-11-03T11:00:00+01:00 or 2026-11-03"


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One billing period: a calendar month, placed in time by the ledger's billing time zone."""

    year: int
    month: int

    def __post_init__(self) -> None:
        for name, value, low, high in (("year", self.year, 1, 9999), ("month", self.month, 1, 12)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInput("period", f"{name} must be a whole number from {low} to {high}, got {value!r}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse "YYYY-MM" (e.g. "2026-11")."""
        match = _PERIOD_RE.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise InvalidInput("period", f"must be a month written YYYY-MM, e.g. 2026-11; got {quote_input(text)}")
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise InvalidInput("period", f"month must be 01 to 12; got {quote_input(text)}")
        return cls(year, month)

    @classmethod
    def containing(cls, ts: datetime, tz: tzinfo) -> Period:
        """The period whose local month (in `tz`) contains the instant `ts` (naive means UTC)."""
        local = _as_utc(ts).astimezone(tz)
        return cls(local.year, local.month)

    @classmethod
    def of_date(cls, day: date) -> Period:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def start(self, tz: tzinfo) -> datetime:
        """The first instant of the period: local midnight of the 1st in `tz` (an aware datetime in `tz`)."""
        return datetime(self.year, self.month, 1, tzinfo=tz)

    def end(self, tz: tzinfo) -> datetime:
        """The first instant after the period (the next period's start); periods are half-open [start, end)."""
        return self.next().start(tz)

    def contains(self, ts: datetime, tz: tzinfo) -> bool:
        return Period.containing(ts, tz) == self

    def next(self) -> Period:
        return Period(self.year + 1, 1) if self.month == 12 else Period(self.year, self.month + 1)

    def previous(self) -> Period:
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    @property
    def days(self) -> int:
        """Number of days in the month."""
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, self.days)


def period_of(ts: datetime, tz: tzinfo) -> Period:
    """The billing period an instant falls in, for a ledger billing in `tz`."""
    return Period.containing(ts, tz)


def parse_timestamp(text: str, field: str = "occurred_at", timezone: tzinfo = UTC) -> datetime:
    """Parse an ISO 8601 timestamp ("...Z", "...+01:00") or a date into an aware UTC datetime.

    A timestamp without an offset is wall-clock time in `timezone` (the ledger's billing time zone), a date
    alone midnight there (SPEC 2 "Time"). Aware or naive datetime and date objects are accepted as well, so
    the Python API can pass them straight through (a naive one is read in `timezone` too). An instant that
    cannot be placed in UTC (year 1 east of Greenwich, year 9999 west of it) is InvalidInput, naming `field`.
    """
    if isinstance(text, datetime):
        parsed = text
    elif isinstance(text, date):
        parsed = datetime(text.year, text.month, text.day)
    elif not isinstance(text, str):
        raise InvalidInput(field, f"must be an ISO 8601 timestamp ({_TIMESTAMP_EXAMPLE}), not {type(text).__name__}")
    else:
        cleaned = text.strip()
        if not cleaned:
            raise InvalidInput(field, f"is empty; expected an ISO 8601 timestamp ({_TIMESTAMP_EXAMPLE})")
        if cleaned[-1] in "zZ":
            cleaned = cleaned[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(cleaned)
        except ValueError:
            raise InvalidInput(
                field, f"is not an ISO 8601 timestamp: {quote_input(text)} ({_TIMESTAMP_EXAMPLE})"
            ) from None
    if parsed.tzinfo is None or parsed.tzinfo.utcoffset(parsed) is None:
        parsed = parsed.replace(tzinfo=timezone)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidInput(field, f"lies outside the years 1 to 9999 in UTC: {quote_input(text)}") from None


def format_timestamp(dt: datetime) -> str:
    """UTC ISO 8601 with "Z", microseconds only when there are some: "2026-11-03T10:00:00Z"."""
    utc = _as_utc(dt).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def to_micros(dt: datetime) -> int:
    """Microseconds since 1970-01-01T00:00:00Z, in exact integer arithmetic (naive means UTC)."""
    delta = _as_utc(dt) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(n: int) -> datetime:
    """The aware UTC datetime `n` microseconds after the epoch."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"microseconds must be an int, not {type(n).__name__}")
    # timedelta keeps integer microseconds exact (floats would not be).
    return _EPOCH + timedelta(microseconds=n)


def check_not_future(ts: datetime, now: datetime, field: str = "occurred_at") -> datetime:
    """Refuse an instant more than MAX_FUTURE_SKEW after `now`; returns `ts` unchanged otherwise."""
    if _as_utc(ts) > _as_utc(now) + MAX_FUTURE_SKEW:
        minutes = int(MAX_FUTURE_SKEW.total_seconds()) // 60
        raise InvalidInput(
            field,
            f"lies in the future: {format_timestamp(ts)} is more than {minutes} minutes after "
            f"the current time {format_timestamp(now)}",
        )
    return ts


def load_timezone(name: str) -> ZoneInfo:
    """The IANA time zone called `name` (e.g. "Europe/Berlin"), or InvalidInput("timezone", ...)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("timezone", f"must be an IANA time zone name such as Europe/Berlin; got {quote_input(name)}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: malformed keys such as "../x"; OSError: a key naming a directory of the tz database.
        raise InvalidInput(
            "timezone", f"is not a known IANA time zone: {quote_input(name)} (e.g. UTC, Europe/Berlin)"
        ) from None


def _as_utc(dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, not {type(dt).__name__}")
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
