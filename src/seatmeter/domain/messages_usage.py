"""Token usage of Anthropic Messages API calls, read from a response body or from its server-sent events.

A Messages response carries `usage` with `input_tokens`, `output_tokens`, `cache_read_input_tokens` and the
cache writes, split by lifetime in `cache_creation.ephemeral_5m_input_tokens` and `ephemeral_1h_input_tokens`.
Older responses carry only `cache_creation_input_tokens`; those writes are 5-minute writes (the only kind that
existed then). Each kind lands in its own `Usage` field, so cached tokens are counted once.

A stream reports usage twice: `message_start` carries the input side (and a first output count), and
`message_delta`, near the end, carries cumulative counts. `StreamMeter` reads the raw bytes of the stream as
they pass through and knows the usage at any moment, including when the stream stops early: then the output
is bounded from the deltas actually generated, because the vendor bills what it generated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.pricing import Usage

__all__ = ["BYTES_PER_TOKEN_FLOOR", "StreamMeter", "service_tier_of", "usage_from_message"]

# A generated token decodes to a few bytes of text; three is below the average for English and code, so an
# interrupted stream is billed for at least as many tokens as it is likely to have produced.
BYTES_PER_TOKEN_FLOOR = 3


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise InvalidRequest(f"upstream usage field {name} must be a whole number of tokens, got {value!r}")
    return value


def usage_from_message(usage: Mapping[str, Any]) -> Usage:
    """The `Usage` of a Messages API `usage` object (from a response, `message_start` or `message_delta`)."""
    if not isinstance(usage, Mapping):
        raise InvalidRequest("upstream usage must be an object")
    cache_creation = usage.get("cache_creation")
    total_writes = _count(usage, "cache_creation_input_tokens")
    if isinstance(cache_creation, Mapping):
        write_5m = _count(cache_creation, "ephemeral_5m_input_tokens")
        write_1h = _count(cache_creation, "ephemeral_1h_input_tokens")
        # Writes reported in the total but not in the breakdown are priced as 5-minute writes, never dropped.
        write_5m += max(0, total_writes - write_5m - write_1h)
    else:
        write_5m, write_1h = total_writes, 0
    return Usage(
        input=_count(usage, "input_tokens"),
        output=_count(usage, "output_tokens"),
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        cache_read=_count(usage, "cache_read_input_tokens"),
    )


def service_tier_of(usage: Mapping[str, Any]) -> str:
    """seatmeter's tier for a response: `batch` when the vendor says so, `standard` otherwise."""
    return "batch" if usage.get("service_tier") == "batch" else "standard"


@dataclass
class StreamMeter:
    """Follows a Messages API event stream, fed with raw bytes in whatever chunks they arrive."""

    max_output_tokens: int | None = None
    model: str | None = None
    message_id: str | None = None
    started: bool = False
    finished: bool = False  # message_stop seen
    final_usage_seen: bool = False  # message_delta seen: its counts are the final, cumulative ones
    error: Mapping[str, Any] | None = None
    deltas: int = 0
    delta_bytes: int = 0
    service_tier: str = "standard"

    def __post_init__(self) -> None:
        self._buffer = b""
        self._reported: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream; complete events are read, a partial one waits for the rest."""
        self._buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n\n", 1)
            self._read_event(raw)

    def _read_event(self, raw: bytes) -> None:
        data_lines = [line[5:].lstrip(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")]
        if not data_lines:
            return
        try:
            event = json.loads(b"\n".join(data_lines))
        except ValueError:
            return  # not ours to judge: the client sees the same bytes
        if isinstance(event, Mapping):
            self.read(event)

    def read(self, event: Mapping[str, Any]) -> None:
        """Take one decoded event."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.started = True
            self.model = message.get("model")
            self.message_id = message.get("id")
            usage = message.get("usage") or {}
            self._merge(usage)
            self.service_tier = service_tier_of(usage)
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            self.deltas += 1
            for key in ("text", "partial_json", "thinking"):
                value = delta.get(key)
                if isinstance(value, str):
                    self.delta_bytes += len(value.encode())
        elif kind == "message_delta":
            self.final_usage_seen = True
            self._merge(event.get("usage") or {})
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.error = event.get("error") or {}

    def _merge(self, usage: Mapping[str, Any]) -> None:
        # message_delta counts are cumulative; a field it leaves out keeps message_start's value.
        for name, value in usage.items():
            if value is not None:
                self._reported[name] = value

    @property
    def usage(self) -> Usage:
        """What to bill now: the reported counts, and for a stream cut short, a bound of what was generated."""
        reported = usage_from_message(self._reported)
        if self.final_usage_seen:
            return reported
        generated = max(reported.output, self.deltas, -(-self.delta_bytes // BYTES_PER_TOKEN_FLOOR))
        if self.max_output_tokens is not None:
            generated = min(generated, self.max_output_tokens)
        return Usage(
            input=reported.input,
            output=max(generated, reported.output),
            cache_write_5m=reported.cache_write_5m,
            cache_write_1h=reported.cache_write_1h,
            cache_read=reported.cache_read,
        )
