"""Errors in the Anthropic shape, so the official SDKs raise their usual exceptions for seatmeter's refusals.

The body is the vendor's `{"type": "error", "error": {"type": ..., "message": ...}}` with seatmeter's stable
`code` and `resume` added inside `error`. The HTTP status is the one API.md gives the code; the vendor's
error `type` follows from the status, as it does for the vendor's own errors.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from seatmeter.domain.errors import SeatmeterError

__all__ = ["STATUS_BY_CODE", "anthropic_error", "error_body", "error_type_for_status", "refusal_response"]

STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 400,
    "unknown_model": 400,
    "unauthenticated": 401,
    "credits_exhausted": 402,
    "forbidden": 403,
    "no_seat": 403,
    "surface_not_in_seat": 403,
    "not_found": 404,
    "idempotency_conflict": 409,
    "seat_removal_not_allowed": 409,
    "hold_not_open": 409,
    "organization_cap_reached": 429,
    "member_cap_reached": 429,
    "allowance_exhausted": 429,
    "service_unavailable": 503,
}

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "api_error")


def error_body(status: int, message: str, *, code: str, resume: str = "") -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type_for_status(status), "message": message, "code": code, "resume": resume},
    }


def anthropic_error(status: int, message: str, *, code: str, resume: str = "") -> JSONResponse:
    """An error response; `x-should-retry: false` tells the SDKs not to retry a refusal that will not lift."""
    headers = {"x-should-retry": "true" if status in (503, 529) else "false"}
    return JSONResponse(error_body(status, message, code=code, resume=resume), status_code=status, headers=headers)


def refusal_response(error: SeatmeterError) -> JSONResponse:
    status = STATUS_BY_CODE.get(error.code, 400)
    return anthropic_error(status, error.message, code=error.code, resume=error.resume)
