"""The metered stream on its own: an upstream stream in, ASGI messages out, and `finish` called once."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import httpx

from seatmeter.adapters.anthropic_upstream import Upstream
from seatmeter.domain.messages_usage import StreamMeter
from seatmeter.entrypoints.gateway.stream import MeteredStream


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


STREAM = (
    sse(
        "message_start",
        {
            "type": "message_start",
            "message": {"id": "msg_1", "model": "claude-haiku-4-5", "usage": {"input_tokens": 12, "output_tokens": 1}},
        },
    )
    + sse(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    )
    + sse(
        "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}
    )
    + sse("message_stop", {"type": "message_stop"})
)


async def play(upstream_body: bytes, headers: dict[str, str]) -> tuple[bytes, StreamMeter, list[str]]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=upstream_body, headers={"content-type": "text/event-stream", **headers})

    upstream = Upstream("http://vendor.test", "sk-vendor", transport=httpx.MockTransport(answer))
    response = await upstream.send({"model": "m", "stream": True}, {}, stream=True)
    outcomes: list[str] = []

    async def finish(_meter: StreamMeter, outcome: str) -> None:
        outcomes.append(outcome)

    meter = StreamMeter()
    sent: list[dict[str, Any]] = []
    complete = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            complete.set()

    await MeteredStream(response, meter, finish, {})({"type": "http"}, receive, send)
    await upstream.close()
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return body, meter, outcomes


def test_a_stream_is_passed_through_whole_and_metered_and_finished_once() -> None:
    body, meter, outcomes = asyncio.run(play(STREAM, {}))
    assert body == STREAM
    assert meter.finished and (meter.usage.input, meter.usage.output) == (12, 7)
    assert outcomes == ["completed"]


def test_a_compressed_upstream_stream_is_metered_and_passed_on_decoded() -> None:
    body, meter, outcomes = asyncio.run(play(gzip.compress(STREAM), {"content-encoding": "gzip"}))
    assert body == STREAM  # the content-encoding header is not passed on, so neither is the compression
    assert meter.finished and meter.usage.output == 7
    assert outcomes == ["completed"]
