"""Billing periods: months on the organization's calendar, starting on an anchor day (default the 1st).

A period is named by the month it starts in ("2026-03"). It runs from local midnight on the anchor day to
local midnight on the next anchor day, `[start, end)`. Anchors past a month's end clamp to its last day
(31 becomes 30, 29 or 28) and return to the anchor in longer months.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from seatmeter.domain.errors import InvalidRequest

__all__ = ["Period", "parse_period_key", "period_containing", "zone"]

_PERIOD_KEY = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"timezone must be an IANA time zone such as America/New_York, got {name!r}") from None


@dataclass(frozen=True, slots=True)
class Period:
    year: int
    month: int
    anchor_day: int
    timezone: str

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start_date(self) -> date:
        return _anchor_date(self.year, self.month, self.anchor_day)

    @property
    def end_date(self) -> date:
        return self.next().start_date

    @property
    def start(self) -> datetime:
        """The first instant of the period, as an aware datetime in the organization's zone."""
        return _midnight(self.start_date, self.timezone)

    @property
    def end(self) -> datetime:
        return _midnight(self.end_date, self.timezone)

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end

    def next(self) -> Period:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return Period(year, month, self.anchor_day, self.timezone)

    def previous(self) -> Period:
        year, month = (self.year - 1, 12) if self.month == 1 else (self.year, self.month - 1)
        return Period(year, month, self.anchor_day, self.timezone)

    def days(self) -> int:
        return (self.end_date - self.start_date).days


# Both are pure functions of their arguments, called for every hold (the period and its end): memoized.
@functools.lru_cache(maxsize=4096)
def _anchor_date(year: int, month: int, anchor_day: int) -> date:
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


@functools.lru_cache(maxsize=4096)
def _midnight(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone(timezone))


def period_containing(at: datetime, timezone: str, anchor_day: int = 1) -> Period:
    if at.tzinfo is None:
        raise InvalidRequest("times must carry a time zone")
    local = at.astimezone(zone(timezone)).date()
    period = Period(local.year, local.month, anchor_day, timezone)
    return period if local >= period.start_date else period.previous()


def parse_period_key(key: str, timezone: str, anchor_day: int = 1) -> Period:
    match = _PERIOD_KEY.match(key)
    if match is None:
        raise InvalidRequest(f"period must be YYYY-MM, got {key!r}")
    return Period(int(match[1]), int(match[2]), anchor_day, timezone)
