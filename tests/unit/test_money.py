"""Money: integer nano-USD, exact parsing and formatting, one rounding function."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import NANO_PER_CENT, Money, Rounding

nanos = st.integers(min_value=-(10**24) + 1, max_value=10**24 - 1)  # parse takes up to 15 whole digits
amounts = st.builds(Money, st.integers(min_value=-(10**23), max_value=10**23))


@given(nanos)
def test_formatting_then_parsing_gives_back_the_same_amount(nano: int) -> None:
    assert Money.parse(str(Money(nano))) == Money(nano)


@pytest.mark.parametrize(
    ("text", "nano", "shown"),
    [
        ("901.64", 901_640_000_000, "901.64"),
        ("0.054399", 54_399_000, "0.054399"),
        ("-3", -3_000_000_000, "-3.00"),
        ("0.000000001", 1, "0.000000001"),
        ("12.5", 12_500_000_000, "12.50"),
    ],
)
def test_decimal_strings_parse_to_exact_nano_dollars_and_print_with_two_to_nine_decimals(
    text: str, nano: int, shown: str
) -> None:
    assert Money.parse(text).nano == nano
    assert str(Money.parse(text)) == shown


@pytest.mark.parametrize("raw", [1.5, 1, None, "1.0000000001", "1e3", "abc", "", "1.", ".5", "1,00"])
def test_parse_refuses_numbers_and_anything_but_a_plain_decimal_string(raw: object) -> None:
    with pytest.raises(InvalidRequest):
        Money.parse(raw)


def test_money_refuses_floats_and_other_currencies() -> None:
    with pytest.raises(TypeError):
        Money(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="USD only"):
        Money(1, "EUR")
    with pytest.raises(TypeError):
        Money(1) * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        Money(1) + 1  # type: ignore[operator]


@given(st.lists(amounts, min_size=1, max_size=20))
def test_sum_of_money_is_money_with_the_sum_of_the_nanos(values: list[Money]) -> None:
    assert sum(values) == Money(sum(v.nano for v in values))
    assert sum(values, Money.zero()) == Money(sum(v.nano for v in values))


@pytest.mark.parametrize(
    ("numerator", "denominator", "half_up", "up"),
    [
        (5, 2, 3, 3),
        (4, 2, 2, 2),
        (7, 3, 2, 3),
        (-5, 2, -3, -2),  # half away from zero; UP never rounds a negative away from zero
        (-7, 3, -2, -2),
        (1, 3, 0, 1),
        (-1, 2, -1, 0),
    ],
)
def test_from_ratio_rounds_half_away_from_zero_or_up_to_the_nano(
    numerator: int, denominator: int, half_up: int, up: int
) -> None:
    assert Money.from_ratio(numerator, denominator).nano == half_up
    assert Money.from_ratio(numerator, denominator, rounding=Rounding.UP).nano == up


def test_from_ratio_rounds_to_cents_half_up() -> None:
    assert Money.from_ratio(Fraction(275, 366) * 1_200 * 10**9, unit_nano=NANO_PER_CENT) == Money.parse("901.64")
    assert Money.parse("0.005").cents() == Money.parse("0.01")
    assert Money.parse("0.004999999").cents() == Money.zero()
    assert Money.parse("-0.005").cents() == Money.parse("-0.01")


@given(st.integers(min_value=-(10**18), max_value=10**18), st.integers(min_value=1, max_value=10**9))
def test_from_ratio_is_within_half_a_unit_and_up_is_never_below_the_exact_value(num: int, den: int) -> None:
    exact = Fraction(num, den)
    half_up = Money.from_ratio(num, den).nano
    assert abs(half_up - exact) <= Fraction(1, 2)
    if exact >= 0:
        up = Money.from_ratio(num, den, rounding=Rounding.UP).nano
        assert exact <= up < exact + 1
