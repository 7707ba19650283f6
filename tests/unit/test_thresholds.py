import pytest
from hypothesis import given
from hypothesis import strategies as st

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import Money
from seatmeter.domain.thresholds import (
    DEFAULT_THRESHOLDS_PERCENT,
    cap_status,
    crossed_low_balance,
    crossed_percentages,
    validate_thresholds,
)


def usd(text: str) -> Money:
    return Money.parse(text)


def test_spend_moving_past_half_the_cap_crosses_fifty_percent_only():
    crossings = crossed_percentages(usd("100"), usd("49.99"), usd("60"), DEFAULT_THRESHOLDS_PERCENT)
    assert [c.percent for c in crossings] == [50]


def test_one_large_movement_crosses_every_threshold_it_passes_lowest_first():
    crossings = crossed_percentages(usd("100"), usd("10"), usd("250"), DEFAULT_THRESHOLDS_PERCENT)
    assert [c.percent for c in crossings] == [50, 75, 90, 100]


def test_reaching_a_threshold_exactly_crosses_it_and_starting_on_it_does_not():
    assert [c.percent for c in crossed_percentages(usd("100"), usd("74"), usd("75"), [75])] == [75]
    assert crossed_percentages(usd("100"), usd("75"), usd("80"), [75]) == []


def test_thresholds_use_exact_integer_arithmetic_on_nano_dollars():
    limit = Money(3)  # 3 nano-USD: 50% is 1.5 nano
    assert crossed_percentages(limit, Money(1), Money(2), [50])[0].percent == 50
    assert crossed_percentages(limit, Money(0), Money(1), [50]) == []


def test_unlimited_and_zero_limits_have_no_thresholds():
    assert crossed_percentages(None, usd("0"), usd("1000"), [50]) == []
    assert crossed_percentages(Money(0), usd("0"), usd("1"), [50]) == []


def test_low_balance_fires_when_the_balance_falls_below_the_amount():
    crossing = crossed_low_balance(usd("100"), usd("70"), usd("81"), usd("20"))
    assert crossing is not None and crossing.limit == usd("20")
    assert crossed_low_balance(usd("100"), usd("81"), usd("85"), usd("20")) is None
    assert crossed_low_balance(usd("100"), usd("70"), usd("81"), None) is None


def test_thresholds_are_validated_sorted_and_deduplicated():
    assert validate_thresholds([100, 50, 50, 75]) == (50, 75, 100)
    for bad in ([0], [101], [50.5], ["50"], list(range(1, 13))):
        with pytest.raises(InvalidRequest):
            validate_thresholds(bad)


def test_cap_status_is_near_from_ninety_percent_and_reached_when_nothing_fits():
    assert cap_status(usd("100"), usd("89.99")) == "ok"
    assert cap_status(usd("100"), usd("80"), usd("10")) == "near"
    assert cap_status(usd("100"), usd("100")) == "reached"
    assert cap_status(None, usd("1000000")) == "ok"


@given(
    limit=st.integers(1, 10**15),
    steps=st.lists(st.integers(0, 10**14), min_size=1, max_size=30),
    thresholds=st.lists(st.integers(1, 100), min_size=1, max_size=10),
)
def test_monotonic_spend_crosses_each_reached_threshold_exactly_once(limit, steps, thresholds):
    spent = 0
    fired: list[int] = []
    for step in steps:
        crossings = crossed_percentages(Money(limit), Money(spent), Money(spent + step), thresholds)
        fired.extend(c.percent for c in crossings if c.percent is not None)
        spent += step
    expected = sorted(p for p in set(thresholds) if spent * 100 >= p * limit)
    assert sorted(fired) == expected


@given(
    limit=st.integers(min_value=1, max_value=10**15),
    before=st.integers(min_value=0, max_value=2 * 10**15),
    step=st.integers(min_value=1, max_value=10**15),
    thresholds=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=10),
)
def test_spend_that_stays_within_one_whole_percent_of_a_cap_crosses_no_threshold(
    limit: int, before: int, step: int, thresholds: list[int]
) -> None:
    # services.notifications.spend_posted skips reading the settings on this ground: keep it true.
    after = before + step
    if before * 100 // limit == after * 100 // limit:
        assert crossed_percentages(Money(limit), Money(before), Money(after), thresholds) == []
