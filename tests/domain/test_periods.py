"""Billing periods in a billing time zone, and the timestamps meterdesk parses and prints."""

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from meterdesk.domain.errors import InvalidInput
from meterdesk.domain.periods import (
    MAX_FUTURE_SKEW,
    Period,
    check_not_future,
    format_timestamp,
    from_micros,
    load_timezone,
    parse_timestamp,
    period_of,
    to_micros,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


# --- periods ----------------------------------------------------------------------------------------------


def test_parse_and_print():
    period = Period.parse("2026-11")
    assert period == Period(2026, 11)
    assert str(period) == "2026-11"
    assert str(Period(987, 1)) == "0987-01"
    assert Period.parse(" 2026-02 ") == Period(2026, 2)


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-11-01", "", "nov", None])
def test_bad_periods(text):
    with pytest.raises(InvalidInput) as caught:
        Period.parse(text)
    assert caught.value.field == "period"


def test_period_refuses_impossible_months():
    with pytest.raises(InvalidInput, match="period: month must be"):
        Period(2026, 13)


def test_next_previous_and_order():
    assert Period(2026, 12).next() == Period(2027, 1)
    assert Period(2027, 1).previous() == Period(2026, 12)
    assert Period(2026, 5).next() == Period(2026, 6)
    assert Period(2026, 11) < Period(2026, 12) < Period(2027, 1)
    assert sorted([Period(2027, 1), Period(2026, 2)]) == [Period(2026, 2), Period(2027, 1)]


def test_days_and_first_and_last_day():
    assert Period(2026, 2).days == 28
    assert Period(2028, 2).days == 29
    assert Period(2026, 11).days == 30
    assert Period(2026, 12).days == 31
    assert Period(2026, 11).first_day == date(2026, 11, 1)
    assert Period(2026, 11).last_day == date(2026, 11, 30)


def test_utc_bounds():
    period = Period(2026, 11)
    assert period.start(UTC) == datetime(2026, 11, 1, tzinfo=UTC)
    assert period.end(UTC) == datetime(2026, 12, 1, tzinfo=UTC)


def test_berlin_month_boundary():
    # Midnight in Berlin on 1 December is 23:00 UTC on 30 November (CET, UTC+1).
    november = Period(2026, 11)
    assert november.start(BERLIN).astimezone(UTC) == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert november.end(BERLIN).astimezone(UTC) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    late_evening = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert period_of(late_evening, BERLIN) == Period(2026, 12)
    assert period_of(late_evening, UTC) == Period(2026, 11)
    assert Period.containing(datetime(2026, 11, 30, 22, 59, 59, tzinfo=UTC), BERLIN) == november
    # October starts in summer time (CEST, UTC+2).
    assert Period(2026, 10).start(BERLIN).astimezone(UTC) == datetime(2026, 9, 30, 22, 0, tzinfo=UTC)


def test_new_york_month_with_a_dst_change():
    # DST ends on Sunday 1 November 2026: the month starts at EDT (UTC-4) and ends at EST (UTC-5),
    # so November 2026 in New York lasts 30 days and one hour.
    november = Period(2026, 11)
    start, end = november.start(NEW_YORK), november.end(NEW_YORK)
    assert start.astimezone(UTC) == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(days=30, hours=1)
    assert period_of(datetime(2026, 12, 1, 4, 30, tzinfo=UTC), NEW_YORK) == november
    assert period_of(datetime(2026, 12, 1, 5, 0, tzinfo=UTC), NEW_YORK) == Period(2026, 12)
    # March 2026: DST starts on the 8th, the month is an hour short.
    march = Period(2026, 3)
    assert march.end(NEW_YORK).astimezone(UTC) - march.start(NEW_YORK).astimezone(UTC) == timedelta(days=31, hours=-1)


def test_contains_and_naive_means_utc():
    assert Period(2026, 11).contains(datetime(2026, 11, 30, 23, 59), UTC)
    assert not Period(2026, 11).contains(datetime(2026, 11, 30, 23, 59), BERLIN)


# --- timestamps -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-11-03T10:00:00Z", datetime(2026, 11, 3, 10, tzinfo=UTC)),
     ("2026-11-03T10:00:00z", datetime(2026, 11, 3, 10, tzinfo=UTC)),
     ("2026-11-03T11:00:00+01:00", datetime(2026, 11, 3, 10, tzinfo=UTC)),
     ("2026-11-03T05:30:00-04:30", datetime(2026, 11, 3, 10, tzinfo=UTC)),
     ("2026-11-03T10:00:00.250Z", datetime(2026, 11, 3, 10, 0, 0, 250000, tzinfo=UTC)),
     ("2026-11-03T10:00:00", datetime(2026, 11, 3, 10, tzinfo=UTC)),
     ("2026-11-03 10:00", datetime(2026, 11, 3, 10, tzinfo=UTC)),
     ("2026-11-03", datetime(2026, 11, 3, tzinfo=UTC)),
     ("  2026-11-03T10:00:00Z ", datetime(2026, 11, 3, 10, tzinfo=UTC))],
)  # fmt: skip
def test_parse_timestamp(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_parse_timestamp_accepts_datetime_objects():
    berlin_noon = datetime(2026, 11, 3, 12, tzinfo=BERLIN)
    assert parse_timestamp(berlin_noon) == datetime(2026, 11, 3, 11, tzinfo=UTC)
    assert parse_timestamp(datetime(2026, 11, 3, 12)).tzinfo is UTC
    assert parse_timestamp(date(2026, 11, 3)) == datetime(2026, 11, 3, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "", "2026-13-01", "2026-11-31", "2026-11-03T25:00:00Z", "2026", 1700000000, None])
