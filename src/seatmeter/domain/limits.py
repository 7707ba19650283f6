"""Limits and the decision to grant a hold. Pure: the rows come locked from the database, the answer goes back.

A limit is an account with a ceiling: the organization's credits (ceiling = total purchased), the
organization's spend in a period, a member's spend in a period. A hold reserves the same amount against
every limit that applies, all or nothing, so posted + held never passes any ceiling through holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from seatmeter.domain.errors import CreditsExhausted, MemberCapReached, OrganizationCapReached, UsageRefused
from seatmeter.domain.money import Money, Rounding

__all__ = [
    "CREDITS",
    "ORGANIZATION",
    "TOKENS_PER_RATE_UNIT",
    "Estimate",
    "LimitState",
    "decide_grant",
    "member_account",
    "refusal",
]

CREDITS = "credits"
ORGANIZATION = "organization"
TOKENS_PER_RATE_UNIT = 1_000_000  # rates are per million tokens


def member_account(member_id: str) -> str:
    return f"member:{member_id}"


@dataclass(frozen=True, slots=True)
class LimitState:
    account: str
    limit_nano: int | None  # None: unlimited
    posted_nano: int
    held_nano: int

    @property
    def room_nano(self) -> int | None:
        if self.limit_nano is None:
            return None
        return max(0, self.limit_nano - self.posted_nano - self.held_nano)

    @property
    def reached(self) -> bool:
        return self.room_nano == 0

    @property
    def is_member(self) -> bool:
        return self.account.startswith("member:")

    def holding(self, more_nano: int) -> LimitState:
        """The same row with `more_nano` more held (`dataclasses.replace` costs several times this)."""
        return LimitState(self.account, self.limit_nano, self.posted_nano, self.held_nano + more_nano)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request may cost at most. From tokens: an input bound plus output at a per-MTok rate.

    `input_numerator` and `output_rate` are in nano-USD × tokens / MTok, so grants are computed exactly.
    From an amount: `fixed_nano` alone.
    """

    fixed_nano: int = 0
    input_numerator: int = 0
    output_rate: int = 0
    max_output_tokens: int = 0

    @property
    def from_tokens(self) -> bool:
        return self.output_rate > 0

    def amount_for(self, output_tokens: int) -> int:
        if not self.from_tokens:
            return self.fixed_nano
        numerator = self.input_numerator + output_tokens * self.output_rate
        return Money.from_ratio(numerator, TOKENS_PER_RATE_UNIT, rounding=Rounding.UP).nano

    @property
    def full_nano(self) -> int:
        return self.amount_for(self.max_output_tokens)


@dataclass(frozen=True, slots=True)
class Grant:
    amount_nano: int
    max_output_tokens: int | None


# Order used to name a refusal when several limits stop a request at once: the narrowest scope first,
# because lifting a wider limit would not let this member through.
_NAMING_ORDER = {"member": 0, ORGANIZATION: 1, CREDITS: 2}


def _naming_rank(state: LimitState) -> int:
    return _NAMING_ORDER["member" if state.is_member else state.account]


def decide_grant(states: list[LimitState], estimate: Estimate, *, allow_partial: bool, period_end: datetime) -> Grant:
    """Grant the whole estimate if every limit has room for it; with `allow_partial`, the most that fits."""
    rooms = [s.room_nano for s in states if s.room_nano is not None]
    room = min(rooms) if rooms else None
    full = estimate.full_nano
    if room is None or full <= room:
        return Grant(full, estimate.max_output_tokens if estimate.from_tokens else None)
    if allow_partial and estimate.from_tokens:
        spare = room * TOKENS_PER_RATE_UNIT - estimate.input_numerator
        output_tokens = spare // estimate.output_rate if spare > 0 else 0
        if output_tokens >= 1:
            return Grant(estimate.amount_for(output_tokens), output_tokens)
    elif allow_partial and room > 0:
        return Grant(room, None)
    blocking = sorted((s for s in states if s.room_nano is not None and s.room_nano < full), key=_naming_rank)
    raise refusal(blocking[0], period_end, others=blocking[1:])


def refusal(state: LimitState, period_end: datetime, others: list[LimitState] | None = None) -> UsageRefused:
    """The error that names the limit which stopped usage, and what lifts it."""
    also = ""
    if others:
        also = " Also at its limit: " + ", ".join(_label(s) for s in others) + "."
    room = Money(state.room_nano or 0)
    next_period = period_end.isoformat()
    if state.account == CREDITS:
        return CreditsExhausted(
            f"The organization's credits cannot cover this request (available: {room} USD).{also}",
            resume="Usage resumes as soon as an owner buys more credits (POST .../credits/purchases).",
        )
    if state.account == ORGANIZATION:
        return OrganizationCapReached(
            f"The organization's spend cap of {Money(state.limit_nano or 0)} USD for this billing period is "
            f"reached (remaining: {room} USD).{also}",
            resume=f"Usage resumes when an owner raises or removes the organization cap "
            f"(PUT .../caps/organization), or when the next billing period begins at {next_period}.",
        )
    return MemberCapReached(
        f"This member's spend cap of {Money(state.limit_nano or 0)} USD for this billing period is reached "
        f"(remaining: {room} USD).{also}",
        resume=f"Usage resumes when an owner raises or removes this member's cap (PUT .../caps/members/{{member}}), "
        f"or when the next billing period begins at {next_period}.",
    )


def _label(state: LimitState) -> str:
    return {CREDITS: "credits", ORGANIZATION: "organization cap"}.get(state.account, "member cap")
