"""Organizations and members: plans, channels, seat types, roles. Pure validation of what may be created."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import Money
from seatmeter.domain.periods import zone

__all__ = [
    "CHANNELS",
    "PLANS",
    "ROLES",
    "SEAT_TYPES",
    "SURFACES",
    "Organization",
    "choose",
    "validate_email",
    "validate_seat_prices",
    "validate_timezone",
]

PLANS = ("usage_based", "usage_based_legacy", "seat_based")
CHANNELS = ("self_serve", "sales_assisted")
ROLES = ("primary_owner", "owner", "member")
SURFACES = ("web", "desktop", "mobile", "claude_code", "api")
SEAT_TYPES: Mapping[str, tuple[str, ...]] = {
    "usage_based": ("enterprise",),
    "usage_based_legacy": ("chat", "chat_code"),
    "seat_based": ("standard", "premium"),
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    timezone: str
    plan: str
    channel: str
    term_start: date
    billing_anchor_day: int
    seat_prices: Mapping[str, Money]

    @property
    def self_serve(self) -> bool:
        return self.channel == "self_serve"

    @property
    def prepaid(self) -> bool:
        """Usage is paid from credits: self-serve usage-based plans. Seat-based plans include usage in the seat
        fee and invoice extra usage in arrears on either channel, so credits never pay for it."""
        return self.self_serve and self.plan != "seat_based"


def choose(value: Any, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InvalidRequest(f"{field} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def validate_email(value: Any) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value) or len(value) > 320:
        raise InvalidRequest(f"email must be an e-mail address, got {value!r}")
    return value.lower()


def validate_seat_prices(plan: str, raw: Any) -> dict[str, Money]:
    if not isinstance(raw, Mapping):
        raise InvalidRequest(
            'seat_prices must be an object of seat type to USD per seat per month, e.g. {"enterprise": "10.00"}'
        )
    allowed = SEAT_TYPES[plan]
    prices: dict[str, Money] = {}
    for seat_type, amount in raw.items():
        choose(seat_type, allowed, f"seat type for plan {plan}")
        money = Money.parse(amount, field=f"seat_prices.{seat_type}")
        if money.nano < 0:
            raise InvalidRequest(f"seat_prices.{seat_type} must not be negative")
        prices[seat_type] = money
    return prices


def validate_timezone(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidRequest("timezone must be an IANA time zone name such as Europe/Paris")
    zone(name)
    return name
