"""Pass a vendor's event stream to the client as it arrives, metering it, and settle once it ends however it ends.

Starlette's StreamingResponse learns of a client that went away only by cancelling the body iterator, at a
point it does not choose. This response watches for the disconnect itself, so that in every case (the stream
completed, the client left, the upstream broke) the upstream connection is closed and `finish` runs exactly
once, shielded from cancellation: a member who walks away mid-stream still pays for what was generated.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from seatmeter.domain.messages_usage import StreamMeter

__all__ = ["MeteredStream", "StreamEnd", "unless_disconnected"]

T = TypeVar("T")

log = logging.getLogger("seatmeter.gateway")

StreamEnd = Callable[[StreamMeter, str], Awaitable[None]]  # (meter, "completed" | "disconnected" | "failed")


class MeteredStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self, upstream: httpx.Response, meter: StreamMeter, finish: StreamEnd, headers: dict[str, str]
    ) -> None:
        self.upstream = upstream
        self.meter = meter
        self.finish = finish
        self.status_code = upstream.status_code
        self.background = None
        self.init_headers({**headers, "cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = "failed"
        try:
            async with anyio.create_task_group() as group:

                async def pump() -> None:
                    nonlocal outcome
                    try:
                        await send(
                            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
                        )
                        async for chunk in self.upstream.aiter_raw():
                            self.meter.feed(chunk)
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    except OSError:  # servers on ASGI 2.4 and later report a client gone from send
                        outcome = "disconnected"
                    else:
                        outcome = "completed"
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    nonlocal outcome
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if outcome != "completed":
                        outcome = "disconnected"
                    group.cancel_scope.cancel()

                group.start_soon(pump)
                group.start_soon(watch)
        except* httpx.HTTPError as broken:
            log.warning("the upstream stream broke after %d deltas: %s", self.meter.deltas, broken.exceptions[0])
            outcome = "failed"
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
                await self.finish(self.meter, outcome)


async def unless_disconnected(receive: Receive, work: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
    """Run `work` while watching the client: `(True, result)`, or `(False, None)` once the client has gone
    (and `work` is cancelled, which closes its upstream connection)."""
    result: T | None = None
    done = False
    async with anyio.create_task_group() as group:

        async def run() -> None:
            nonlocal result, done
            result = await work()
            done = True
            group.cancel_scope.cancel()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(run)
        group.start_soon(watch)
    return done, result
