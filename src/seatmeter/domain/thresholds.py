"""Spend thresholds: which configured percentages of a limit a movement of spend crossed.

A threshold of p percent of a limit L is crossed when spend moves from below p% of L to at or above it:
`before * 100 < p * L <= after * 100`. Everything is integer arithmetic on nano-USD; no percentage of
money is ever a float. An unlimited limit (None) has no thresholds, and neither has a limit of zero:
nothing can be spent under it, and its refusals are announced as `usage_stopped` instead.

Each threshold fires once per limit per period. Raising a cap (or buying credits) re-arms the
thresholds: the arming generation changes, and a threshold crossed anew under the new limit fires
again. The outbox's unique key carries the generation, which is what makes "once" hold in storage.

The credit balance has two kinds of threshold: "credits X% used", where the limit is the total ever
purchased and spend is what usage has posted against it, and an optional absolute low-balance amount,
crossed when the balance (purchased - posted) falls from at or above the amount to below it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import Money

__all__ = [
    "DEFAULT_THRESHOLDS_PERCENT",
    "MAX_THRESHOLDS",
    "NEAR_PERCENT",
    "CapStatus",
    "Crossing",
    "cap_status",
    "crossed_low_balance",
    "crossed_percentages",
    "validate_thresholds",
]

DEFAULT_THRESHOLDS_PERCENT: tuple[int, ...] = (50, 75, 90, 100)
MAX_THRESHOLDS = 10
NEAR_PERCENT = 90  # a cap at or above this share of its limit shows as "near" on the dashboard


@dataclass(frozen=True, slots=True)
class Crossing:
    """Spend on one limit moved across `percent` of `limit` (None for the absolute low-balance threshold)."""

    percent: int | None
    limit: Money
    spent: Money


def validate_thresholds(values: Iterable[object]) -> tuple[int, ...]:
    """Whole percentages from 1 to 100, at most ten, returned sorted and without repeats."""
    result: set[int] = set()
    for value in values:
        if type(value) is not int or not 1 <= value <= 100:
            raise InvalidRequest(
                f"thresholds_percent must hold whole numbers from 1 to 100, got {value!r}",
                resume="send a list such as [50, 75, 90, 100]",
            )
        result.add(value)
    if len(result) > MAX_THRESHOLDS:
        raise InvalidRequest(f"at most {MAX_THRESHOLDS} thresholds can be set, got {len(result)}")
    return tuple(sorted(result))


def crossed_percentages(
    limit: Money | None, before: Money, after: Money, thresholds_percent: Sequence[int]
) -> list[Crossing]:
    """The thresholds that spend crossed moving from `before` to `after` under `limit`, lowest first."""
    if limit is None or limit.nano <= 0 or after.nano <= before.nano:
        return []
    return [
        Crossing(percent, limit, after)
        for percent in sorted(set(thresholds_percent))
        if before.nano * 100 < percent * limit.nano <= after.nano * 100
    ]


def crossed_low_balance(
    purchased: Money, posted_before: Money, posted_after: Money, low_balance: Money | None
) -> Crossing | None:
    """The low-balance threshold, if the balance fell from at or above `low_balance` to below it."""
    if low_balance is None or low_balance.nano <= 0:
        return None
    balance_before = purchased.nano - posted_before.nano
    balance_after = purchased.nano - posted_after.nano
    if balance_before >= low_balance.nano > balance_after:
        return Crossing(None, low_balance, posted_after)
    return None


CapStatus = str  # "ok" | "near" | "reached"


def cap_status(limit: Money | None, spent: Money, held: Money | None = None) -> CapStatus:
    """How close `spent + held` is to `limit`: "reached" when nothing more fits, "near" from NEAR_PERCENT."""
    if limit is None:
        return "ok"
    used = spent.nano + (held.nano if held is not None else 0)
    if used >= limit.nano:
        return "reached"
    if used * 100 >= NEAR_PERCENT * limit.nano:
        return "near"
    return "ok"
