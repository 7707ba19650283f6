"""Money: integer nano-USD in a frozen value type, and the one place where amounts are rounded.

Every published per-token rate is a whole number of nano-USD per million tokens, so costs are exact
integers until a division happens. Divisions happen in exactly two situations, both routed through
`Money.from_ratio`: turning a per-million rate into the cost of a request (rounded half-up to the
nano-dollar, which only the batch tier's half-rates ever need) and rounding an invoice line or a
proration to cents (half-up, once per line).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any

from seatmeter.domain.errors import InvalidRequest

__all__ = ["NANO_PER_USD", "NANO_PER_CENT", "Money", "Rounding", "usd_text"]

NANO_PER_USD = 1_000_000_000
NANO_PER_CENT = 10_000_000

_AMOUNT = re.compile(r"^(-?)(\d{1,15})(?:\.(\d{1,9}))?$")


class Rounding(Enum):
    HALF_UP = "half_up"  # invoice lines, prorations, per-event cost
    UP = "up"  # holds: a reservation must cover what it stands for


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount of USD held as an integer count of nano-dollars. Refuses floats and other currencies."""

    nano: int
    currency: str = "USD"

    def __post_init__(self) -> None:
        if type(self.nano) is not int:
            raise TypeError(f"Money needs an integer of nano-USD, got {type(self.nano).__name__}")
        if self.currency != "USD":
            raise ValueError(f"seatmeter bills in USD only, got {self.currency}")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def zero(cls) -> Money:
        return cls(0)

    @classmethod
    def parse(cls, text: Any, field: str = "amount") -> Money:
        """Parse a decimal string of USD ("901.64", "0.054399"). Numbers are refused: JSON floats lose cents."""
        if not isinstance(text, str):
            raise InvalidRequest(
                f'{field} must be a decimal string of USD such as "12.50", not a JSON {type(text).__name__}',
            )
        match = _AMOUNT.match(text.strip())
        if match is None:
            raise InvalidRequest(f"{field} must be a decimal string of USD with at most 9 decimals, got {text!r}")
        sign, whole, frac = match.groups()
        nano = int(whole) * NANO_PER_USD + int((frac or "").ljust(9, "0"))
        return cls(-nano if sign else nano)

    @classmethod
    def from_ratio(
        cls,
        numerator: int | Fraction,
        denominator: int = 1,
        *,
        unit_nano: int = 1,
        rounding: Rounding = Rounding.HALF_UP,
    ) -> Money:
        """The single rounding function: `numerator / denominator` nano-USD, rounded to a multiple of `unit_nano`.

        `unit_nano=1` rounds to the nano-dollar, `unit_nano=NANO_PER_CENT` to the cent.
        """
        # Integer arithmetic on the exact fraction p/q (q > 0): this runs for every usage event.
        if isinstance(numerator, int) and denominator > 0:
            p, q = numerator, denominator * unit_nano
        else:
            exact = Fraction(numerator) / (denominator * unit_nano)
            p, q = exact.numerator, exact.denominator
        units, remainder = divmod(abs(p), q)
        if rounding is Rounding.UP and p > 0:
            units += 1 if remainder else 0
        elif rounding is Rounding.HALF_UP:  # half away from zero
            units += 1 if 2 * remainder >= q else 0
        if p < 0:
            units = -units
        return cls(units * unit_nano)

    # -- arithmetic ----------------------------------------------------------------------------
    def __add__(self, other: Money) -> Money:
        return Money(self.nano + _same(other).nano)

    def __radd__(self, other: object) -> Money:
        if other == 0:  # lets sum() start from its default of 0
            return self
        return NotImplemented

    def __sub__(self, other: Money) -> Money:
        return Money(self.nano - _same(other).nano)

    def __neg__(self) -> Money:
        return Money(-self.nano)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise TypeError("Money can only be multiplied by an integer; use Money.from_ratio for fractions")
        return Money(self.nano * factor)

    __rmul__ = __mul__

    def __bool__(self) -> bool:
        return self.nano != 0

    def cents(self) -> Money:
        """Rounded half-up to the cent."""
        return Money.from_ratio(self.nano, unit_nano=NANO_PER_CENT)

    # -- presentation --------------------------------------------------------------------------
    def __str__(self) -> str:
        """Decimal string with at least 2 and at most 9 decimals: "901.64", "0.054399", "-3.00"."""
        return _decimal_string(self.nano)

    def to_decimal(self) -> Decimal:
        return Decimal(self.nano) / NANO_PER_USD


def usd_text(nano: int) -> str:
    """What `str(Money(nano))` gives, without making the Money: for callers that format thousands of amounts
    and keep their own cache (the usage summary)."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO_PER_USD)
    digits = f"{frac:09d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{digits}"


# Cached: a summary of 10,000 members prints the same caps and zeros tens of thousands of times.
_decimal_string = functools.lru_cache(maxsize=8192)(usd_text)


def _same(other: object) -> Money:
    if not isinstance(other, Money):
        raise TypeError(f"cannot combine Money with {type(other).__name__}")
    return other
