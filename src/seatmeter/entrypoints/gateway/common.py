"""What every gateway route needs: the caller's key, the pooled upstream client, the headers passed back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request

from seatmeter.adapters.anthropic_upstream import Upstream
from seatmeter.bootstrap import App

__all__ = ["caller_key", "lifespan", "passed_headers", "seatmeter_app", "upstream_for"]

PASSED_RESPONSE_HEADERS = ("content-type", "request-id", "retry-after", "x-should-retry", "anthropic-organization-id")


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    yield
    upstream: Upstream | None = getattr(api.state, "anthropic_upstream", None)
    if upstream is not None:
        await upstream.close()


def seatmeter_app(request: Request) -> App:
    app: App = request.app.state.seatmeter
    return app


def upstream_for(request: Request) -> Upstream:
    """One pooled client per served application, made on first use from the settings."""
    state = request.app.state
    upstream: Upstream | None = getattr(state, "anthropic_upstream", None)
    if upstream is None:
        upstream = state.anthropic_upstream = Upstream.from_settings(seatmeter_app(request).settings)
    return upstream


def caller_key(request: Request) -> str | None:
    """The SDKs send the key as `x-api-key` or as `Authorization: Bearer`; both are accepted."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def passed_headers(upstream: httpx.Response) -> dict[str, str]:
    return {name: upstream.headers[name] for name in PASSED_RESPONSE_HEADERS if name in upstream.headers}
