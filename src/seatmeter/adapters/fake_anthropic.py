"""A local stand-in for the Anthropic Messages API, for tests and demos of the gateway with no network.

It answers `POST /v1/messages` like the vendor does, as one JSON message or as the real sequence of
server-sent events (`message_start` with usage, `content_block_start`, `ping`, `content_block_delta`s,
`content_block_stop`, `message_delta` with the final usage, `message_stop`). It writes one output token per
word of its reply, stops at `max_tokens` as the vendor would, and records every request it receives so a test
can see what reached it (a lowered `max_tokens`, the vendor key). It can stream slowly, fail with the
vendor's error shapes before or in the middle of a stream, and notices when its reader goes away.

Message Batches are answered too: a created batch is `in_progress`, and ended with every request succeeded
(at the batch tier) the first time it is retrieved; its results are JSON lines at its `results_url`.

    fake = FakeAnthropic(reply="one two three", api_key="sk-vendor")
    uvicorn.run(fake.app(), port=9999)
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["FakeAnthropic", "ReceivedRequest", "bytes_per_token_input"]

DEFAULT_REPLY = (
    "Seatmeter meters this reply one word at a time, so every word you read here is a token the member pays for."
)


def bytes_per_token_input(body: Mapping[str, Any]) -> int:
    """The fake's input count: a quarter of the prompt's JSON bytes, about what English text tokenizes to."""
    prompt = {k: body[k] for k in ("system", "messages", "tools") if k in body}
    return max(1, math.ceil(len(json.dumps(prompt).encode()) / 4))


@dataclass(frozen=True)
class ReceivedRequest:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeAnthropic:
    reply: str = DEFAULT_REPLY
    api_key: str | None = None  # when set, requests must carry it in x-api-key
    count_input: Callable[[Mapping[str, Any]], int] = bytes_per_token_input
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    service_tier: str = "standard"
    delay_s: float = 0.0  # pause before each streamed event after message_start
    response_delay_s: float = 0.0  # pause before answering a request that is not streamed
    fail_status: int | None = None  # answer every request with this vendor error
    fail_type: str = "overloaded_error"
    fail_after_deltas: int | None = None  # in a stream, send an `error` event after this many deltas
    requests: list[ReceivedRequest] = field(default_factory=list)
    streams_started: int = 0
    streams_completed: int = 0
    streams_abandoned: int = 0  # the reader went away before message_stop
    batches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: count(1))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/messages/batches", self._create_batch, methods=["POST"]),
                Route("/v1/messages/batches/{batch_id}", self._retrieve_batch, methods=["GET"]),
                Route("/v1/messages/batches/{batch_id}/results", self._batch_results, methods=["GET"]),
            ]
        )

    def reset(self) -> None:
        """Back to a well-behaved upstream with nothing received (one server can then serve many tests)."""
        fresh = FakeAnthropic(api_key=self.api_key)
        for name in (
            "reply",
            "count_input",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "cache_read_tokens",
            "service_tier",
            "delay_s",
            "response_delay_s",
            "fail_status",
            "fail_type",
            "fail_after_deltas",
            "streams_started",
            "streams_completed",
            "streams_abandoned",
        ):
            setattr(self, name, getattr(fresh, name))
        self.requests.clear()
        self.batches.clear()

    @property
    def last_request(self) -> ReceivedRequest:
        return self.requests[-1]

    # -- the endpoint -------------------------------------------------------------------------------
    async def _messages(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._error(400, "invalid_request_error", "The request body is not valid JSON.")
        self.requests.append(ReceivedRequest(dict(request.headers), body))
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if self.fail_status is not None:
            return self._error(self.fail_status, self.fail_type, "The fake upstream was told to fail.")
        max_tokens = body.get("max_tokens")
        if type(max_tokens) is not int or max_tokens < 1 or not body.get("messages") or not body.get("model"):
            return self._error(400, "invalid_request_error", "model, messages and max_tokens are required")
        words = self.reply.split()
        generated = words[:max_tokens]
        stop_reason = "max_tokens" if len(words) > max_tokens else "end_turn"
        usage = self._usage(body, output_tokens=len(generated))
        message_id = f"msg_fake{next(self._ids):06d}"
        if body.get("stream"):
            return StreamingResponse(
                self._events(message_id, body["model"], generated, stop_reason, usage),
                media_type="text/event-stream",
                headers={"request-id": f"req_{message_id}"},
            )
        await asyncio.sleep(self.response_delay_s)
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": " ".join(generated)}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        return JSONResponse(message, headers={"request-id": f"req_{message_id}"})

    async def _count_tokens(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(ReceivedRequest(dict(request.headers), body))
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        return JSONResponse({"input_tokens": self.count_input(body)})

    def _usage(self, body: Mapping[str, Any], *, output_tokens: int) -> dict[str, Any]:
        writes = self.cache_write_5m_tokens + self.cache_write_1h_tokens
        return {
            "input_tokens": self.count_input(body),
            "cache_creation_input_tokens": writes,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            },
            "output_tokens": output_tokens,
            "service_tier": self.service_tier,
        }

    async def _events(
        self, message_id: str, model: str, words: list[str], stop_reason: str, usage: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        self.streams_started += 1
        stopped = False
        try:
            start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
            yield _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            yield _sse("ping", {"type": "ping"})
            for i, word in enumerate(words):
                if self.fail_after_deltas is not None and i == self.fail_after_deltas:
                    yield _sse(
                        "error",
                        {"type": "error", "error": {"type": self.fail_type, "message": "The fake upstream failed."}},
                    )
                    stopped = True
                    return
                await asyncio.sleep(self.delay_s)
                text = word if i == 0 else f" {word}"
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
                )
            await asyncio.sleep(self.delay_s)
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
            yield _sse("message_stop", {"type": "message_stop"})
            stopped = True
            self.streams_completed += 1
        finally:
            if not stopped:
                self.streams_abandoned += 1

    # -- Message Batches -----------------------------------------------------------------------------
    async def _create_batch(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(ReceivedRequest(dict(request.headers), body))
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        batch_id = f"msgbatch_fake{next(self._ids):06d}"
        self.batches[batch_id] = body["requests"]
        return JSONResponse(self._batch(batch_id, ended=False, base_url=str(request.base_url)))

    async def _retrieve_batch(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        if batch_id not in self.batches:
            return self._error(404, "not_found_error", f"no batch {batch_id}")
        return JSONResponse(self._batch(batch_id, ended=True, base_url=str(request.base_url)))

    async def _batch_results(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        if batch_id not in self.batches:
            return self._error(404, "not_found_error", f"no batch {batch_id}")
        lines = []
        for item in self.batches[batch_id]:
            params = item["params"]
            words = self.reply.split()[: params["max_tokens"]]
            usage = {**self._usage(params, output_tokens=len(words)), "service_tier": "batch"}
            message = {
                "id": f"msg_fake{next(self._ids):06d}",
                "type": "message",
                "role": "assistant",
                "model": params["model"],
                "content": [{"type": "text", "text": " ".join(words)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
            lines.append(
                json.dumps({"custom_id": item["custom_id"], "result": {"type": "succeeded", "message": message}})
            )
        return Response("\n".join(lines) + "\n", media_type="application/binary")

    def _batch(self, batch_id: str, *, ended: bool, base_url: str) -> dict[str, Any]:
        size = len(self.batches[batch_id])
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else size,
                "succeeded": size if ended else 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": "2026-11-15T11:00:00Z",
            "expires_at": "2026-11-16T11:00:00Z",
            "ended_at": "2026-11-15T11:01:00Z" if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{base_url.rstrip('/')}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    @staticmethod
    def _error(status: int, error_type: str, message: str) -> JSONResponse:
        return JSONResponse({"type": "error", "error": {"type": error_type, "message": message}}, status_code=status)


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
