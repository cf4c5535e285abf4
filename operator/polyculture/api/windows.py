"""Lending windows: when an owner lends its nodes to the pool, in its own time zone.

A window opens on each listed day at ``from`` (local wall-clock time in ``timeZone``) and
closes at ``to``. When ``to`` is earlier than ``from`` the window runs past midnight into the
next day (``from: "22:00"``, ``to: "06:00"`` on Friday is Friday 22:00 to Saturday 06:00);
``to: "24:00"`` closes at the end of the day. Wall-clock times follow daylight saving time:
a 09:00-17:00 window in ``Europe/Berlin`` opens at 09:00 local time in winter and in summer.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from polyculture.api.units import TimeZone, cel_format

#: ``HH:MM`` from 00:00 to 23:59.
CLOCK_PATTERN: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
#: Like ``CLOCK_PATTERN`` but also ``24:00``, the end of the day (only for ``to``).
CLOCK_END_PATTERN: Final = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"

ClockTime = Annotated[
    str,
    Field(min_length=5, max_length=5, pattern=CLOCK_PATTERN),
    cel_format(
        CLOCK_PATTERN, "must be a time HH:MM from 00:00 to 23:59", min_length=5, max_length=5
    ),
]
ClockEnd = Annotated[
    str,
    Field(min_length=5, max_length=5, pattern=CLOCK_END_PATTERN),
    cel_format(
        CLOCK_END_PATTERN,
        "must be a time HH:MM from 00:00 to 23:59, or 24:00 for the end of the day",
        min_length=5,
        max_length=5,
    ),
]


class Weekday(StrEnum):
    """Days of the week, as in ``date.weekday()`` order."""

    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"


_WEEKDAYS: Final = list(Weekday)


class LendingWindow(BaseModel):
    """A weekly period in which the owner lends its nodes: listed days, ``from``-``to`` local time.

    ``to`` earlier than ``from`` runs past midnight; ``to: "24:00"`` closes at the end of the day.
    """

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.from != self.to",
                    "message": 'from and to must differ (use from: "00:00", to: "24:00" '
                    "for a whole day)",
                    "fieldPath": ".to",
                    "reason": "FieldValueInvalid",
                }
            ]
        },
    )

    days: list[Weekday] = Field(
        default_factory=lambda: list(_WEEKDAYS),
        min_length=1,
        max_length=7,
        description="Days on which the window opens (Mon..Sun); every day when omitted.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "default": [d.value for d in _WEEKDAYS],
        },
    )
    from_: ClockTime = Field(alias="from", description="Opening time, HH:MM local time.")
    to: ClockEnd = Field(description="Closing time, HH:MM local time (24:00 = end of day).")
    time_zone: TimeZone = Field(
        default="UTC",
        alias="timeZone",
        description="IANA time zone of from/to, e.g. Europe/Berlin (daylight saving honoured).",
    )


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _end(text: str) -> time | None:
    """``"HH:MM"`` as a time; ``"24:00"`` as None (the end of the day)."""
    return None if text == "24:00" else _clock(text)


def _before(local: time, end: time | None) -> bool:
    return end is None or local < end


def _is_open(window: LendingWindow, now_utc: datetime) -> bool:
    local = now_utc.astimezone(zoneinfo.ZoneInfo(window.time_zone))
    clock = local.time().replace(tzinfo=None)
    start, end = _clock(window.from_), _end(window.to)
    today = _WEEKDAYS[local.weekday()]
    days = set(window.days)
    if end is None or start < end:  # same-day window
        return today in days and start <= clock and _before(clock, end)
    # past midnight: the evening part belongs to today, the morning part to yesterday's window
    yesterday = _WEEKDAYS[(local - timedelta(days=1)).weekday()]
    return (today in days and clock >= start) or (yesterday in days and clock < end)


def window_open(windows: Iterable[LendingWindow], now_utc: datetime) -> bool:
    """Whether a member with these lending windows lends its nodes at ``now_utc``.

    No windows at all means always open. ``now_utc`` must be timezone-aware (any zone works;
    it is converted into each window's zone). A window is half-open: open at ``from``, closed
    at ``to``. In a DST gap the local clock jumps, so a window may open up to an hour late or
    early in wall-clock terms but never stays open longer than its local times say.
    """
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    listed = list(windows)
    return not listed or any(_is_open(window, now_utc) for window in listed)
