"""The FastAPI application: routes, error envelope, health and metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from sqlalchemy import text

from seatmeter import __version__
from seatmeter.adapters import metrics
from seatmeter.bootstrap import App, build
from seatmeter.entrypoints.api import errors
from seatmeter.entrypoints.api.routes_core import router as core_router
from seatmeter.entrypoints.web import routes as web

__all__ = ["create_app"]


def create_app(app: App | None = None) -> FastAPI:
    seatmeter = app or build()
    api = FastAPI(
        title="seatmeter",
        version=__version__,
        description="Billing and real-time spend control: seats, pooled usage, credits and hierarchical caps. "
        'Money is a decimal string of USD. Errors: {"error": {"code", "message", "resume"}}.',
    )
    api.state.seatmeter = seatmeter
    errors.install(api)
    api.include_router(core_router)
    web.install(api)  # notifications API and the /app dashboard

    @api.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        with seatmeter.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    @api.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    def prometheus() -> str:
        return metrics.render()

    return api
