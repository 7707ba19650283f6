"""A bound on the size of a request's body, before anything reads it.

Neither uvicorn nor FastAPI bounds a body: a client could make a worker hold gigabytes in memory. A body whose
`Content-Length` is over the bound is refused at once, unread; one sent without a length (chunked) is refused
as soon as what has arrived passes the bound. The refusal is a 413 in the API's error envelope (in the Messages
API's shape under /gateway), and nothing is written. The default, 32 MiB, is well above a full usage batch:
10,000 events are ~2.3 MiB as usually sent, ~6.3 MiB with the longest fields allowed, and up to ~24 MiB if every
character of 200-character keys is written as a JSON escape of a character outside the BMP.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seatmeter.entrypoints.api.errors import error_response
from seatmeter.entrypoints.api.fastpath import replayed
from seatmeter.entrypoints.gateway.errors import anthropic_error

__all__ = ["BodyLimit"]


class BodyLimit:
    """`max_bytes`: the bound, SEATMETER_MAX_BODY_BYTES (settings.py holds its default)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None:
            if length > self.max_bytes:
                await self._refusal(scope, length)(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server delivers no more than the length it announced
            return
        # No length given: read the body as it comes, up to the bound, then hand it on as it came.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refusal(scope, None)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, replayed(messages, receive), send)

    def _refusal(self, scope: Scope, length: int | None) -> JSONResponse:
        told = f" ({length:,} bytes)" if length is not None else ""
        message = f"the request's body{told} is larger than this server accepts, {self.max_bytes:,} bytes"
        resume = "Send a smaller body: split a usage batch into several (at most 10,000 events each)."
        if scope["path"].startswith("/gateway/"):
            return anthropic_error(413, message, code="request_too_large", resume=resume)
        return error_response("request_too_large", message, resume)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before it gets here
    return None
