"""The FastAPI application: routes, error envelope, health and metrics."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse
from sqlalchemy import text

from seatmeter import __version__
from seatmeter.adapters import metrics
from seatmeter.bootstrap import App, build
from seatmeter.entrypoints.api import errors
from seatmeter.entrypoints.api.body_limit import BodyLimit
from seatmeter.entrypoints.api.errors import STATUS
from seatmeter.entrypoints.api.fastpath import HoldFastPath
from seatmeter.entrypoints.api.routes_billing import router as billing_router
from seatmeter.entrypoints.api.routes_core import router as core_router
from seatmeter.entrypoints.gateway.routes import router as gateway_router
from seatmeter.entrypoints.web import routes as web
from seatmeter.services.holds import expire_holds

__all__ = ["HOT_PATHS", "create_app", "serve_app"]

EXPIRY_INTERVAL_S = 5.0
# The requests every metered call makes. FastAPI matches a request against the routes in order, twice through an
# included router (once to pick the router, once inside it); in the profile of a hold that was a fifth of the
# request's time with these near the end of the core router. No other route's path can match theirs
# (tests/e2e/test_route_order.py), so moving them first changes only the time to find them.
HOT_PATHS = (
    "/v1/organizations/{org}/holds",
    "/v1/organizations/{org}/holds/{hold}/settle",
    "/v1/organizations/{org}/holds/{hold}/void",
    "/v1/organizations/{org}/usage",
)


def create_app(app: App | None = None, *, fast_path: bool = True) -> FastAPI:
    """The API; `fast_path=False` leaves the hot hold routes to FastAPI alone (the tests compare the two)."""
    seatmeter = app or build()
    api = FastAPI(
        title="seatmeter",
        version=__version__,
        description="Billing and real-time spend control: seats, pooled usage, credits and hierarchical caps. "
        'Money is a decimal string of USD. Errors: {"error": {"code", "message", "resume"}}.',
    )
    api.state.seatmeter = seatmeter
    errors.install(api)
    _hot_routes_first(core_router)
    api.include_router(core_router)
    api.include_router(billing_router)
    web.install(api)  # notifications API and the /app dashboard
    api.include_router(gateway_router)
    _finish_openapi(api)
    if fast_path:
        api.add_middleware(HoldFastPath, api=api)
    api.add_middleware(BodyLimit, max_bytes=seatmeter.settings.max_body_bytes)  # the outermost: before any read

    @api.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        with seatmeter.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    @api.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    def prometheus() -> str:
        return metrics.render()

    return api


def _hot_routes_first(router: APIRouter) -> None:
    """Move the hot routes to the front, keeping every other route's order (idempotent: a stable sort)."""
    router.routes.sort(key=lambda route: getattr(route, "path", "") not in HOT_PATHS)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "resume"],
            "properties": {
                "code": {"type": "string", "enum": sorted(STATUS), "description": "stable, from a closed set"},
                "message": {"type": "string", "description": "what happened, for a person"},
                "resume": {"type": "string", "description": "what lifts it, if anything"},
            },
        }
    },
}
GATEWAY_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'The Messages API\'s shape, {"type": "error", "error": {...}}, with seatmeter\'s code and resume.',
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "properties": {k: {"type": "string"} for k in ("type", "message", "code", "resume")},
        },
    },
}


def _status_codes_for(status: int) -> str:
    return ", ".join(code for code, s in sorted(STATUS.items()) if s == status)


def _finish_openapi(api: FastAPI) -> None:
    """Two corrections to the generated document, made once when it is first served:

    - request schemas given by hand (openapi_extra) carry their own `$defs` while their `$ref`s point at
      #/components/schemas: move the definitions there, so that every reference in the document resolves;
    - errors are documented as they are sent: the envelope, and 400 (not FastAPI's 422) for invalid input.
    """
    build_schema = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = build_schema()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = ERROR_SCHEMA
        components["GatewayError"] = GATEWAY_ERROR_SCHEMA
        for path, operations in schema.get("paths", {}).items():
            for op in operations.values():
                if not isinstance(op, dict):
                    continue
                content = op.get("requestBody", {}).get("content", {})
                for media in content.values():
                    for name, definition in media.get("schema", {}).pop("$defs", {}).items():
                        components.setdefault(name, definition)
                _document_errors(op, "GatewayError" if path.startswith("/gateway/") else "Error")
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


def _document_errors(op: dict[str, Any], schema_name: str) -> None:
    responses = op.setdefault("responses", {})
    responses.pop("422", None)
    for status in (400, 401, 403, 404, 409, 503):
        entry = responses.setdefault(str(status), {"description": _status_codes_for(status)})
        entry["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}
    for status in (402, 429):
        if str(status) in responses:
            responses[str(status)]["content"] = {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
            }


def serve_app() -> FastAPI:
    """The application `seatmeter serve` runs in each worker: migrations already ran, expiry runs in background."""
    seatmeter = build(migrate=False)
    api = create_app(seatmeter)
    stop = threading.Event()

    def expire_loop() -> None:
        while not stop.wait(EXPIRY_INTERVAL_S):
            try:
                expire_holds(seatmeter.uow(), seatmeter.clock.now())
            except Exception:  # a failed sweep is retried at the next tick
                metrics.count("seatmeter_expiry_errors_total")

    routers_lifespan = api.router.lifespan_context  # the gateway closes its upstream client in it

    @asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[None]:
        sweeper = threading.Thread(target=expire_loop, name="seatmeter-expiry", daemon=True)
        sweeper.start()
        # What is built by now lives as long as the worker (modules, the app, its pools): out of the cyclic
        # collector's sight, a full collection walks only what requests made since. Under holds_http load a
        # full collection of the ~140,000 startup objects stopped the worker for 83-115 ms, the p99.5.
        gc.freeze()
        try:
            async with routers_lifespan(served):
                yield
        finally:
            stop.set()

    api.router.lifespan_context = lifespan
    return api
