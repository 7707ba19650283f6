"""Annual seat terms and the proration of seats added during a term.

The convention (DESIGN.md, "Proration convention"): count actual days on the organization's calendar; the
term is `[start, end)`, so a change on day D counts from D; the charge is annual price × quantity × days
remaining ÷ days in the term, kept as an exact fraction and rounded once, half-up, to cents.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import NANO_PER_CENT, Money
from seatmeter.domain.periods import zone

__all__ = ["MONTHS_PER_TERM", "Proration", "Term", "add_years", "local_date", "prorate"]

MONTHS_PER_TERM = 12


def add_years(day: date, years: int) -> date:
    """The same calendar day `years` later; 29 February clamps to the 28th in a common year."""
    year = day.year + years
    return date(year, day.month, min(day.day, calendar.monthrange(year, day.month)[1]))


@dataclass(frozen=True, slots=True)
class Term:
    """One annual term, `[start, end)` in days of the organization's calendar."""

    start: date
    end: date

    @classmethod
    def starting(cls, start: date) -> Term:
        return cls(start, add_years(start, 1))

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    def next(self) -> Term:
        return Term(self.end, add_years(self.end, 1))

    def days_remaining(self, day: date) -> int:
        if not self.contains(day):
            raise InvalidRequest(
                f"{day.isoformat()} is outside the term {self.start.isoformat()} to {self.end.isoformat()}",
                resume="Choose an effective date inside the current term, or renew first.",
            )
        return (self.end - day).days


def local_date(at: datetime, timezone: str) -> date:
    """The day on the organization's calendar at an instant: proration counts those days, not UTC days."""
    if at.tzinfo is None:
        raise InvalidRequest("times must carry a time zone")
    return at.astimezone(zone(timezone)).date()


@dataclass(frozen=True, slots=True)
class Proration:
    quantity: int
    days_remaining: int
    days_in_term: int
    amount: Money

    @property
    def is_whole_term(self) -> bool:
        return self.days_remaining == self.days_in_term


def prorate(monthly_price: Money, quantity: int, term: Term, effective: date) -> Proration:
    """The charge for `quantity` seats from `effective` to the end of `term`, rounded once to cents."""
    if type(quantity) is not int or quantity <= 0:
        raise InvalidRequest(f"quantity must be a positive whole number of seats, got {quantity!r}")
    if monthly_price.nano < 0:
        raise InvalidRequest("a seat price cannot be negative")
    remaining = term.days_remaining(effective)
    annual_nano = monthly_price.nano * MONTHS_PER_TERM
    amount = Money.from_ratio(annual_nano * quantity * remaining, term.days, unit_nano=NANO_PER_CENT)
    return Proration(quantity, remaining, term.days, amount)
