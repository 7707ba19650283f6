"""Billing periods: months on the organization's own calendar, anchored on a day that clamps in short months."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.periods import Period, parse_period_key, period_containing

NEW_YORK = "America/New_York"
KOLKATA = "Asia/Kolkata"


def test_a_new_york_event_at_23_30_local_on_31_march_lands_in_march_though_it_is_april_in_utc() -> None:
    at = datetime(2026, 3, 31, 23, 30, tzinfo=ZoneInfo(NEW_YORK))
    assert at.astimezone(UTC).date() == date(2026, 4, 1)
    assert period_containing(at, NEW_YORK).key == "2026-03"
    assert period_containing(at.astimezone(UTC), NEW_YORK).key == "2026-03"
    assert period_containing(at.astimezone(UTC), "UTC").key == "2026-04"


def test_the_new_york_period_starts_at_local_midnight() -> None:
    march = parse_period_key("2026-03", NEW_YORK)
    assert march.start.astimezone(UTC) == datetime(2026, 3, 1, 5, 0, tzinfo=UTC)  # EST, UTC-5
    assert march.end.astimezone(UTC) == datetime(2026, 4, 1, 4, 0, tzinfo=UTC)  # EDT, UTC-4
    assert march.contains(datetime(2026, 4, 1, 3, 59, 59, tzinfo=UTC))
    assert not march.contains(datetime(2026, 4, 1, 4, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("year", "month", "start", "end"),
    [
        (2026, 1, date(2026, 1, 31), date(2026, 2, 28)),
        (2026, 2, date(2026, 2, 28), date(2026, 3, 31)),
        (2026, 3, date(2026, 3, 31), date(2026, 4, 30)),
        (2026, 4, date(2026, 4, 30), date(2026, 5, 31)),
        (2024, 1, date(2024, 1, 31), date(2024, 2, 29)),
        (2024, 2, date(2024, 2, 29), date(2024, 3, 31)),
    ],
)
def test_an_anchor_on_the_31st_clamps_to_the_end_of_short_months_and_returns_to_the_31st(
    year: int, month: int, start: date, end: date
) -> None:
    period = Period(year, month, 31, "UTC")
    assert (period.start_date, period.end_date) == (start, end)
    assert period.days() == (end - start).days


def test_with_anchor_31_the_30th_of_march_still_belongs_to_the_february_period() -> None:
    assert period_containing(datetime(2026, 3, 30, 23, 59, tzinfo=UTC), "UTC", 31).key == "2026-02"
    assert period_containing(datetime(2026, 3, 31, 0, 0, tzinfo=UTC), "UTC", 31).key == "2026-03"
    assert period_containing(datetime(2026, 2, 28, 0, 0, tzinfo=UTC), "UTC", 31).key == "2026-02"
    assert period_containing(datetime(2026, 2, 27, 23, 59, tzinfo=UTC), "UTC", 31).key == "2026-01"


def test_kolkata_crosses_into_the_next_month_at_18_30_utc() -> None:
    assert period_containing(datetime(2026, 3, 31, 18, 29, 59, tzinfo=UTC), KOLKATA).key == "2026-03"
    assert period_containing(datetime(2026, 3, 31, 18, 30, tzinfo=UTC), KOLKATA).key == "2026-04"
    april = parse_period_key("2026-04", KOLKATA)
    assert april.start.astimezone(UTC) == datetime(2026, 3, 31, 18, 30, tzinfo=UTC)
    assert april.end.astimezone(UTC) == datetime(2026, 4, 30, 18, 30, tzinfo=UTC)


def test_december_rolls_over_to_january_of_the_next_year() -> None:
    december = parse_period_key("2026-12", "UTC")
    assert december.next().key == "2027-01"
    assert december.next().previous() == december


def test_naive_times_bad_keys_and_unknown_zones_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        period_containing(datetime(2026, 3, 31, 23, 30), "UTC")
    for key in ("2026-13", "2026-3", "26-03", "2026-00"):
        with pytest.raises(InvalidRequest):
            parse_period_key(key, "UTC")
    with pytest.raises(InvalidRequest):
        period_containing(datetime(2026, 3, 31, tzinfo=UTC), "Mars/Olympus_Mons")
