"""adapters/http_protocol.py: the writes of one event-loop turn reach the socket as one."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from seatmeter.adapters.http_protocol import CoalescingHttpToolsProtocol, WriteCoalescer


class Transport:
    """What a transport was asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)


async def _turn() -> None:
    await asyncio.sleep(0)


def test_the_writes_of_one_turn_are_sent_as_one_write_at_its_end() -> None:
    async def scenario() -> list[tuple[str, Any]]:
        transport = Transport()
        coalescer = WriteCoalescer(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        coalescer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
        coalescer.write(memoryview(b"{}"))
        assert transport.calls == []  # nothing is sent before the turn ends
        assert coalescer.get_write_buffer_size() == 45  # 43 bytes of head, 2 of body
        await _turn()
        coalescer.write(b"next")
        await _turn()
        return transport.calls

    assert asyncio.run(scenario()) == [
        ("write", b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"),
        ("write", b"next"),
    ]


def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        loop = asyncio.get_running_loop()
        closed, aborted = Transport(), Transport()
        first, second = WriteCoalescer(closed, loop), WriteCoalescer(aborted, loop)  # type: ignore[arg-type]
        first.write(b"last words")
        first.close()
        second.write(b"never sent")
        second.abort()
        await _turn()  # the flush queued by the writes finds nothing left to send
        return closed.calls, aborted.calls

    closed, aborted = asyncio.run(scenario())
    assert closed == [("write", b"last words"), ("close", None)]
    assert aborted == [("abort", None)]


def test_a_write_pending_when_the_connection_closes_under_it_is_dropped() -> None:
    async def scenario() -> list[tuple[str, Any]]:
        transport = Transport()
        coalescer = WriteCoalescer(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        coalescer.write(b"too late")
        transport.closing = True  # the peer went away before the turn ended
        await _turn()
        return transport.calls

    assert asyncio.run(scenario()) == []


def test_the_protocol_is_uvicorns_httptools_one_writing_through_a_coalescer() -> None:
    async def scenario() -> Any:
        config = Config(app=lambda scope, receive, send: None)
        protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
        transport = Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport

    protocol, transport = asyncio.run(scenario())
    assert isinstance(protocol, HttpToolsProtocol)
    assert isinstance(protocol.transport, WriteCoalescer) and protocol.client == ("127.0.0.1", 50000)
    assert protocol.transport.is_closing() is False and transport.calls == []
