"""uvicorn's httptools protocol, with the writes of one event-loop turn sent to the socket together.

uvicorn writes a response in two calls, the status line and headers, then the body, and uvloop sends each at
once: two `send()` system calls and two TCP segments for every answer. On loopback the kernel runs the receiving
side inside each call, and in a profile of `holds_http` those two writes held the event loop for about a sixth of
its time. Here a connection's writes are kept until the end of the loop's turn and sent as one: the headers and
body of a response (and anything else written in the same turn, such as the chunks of a stream that arrive
together) travel in one call. Nothing waits for a timer: the write is queued with `call_soon`, behind the
callbacks already ready, so a streamed chunk is still sent in the turn it was produced.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol", "WriteCoalescer"]


class WriteCoalescer:
    """A transport whose `write`s of one loop turn reach the real transport as one; everything else is the real
    transport's. `close` sends what is pending first; `abort` drops it, as the real transport drops its buffer."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(chunk) for chunk in self._pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`seatmeter serve`'s HTTP protocol (`uvicorn.run(http=...)`): uvicorn's own, writing through a WriteCoalescer."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescer: Any = WriteCoalescer(transport, self.loop)
        super().connection_made(coalescer)
