"""A lean path for the two requests every metered call makes: `POST /v1/organizations/{org}/holds` and
`POST /v1/organizations/{org}/holds/{hold}/settle`, without FastAPI's routing and dependency solving.

In a profile of `holds_http`, routing, `solve_dependencies` and Starlette's per-route wrappers were about half of
the event loop's time. This middleware answers those two requests itself, with the same steps the routes take in
the same order: the same JSON parse and the same pydantic model (`from_attributes=True`, as FastAPI validates a
body), the same key lookup (`deps.key_from`, `deps.principal_of`), the same work (`routes_core.hold_response`,
`routes_core.settle_json` in the thread pool) and the same exception handlers. Anything it does not take on
goes to the FastAPI app with the body it read fed again: another method or path, a content type other than
plain `application/json`, an empty or unfinished body, JSON that does not parse, or a body the model refuses
(FastAPI then answers exactly as it always did, its 400 envelope and the 401 that comes before it included).
The routes stay in FastAPI, so `/openapi.json` is unchanged.

It sits inside FastAPI's ServerErrorMiddleware (added with `add_middleware`), so an exception that no handler
takes goes there as from a route: the 500 envelope, and the exception re-raised for the server to log.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seatmeter.bootstrap import App
from seatmeter.entrypoints.api import schemas
from seatmeter.entrypoints.api.deps import key_from, principal_of
from seatmeter.entrypoints.api.routes_core import hold_response, settle_json

__all__ = ["HoldFastPath"]

ORGANIZATIONS = "/v1/organizations/"


def hot_route(path: str) -> tuple[str, str] | None:
    """(org, "") for the holds path, (org, hold) for a settle, None for any other path; segments as Starlette
    matches them (`[^/]+`)."""
    if not path.startswith(ORGANIZATIONS):
        return None
    parts = path[len(ORGANIZATIONS) :].split("/")
    if len(parts) == 2 and parts[1] == "holds" and parts[0]:
        return parts[0], ""
    if len(parts) == 4 and parts[1] == "holds" and parts[3] == "settle" and parts[0] and parts[2]:
        return parts[0], parts[2]
    return None


def headers_of(scope: Scope) -> tuple[str | None, str, str | None]:
    """Content-Type, Authorization and X-API-Key, each the first one sent (as Starlette's `headers.get`)."""
    content_type: str | None = None
    authorization: str | None = None
    api_key: str | None = None
    for name, value in scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1")
    return content_type, authorization or "", api_key


async def read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """Every message received, and the whole body; None when the client went away before its end."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def replayed(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives the messages already read again, then the client's own."""
    pending = deque(messages)

    async def again() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return again


class HoldFastPath:
    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        route = hot_route(scope["path"])
        content_type, authorization, api_key = headers_of(scope)
        if route is None or content_type is None or content_type.lower() != "application/json":
            await self.app(scope, receive, send)
            return
        messages, body = await read_body(receive)
        receive = replayed(messages, receive)
        answer = self._answer(route, body) if body else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await answer(key_from(authorization, api_key))
        except Exception as exc:
            response = await self._handled(Request(scope, receive), exc)
        await response(scope, receive, send)

    def _answer(self, route: tuple[str, str], body: bytes) -> Callable[[str | None], Awaitable[Response]] | None:
        """What answers the request once the caller's key is known, or None for FastAPI to answer it."""
        try:
            data = json.loads(body)
        except Exception:  # FastAPI's own answer: invalid JSON is a 400, a body it cannot decode another
            return None
        app: App = self.api.state.seatmeter
        org, hold = route
        if not hold:
            try:
                hold_body = schemas.HoldCreate.model_validate(data, from_attributes=True)
            except ValidationError:
                return None

            async def create(key: str | None) -> Response:
                return await hold_response(app, await principal_of(app, key), org, hold_body)

            return create
        try:
            settle_body = schemas.HoldSettle.model_validate(data, from_attributes=True)
        except ValidationError:
            return None

        async def settle(key: str | None) -> Response:
            who = await principal_of(app, key)
            return JSONResponse(await run_in_threadpool(settle_json, app, who, org, hold, settle_body))

        return settle

    async def _handled(self, request: Request, exc: Exception) -> Response:
        """The response the app's handler for `exc` gives, as Starlette's ExceptionMiddleware picks it; an
        exception with none but the catch-all (500) handler is raised again, for ServerErrorMiddleware."""
        handlers: dict[Any, Callable[..., Any]] = {
            key: handler for key, handler in self.api.exception_handlers.items() if key not in (500, Exception)
        }
        handler = handlers.get(exc.status_code) if isinstance(exc, HTTPException) else None
        if handler is None:
            handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
        if handler is None:
            raise exc
        if is_async_callable(handler):
            response: Response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        return response
