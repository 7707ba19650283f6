"""Request dependencies: the wired App, and the principal behind the request's key.

Both are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread pool, a hop that cost more
than the work itself. The principal is read from the database (in the thread pool) only when the key is not
in the App's short key cache (`services/key_cache.py`, bound `SEATMETER_KEY_CACHE_S`).
"""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.services.organizations import authenticate, known_principal

__all__ = ["app_of", "get_app", "principal"]


def app_of(request: Request) -> App:
    app: App = request.app.state.seatmeter
    return app


async def get_app(request: Request) -> App:
    return app_of(request)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key")


async def principal(request: Request) -> Principal:
    app = app_of(request)
    key = bearer(request)
    known = known_principal(key, app.settings.operator_key, app.keys)
    if known is not None:
        return known
    return await run_in_threadpool(authenticate, app.uow(), key, app.settings.operator_key, app.keys)