def test_bad_timestamps_name_the_field(text):
    with pytest.raises(InvalidInput) as caught:
        parse_timestamp(text, field="at")
    assert caught.value.field == "at"
    assert "ISO 8601" in caught.value.problem


def test_parse_timestamp_default_field():
    with pytest.raises(InvalidInput, match="^occurred_at: is not an ISO 8601 timestamp: 'garbage'"):
        parse_timestamp("garbage")


def test_format_timestamp():
    assert format_timestamp(datetime(2026, 11, 3, 10, tzinfo=UTC)) == "2026-11-03T10:00:00Z"
    assert format_timestamp(datetime(2026, 11, 3, 11, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-03T10:00:00Z"
    assert format_timestamp(datetime(2026, 11, 3, 10, 0, 0, 1500, tzinfo=UTC)) == "2026-11-03T10:00:00.001500Z"
    assert format_timestamp(datetime(2026, 11, 3, 10)) == "2026-11-03T10:00:00Z"
    assert format_timestamp(parse_timestamp("2026-11-03T10:00:00Z")) == "2026-11-03T10:00:00Z"


def test_micros_are_exact_integers():
    assert to_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_micros(datetime(2026, 11, 3, 10, 0, 0, 123456, tzinfo=UTC)) == 1_793_700_000_123_456
    assert to_micros(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1
    instant = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)
    assert from_micros(to_micros(instant)) == instant
    assert from_micros(1_793_700_000_123_456) == datetime(2026, 11, 3, 10, 0, 0, 123456, tzinfo=UTC)
    assert from_micros(0).tzinfo is UTC
    with pytest.raises(TypeError):
        from_micros(1.5)


def test_future_timestamps_are_refused_beyond_five_minutes():
    now = datetime(2026, 11, 3, 10, tzinfo=UTC)
    assert MAX_FUTURE_SKEW == timedelta(minutes=5)
    assert check_not_future(now + timedelta(minutes=5), now) == now + timedelta(minutes=5)
    check_not_future(now - timedelta(days=400), now)
    with pytest.raises(InvalidInput) as caught:
        check_not_future(now + timedelta(minutes=5, microseconds=1), now)
    assert caught.value.field == "occurred_at"
    assert "lies in the future" in caught.value.problem
    with pytest.raises(InvalidInput, match="^at: lies in the future"):
        check_not_future(now + timedelta(hours=1), now, field="at")


def test_load_timezone():
    assert load_timezone("Europe/Berlin") == BERLIN
    assert load_timezone("UTC").key == "UTC"
    for name in ["Mars/Olympus", "", "../etc/passwd", "Europe", None]:
        with pytest.raises(InvalidInput) as caught:
            load_timezone(name)
        assert caught.value.field == "timezone"
