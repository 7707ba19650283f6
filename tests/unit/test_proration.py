from datetime import UTC, date, datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import NANO_PER_CENT, Money
from seatmeter.domain.periods import period_containing
from seatmeter.domain.proration import Term, add_years, local_date, prorate

TEN = Money.parse("10.00")


def test_ten_seats_added_on_april_first_of_a_leap_year_cost_901_64():
    term = Term.starting(date(2024, 1, 1))
    charge = prorate(TEN, 10, term, date(2024, 4, 1))
    assert (charge.days_remaining, charge.days_in_term) == (275, 366)
    assert str(charge.amount) == "901.64"


def test_a_change_on_the_first_day_of_the_term_charges_the_whole_year():
    charge = prorate(TEN, 50, Term.starting(date(2024, 1, 1)), date(2024, 1, 1))
    assert charge.is_whole_term
    assert str(charge.amount) == "6000.00"


def test_a_change_on_the_last_day_of_a_leap_term_charges_one_day_in_366():
    charge = prorate(TEN, 1, Term.starting(date(2024, 1, 1)), date(2024, 12, 31))
    assert (charge.days_remaining, charge.days_in_term) == (1, 366)
    assert str(charge.amount) == "0.33"  # 120 / 366 = 0.3278...


def test_a_common_year_term_has_365_days():
    charge = prorate(TEN, 10, Term.starting(date(2025, 1, 1)), date(2025, 4, 1))
    assert (charge.days_remaining, charge.days_in_term) == (275, 365)
    assert str(charge.amount) == "904.11"  # 1200 × 275 / 365 = 904.109...


def test_a_term_crossing_29_february_counts_366_days():
    assert Term.starting(date(2023, 6, 1)).days == 366
    assert Term.starting(date(2024, 6, 1)).days == 365


def test_a_term_starting_on_29_february_ends_on_28_february():
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert Term.starting(date(2024, 2, 29)).days == 365


def test_a_term_anchored_on_a_month_end_keeps_its_day():
    term = Term.starting(date(2024, 1, 31))
    assert term.end == date(2025, 1, 31)
    assert term.next() == Term(date(2025, 1, 31), date(2026, 1, 31))
    assert prorate(TEN, 1, term, date(2024, 2, 29)).days_remaining == 337


def test_a_change_outside_the_term_is_refused():
    with pytest.raises(InvalidRequest):
        prorate(TEN, 1, Term.starting(date(2024, 1, 1)), date(2025, 1, 1))
    with pytest.raises(InvalidRequest):
        prorate(TEN, 0, Term.starting(date(2024, 1, 1)), date(2024, 6, 1))


def test_new_york_counts_the_evening_before_the_utc_day_as_its_own_day():
    # 03:30 UTC on 1 April is still 31 March in New York (EDT, UTC-4): one more day remains.
    at = datetime(2024, 4, 1, 3, 30, tzinfo=UTC)
    assert local_date(at, "America/New_York") == date(2024, 3, 31)
    charge = prorate(TEN, 10, Term.starting(date(2024, 1, 1)), local_date(at, "America/New_York"))
    assert charge.days_remaining == 276


def test_kolkata_is_already_on_the_next_day_before_utc_midnight():
    # 19:00 UTC on 31 March is 00:30 on 1 April in Kolkata (UTC+5:30).
    at = datetime(2024, 3, 31, 19, 0, tzinfo=UTC)
    assert local_date(at, "Asia/Kolkata") == date(2024, 4, 1)
    assert str(prorate(TEN, 10, Term.starting(date(2024, 1, 1)), local_date(at, "Asia/Kolkata")).amount) == "901.64"


def test_days_are_counted_across_the_spring_dst_change_in_new_york():
    # 10 March 2024 has 23 hours in New York; proration counts days, so it is one day like any other.
    before = local_date(datetime(2024, 3, 10, 4, 59, tzinfo=UTC), "America/New_York")
    after = local_date(datetime(2024, 3, 11, 3, 59, tzinfo=UTC), "America/New_York")
    assert (before, after) == (date(2024, 3, 9), date(2024, 3, 10))
    term = Term.starting(date(2024, 1, 1))
    assert prorate(TEN, 1, term, before).days_remaining - prorate(TEN, 1, term, after).days_remaining == 1


def test_month_end_anchor_periods_clamp_and_return_to_the_31st():
    jan = period_containing(datetime(2024, 2, 15, tzinfo=UTC), "UTC", anchor_day=31)
    assert (jan.start_date, jan.end_date) == (date(2024, 1, 31), date(2024, 2, 29))
    feb = jan.next()
    assert (feb.start_date, feb.end_date) == (date(2024, 2, 29), date(2024, 3, 31))


@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
    offset=st.integers(min_value=0, max_value=365),
    cents=st.integers(min_value=0, max_value=1_000_000),
    quantity=st.integers(min_value=1, max_value=10_000),
)
def test_a_proration_is_the_exact_fraction_rounded_once_to_the_cent(start, offset, cents, quantity):
    term = Term.starting(start)
    day = date.fromordinal(min(start.toordinal() + offset, term.end.toordinal() - 1))
    price = Money(cents * NANO_PER_CENT)
    charge = prorate(price, quantity, term, day)
    exact = Fraction(price.nano * 12 * quantity * charge.days_remaining, term.days)
    assert charge.amount.nano % NANO_PER_CENT == 0
    assert abs(charge.amount.nano - exact) <= Fraction(NANO_PER_CENT, 2)
    assert term.days in (365, 366)
    assert charge.amount <= price * (12 * quantity)
