"""Request dependencies: the wired App, and the principal behind the request's key.

Both are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread pool, a hop that cost more
than the work itself. The principal is read from the database (in the thread pool) only when the key is not
in the App's short key cache (`services/key_cache.py`, bound `SEATMETER_KEY_CACHE_S`). `key_from` and
`principal_of` are the same steps without a Request, for the lean hold path (`fastpath.py`).
"""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.services.organizations import authenticate, known_principal

__all__ = ["app_of", "get_app", "key_from", "principal", "principal_of"]


def app_of(request: Request) -> App:
    app: App = request.app.state.seatmeter
    return app


async def get_app(request: Request) -> App:
    return app_of(request)


def key_from(authorization: str, api_key: str | None) -> str | None:
    """The key a request presents: the Authorization header's bearer token, else the X-API-Key header."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return api_key


def bearer(request: Request) -> str | None:
    return key_from(request.headers.get("authorization", ""), request.headers.get("x-api-key"))


async def principal_of(app: App, key: str | None) -> Principal:
    known = known_principal(key, app.settings.operator_key, app.keys)
    if known is not None:
        return known
    return await run_in_threadpool(authenticate, app.uow(), key, app.settings.operator_key, app.keys)


async def principal(request: Request) -> Principal:
    return await principal_of(app_of(request), bearer(request))
