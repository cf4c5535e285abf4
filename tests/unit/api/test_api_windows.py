"""``window_open``: weekly lending windows in the owner's time zone, DST included.

Covers: no windows = always open; half-open [from, to); windows past midnight belong to the
day they open; ``24:00``; daylight-saving transitions in Europe/Berlin (both directions) keep
wall-clock times; several windows are OR-ed; naive datetimes are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polyculture.api import LendingWindow, window_open


def win(days: list[str], start: str, end: str, tz: str = "Europe/Berlin") -> LendingWindow:
    return LendingWindow.model_validate({"days": days, "from": start, "to": end, "timeZone": tz})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


WEEKDAY_NIGHTS = win(["Mon", "Tue", "Wed", "Thu", "Fri"], "18:00", "08:00")
WORK_HOURS = win(["Mon", "Tue", "Wed", "Thu", "Fri"], "09:00", "17:00")


def test_no_windows_means_always_open() -> None:
    assert window_open([], utc("2026-01-05T03:00:00"))


@pytest.mark.parametrize(
    ("when_utc", "expected", "why"),
    [
        # 2026-01-05 is a Monday; Berlin is UTC+1 in January
        ("2026-01-05T07:59:59", False, "08:59:59 local, before opening"),
        ("2026-01-05T08:00:00", True, "09:00 local: opens at from"),
        ("2026-01-05T15:59:59", True, "16:59:59 local"),
        ("2026-01-05T16:00:00", False, "17:00 local: closed at to"),
        ("2026-01-10T10:00:00", False, "Saturday"),
        # 2026-07-06 is a Monday; Berlin is UTC+2 in July: same wall-clock window
        ("2026-07-06T07:00:00", True, "09:00 summer time"),
        ("2026-07-06T06:59:00", False, "08:59 summer time"),
    ],
)
def test_same_day_window(when_utc: str, expected: bool, why: str) -> None:
    assert window_open([WORK_HOURS], utc(when_utc)) is expected, why


@pytest.mark.parametrize(
    ("when_utc", "expected", "why"),
    [
        ("2026-01-05T17:00:00", True, "Monday 18:00 local: opens"),
        ("2026-01-05T23:30:00", True, "Tuesday 00:30 local: Monday's window runs on"),
        ("2026-01-06T06:59:00", True, "Tuesday 07:59 local"),
        ("2026-01-06T07:00:00", False, "Tuesday 08:00 local: closed"),
        ("2026-01-09T22:00:00", True, "Friday 23:00 local"),
        ("2026-01-10T06:00:00", True, "Saturday 07:00: Friday's window runs on"),
        ("2026-01-10T18:00:00", False, "Saturday 19:00: no window opens on Saturday"),
        ("2026-01-05T03:00:00", False, "Monday 04:00: Sunday has no window"),
    ],
)
def test_window_past_midnight_belongs_to_the_day_it_opens(
    when_utc: str, expected: bool, why: str
) -> None:
    assert window_open([WEEKDAY_NIGHTS], utc(when_utc)) is expected, why


def test_24_00_closes_at_the_end_of_the_day() -> None:
    saturday = win(["Sat"], "00:00", "24:00")
    assert window_open([saturday], utc("2026-01-10T22:59:59"))  # Sat 23:59:59 local
    assert not window_open([saturday], utc("2026-01-10T23:00:00"))  # Sun 00:00 local
    assert window_open([saturday], utc("2026-01-09T23:00:00"))  # Sat 00:00 local


def test_spring_forward_keeps_wall_clock_times() -> None:
    # Berlin moves 02:00 -> 03:00 on Sunday 2026-03-29; a Sunday 01:00-04:00 window
    sunday = win(["Sun"], "01:00", "04:00")
    assert window_open([sunday], utc("2026-03-29T00:30:00"))  # 01:30 CET
    assert window_open([sunday], utc("2026-03-29T01:30:00"))  # 03:30 CEST
    assert not window_open([sunday], utc("2026-03-29T02:00:00"))  # 04:00 CEST
    # open for 2 real hours that night, 3 on a normal Sunday
    hours = sum(
        window_open([sunday], utc("2026-03-28T23:00:00") + timedelta(minutes=m))
        for m in range(0, 24 * 60, 30)
    )
    assert hours / 2 == 2


def test_fall_back_keeps_wall_clock_times() -> None:
    # Berlin moves 03:00 -> 02:00 on Sunday 2026-10-25; 02:xx happens twice
    sunday = win(["Sun"], "01:00", "04:00")
    opened = sum(
        window_open([sunday], utc("2026-10-24T22:00:00") + timedelta(minutes=m))
        for m in range(0, 24 * 60, 30)
    )
    assert opened / 2 == 4  # 4 real hours
    assert not window_open([sunday], utc("2026-10-25T03:00:00"))  # 04:00 CET


def test_any_open_window_opens() -> None:
    weekend = win(["Sat", "Sun"], "00:00", "24:00")
    assert window_open([WORK_HOURS, weekend], utc("2026-01-10T12:00:00"))
    assert not window_open([WORK_HOURS, weekend], utc("2026-01-05T20:00:00"))


def test_each_window_uses_its_own_zone() -> None:
    tokyo = win(["Mon"], "09:00", "10:00", tz="Asia/Tokyo")  # UTC+9, no DST
    assert window_open([tokyo], utc("2026-07-06T00:30:00"))
    assert not window_open([tokyo], utc("2026-07-06T08:30:00"))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_open([WORK_HOURS], datetime(2026, 1, 5, 12))
