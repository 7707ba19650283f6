"""Errors in the Anthropic shape, so the official SDKs raise their usual exceptions for seatmeter's refusals.

The body is the vendor's `{"type": "error", "error": {"type": ..., "message": ...}}` with seatmeter's stable
`code` and `resume` added inside `error`. The HTTP status is the one API.md gives the code, from the API's own
table; the vendor's error `type` follows from the status, as it does for the vendor's own errors.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from seatmeter.domain.errors import SeatmeterError
from seatmeter.entrypoints.api.errors import STATUS

__all__ = ["STATUS_BY_CODE", "anthropic_error", "error_body", "error_type_for_status", "refusal_response"]

STATUS_BY_CODE = STATUS  # the API's one table of code -> HTTP status

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


def upstream_unreachable(failure: str) -> JSONResponse:
    """503 when the vendor's API cannot be reached; `failure` names the transport error (e.g. ConnectError)."""
    return anthropic_error(
        503,
        f"the upstream Messages API could not be reached ({failure})",
        code="service_unavailable",
        resume="Try again shortly.",
    )


def refusal_response(error: SeatmeterError) -> JSONResponse:
    status = STATUS_BY_CODE.get(error.code, 400)
    return anthropic_error(status, error.message, code=error.code, resume=error.resume)
