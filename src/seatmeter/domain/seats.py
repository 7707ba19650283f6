"""Seat types per plan, what each seat entitles its holder to, and the rules for changing seats.

plan                  seat types             billed
usage_based           enterprise             annually, up front; usage pooled at API rates
usage_based_legacy    chat, chat_code        annually, up front; a chat seat excludes claude_code
seat_based            standard, premium      monthly; each seat includes a usage allowance per period
"""

from __future__ import annotations

from dataclasses import dataclass

from seatmeter.domain.errors import (
    AllowanceExhausted,
    Conflict,
    Forbidden,
    InvalidRequest,
    NoSeat,
    SurfaceNotInSeat,
)
from seatmeter.domain.money import Money
from seatmeter.domain.organization import CHANNELS, PLANS, SEAT_TYPES, SURFACES

__all__ = [
    "CHANNELS",
    "PLANS",
    "SEAT_TYPES",
    "SURFACES",
    "SeatAllowance",
    "check_allowance",
    "check_assignable",
    "check_entitlement",
    "check_mid_term_change",
    "check_reduction",
    "check_seat_type",
    "extra_usage",
    "is_annual",
    "surfaces_of",
]

_CHAT_SURFACES = frozenset(s for s in SURFACES if s != "claude_code")


def is_annual(plan: str) -> bool:
    """Usage-based seats are billed for the whole term up front; seat-based seats month by month."""
    return plan != "seat_based"


def check_seat_type(plan: str, seat_type: str) -> None:
    allowed = SEAT_TYPES.get(plan)
    if allowed is None:
        raise InvalidRequest(f"plan must be one of {', '.join(PLANS)}, got {plan!r}")
    if seat_type not in allowed:
        raise InvalidRequest(
            f"the {plan} plan has no {seat_type!r} seat; its seat types are {', '.join(allowed)}",
            resume=f"Use one of: {', '.join(allowed)}.",
        )


def surfaces_of(seat_type: str) -> frozenset[str]:
    return _CHAT_SURFACES if seat_type == "chat" else frozenset(SURFACES)


def check_entitlement(seat_type: str | None, surface: str) -> None:
    """A member must hold a seat, and the seat must include the surface the request comes from."""
    if surface not in SURFACES:
        raise InvalidRequest(f"surface must be one of {', '.join(SURFACES)}, got {surface!r}")
    if seat_type is None:
        raise NoSeat(
            "this member holds no seat, and a seat is needed to use the product",
            resume="An owner assigns a seat with PUT /v1/organizations/{org}/members/{member}/seat.",
        )
    if surface not in surfaces_of(seat_type):
        raise SurfaceNotInSeat(
            f"a {seat_type} seat does not include the {surface} surface",
            resume="An owner moves the member to a chat_code seat to use Claude Code.",
        )


def check_mid_term_change(channel: str, *, by_operator: bool) -> None:
    """On sales-assisted plans seats change mid-term only through the vendor's account manager."""
    if channel == "sales_assisted" and not by_operator:
        raise Forbidden(
            "on a sales-assisted plan only the account manager changes seats during the term",
            resume="Ask your account manager (the operator) to change the seats.",
        )


def check_reduction(channel: str, *, by_operator: bool, at_renewal: bool) -> None:
    """Self-serve seats cannot be removed mid-term; a reduction may be scheduled for the renewal."""
    if at_renewal:
        return
    if channel == "self_serve" and not by_operator:
        raise Conflict(
            "seats cannot be removed during the term on a self-serve plan",
            resume='Schedule the reduction for the renewal with {"at": "renewal"}.',
            code="seat_removal_not_allowed",
        )
    check_mid_term_change(channel, by_operator=by_operator)


def check_assignable(seat_type: str, purchased: int, assigned: int) -> None:
    """Assigned seats never exceed purchased seats: `assigned` counts the seats held, the new one included."""
    if assigned > purchased:
        raise InvalidRequest(
            f"all {purchased} {seat_type} seats are assigned",
            resume=f"Buy more {seat_type} seats, or take a seat back from another member first.",
        )


@dataclass(frozen=True, slots=True)
class SeatAllowance:
    """Seat-based plans: the monthly fee of a seat type and the usage it includes per member per period."""

    seat_type: str
    monthly_fee: Money
    included_usage: Money

    def __post_init__(self) -> None:
        if self.monthly_fee.nano < 0 or self.included_usage.nano < 0:
            raise InvalidRequest(f"the fee and the included usage of a {self.seat_type} seat cannot be negative")


def extra_usage(spend: Money, allowance: Money) -> Money:
    """Usage beyond the allowance, billed at API rates as extra usage."""
    return spend - allowance if spend > allowance else Money.zero()


def check_allowance(allowance: Money, spent: Money, amount: Money, *, extra_usage_enabled: bool) -> None:
    """Seat-based plans: a request that would take a member's spend past their seat's allowance is refused
    unless an owner enabled extra usage (then the organization and member caps still apply)."""
    if extra_usage_enabled or spent + amount <= allowance:
        return
    raise AllowanceExhausted(
        f"this request would go past the seat's included usage of ${allowance} this period (${spent} used)",
        resume="Usage resumes next billing period, or at once if an owner enables extra usage.",
    )
