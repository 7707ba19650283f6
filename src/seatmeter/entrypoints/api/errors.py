"""The one table that maps error codes to HTTP status codes, and the handlers that write the error envelope."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException

from seatmeter.adapters import metrics
from seatmeter.domain.errors import SeatmeterError

__all__ = ["STATUS", "error_response", "install"]

STATUS: dict[str, int] = {
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
    "request_too_large": 413,
    "organization_cap_reached": 429,
    "member_cap_reached": 429,
    "allowance_exhausted": 429,
    "service_unavailable": 503,
    "internal_error": 500,
}


def error_response(code: str, message: str, resume: str = "", status: int | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "resume": resume}}, status_code=status or STATUS.get(code, 400)
    )


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if err.get("type") == "json_invalid":
            return "the body is not valid JSON"
        parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(SeatmeterError)
    async def _domain(_: Request, exc: SeatmeterError) -> JSONResponse:
        return error_response(exc.code, exc.message, exc.resume)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response("invalid_request", _describe(exc), "Fix the request and send it again.")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "invalid_request"
        return error_response(code, str(exc.detail), status=exc.status_code)

    @app.exception_handler(DataError)
    async def _bad_value(_: Request, exc: Any) -> JSONResponse:
        # The database refused a value the validation let through (PostgreSQL: a NUL character in a text);
        # nothing was written, and it is the request that must change.
        return error_response(
            "invalid_request",
            "a value in the request cannot be stored (for example, it contains a NUL character)",
            "Fix the request and send it again.",
        )

    @app.exception_handler(UnicodeEncodeError)
    async def _not_unicode(_: Request, exc: Any) -> JSONResponse:
        # JSON can spell a lone surrogate ("\ud800"), which no encoding can store or hash. It fails before
        # anything is committed (the unit of work rolls back), so nothing was written.
        return error_response(
            "invalid_request",
            "a text in the request is not valid Unicode (it contains a lone surrogate such as \\ud800)",
            "Fix the request and send it again.",
        )

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: Any) -> JSONResponse:
        metrics.count("seatmeter_database_errors_total")
        return error_response(
            "service_unavailable",
            "the database cannot be reached right now; nothing was written",
            "Retry shortly with the same idempotency key.",
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Anything else is a bug: answer in the envelope like every other error, without internals.
        metrics.count("seatmeter_internal_errors_total")
        return error_response(
            "internal_error",
            "seatmeter failed on this request because of an internal error",
            "Retry with the same idempotency key; if it keeps failing, report it to the operator.",
        )
