"""Every error a user of seatmeter can see, each with a stable `code` from a closed set.

    SeatmeterError                      base: code, message, resume
    ├── InvalidRequest                  invalid_request
    ├── UnknownModel                    unknown_model
    ├── Unauthenticated                 unauthenticated
    ├── Forbidden                       forbidden
    ├── NotFound                        not_found
    ├── Conflict                        idempotency_conflict, seat_removal_not_allowed, hold_not_open
    ├── UsageRefused                    a limit stopped usage
    │   ├── CreditsExhausted            credits_exhausted
    │   ├── OrganizationCapReached      organization_cap_reached
    │   ├── MemberCapReached            member_cap_reached
    │   ├── NoSeat                      no_seat
    │   ├── SurfaceNotInSeat            surface_not_in_seat
    │   └── AllowanceExhausted          allowance_exhausted
    └── ServiceUnavailable              service_unavailable (the database cannot be reached)

An unexpected exception is answered by the API as `internal_error` (500) in the same envelope.

The domain never knows HTTP: the API maps codes to status codes in one table, the CLI to exit codes.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CODES",
    "AllowanceExhausted",
    "Conflict",
    "CreditsExhausted",
    "Forbidden",
    "InvalidRequest",
    "MemberCapReached",
    "NoSeat",
    "NotFound",
    "OrganizationCapReached",
    "SeatmeterError",
    "ServiceUnavailable",
    "SurfaceNotInSeat",
    "Unauthenticated",
    "UnknownModel",
    "UsageRefused",
]


class SeatmeterError(Exception):
    code: ClassVar[str] = "invalid_request"

    def __init__(self, message: str, *, resume: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.resume = resume
        if code is not None:
            self.code = code  # type: ignore[misc]

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "resume": self.resume}


class InvalidRequest(SeatmeterError):
    code = "invalid_request"


class UnknownModel(SeatmeterError):
    code = "unknown_model"


class Unauthenticated(SeatmeterError):
    code = "unauthenticated"


class Forbidden(SeatmeterError):
    code = "forbidden"


class NotFound(SeatmeterError):
    code = "not_found"


class Conflict(SeatmeterError):
    """A request that contradicts what was already recorded. `code` says which rule."""

    code = "idempotency_conflict"


class UsageRefused(SeatmeterError):
    """Usage was stopped by a limit. `resume` always says what lifts it."""


class CreditsExhausted(UsageRefused):
    code = "credits_exhausted"


class OrganizationCapReached(UsageRefused):
    code = "organization_cap_reached"


class MemberCapReached(UsageRefused):
    code = "member_cap_reached"


class NoSeat(UsageRefused):
    code = "no_seat"


class SurfaceNotInSeat(UsageRefused):
    code = "surface_not_in_seat"


class AllowanceExhausted(UsageRefused):
    code = "allowance_exhausted"


class ServiceUnavailable(SeatmeterError):
    code = "service_unavailable"


CODES: frozenset[str] = frozenset(
    {
        "invalid_request",
        "unknown_model",
        "unauthenticated",
        "credits_exhausted",
        "forbidden",
        "no_seat",
        "surface_not_in_seat",
        "not_found",
        "idempotency_conflict",
        "seat_removal_not_allowed",
        "hold_not_open",
        "request_too_large",  # the body is over the server's bound (entrypoints/api/body_limit.py)
        "organization_cap_reached",
        "member_cap_reached",
        "allowance_exhausted",
        "service_unavailable",
        "internal_error",  # an unexpected failure; nothing was written (the API's last resort)
    }
)
