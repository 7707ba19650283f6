"""A conservative bound of a Messages API request's input tokens, without a tokenizer.

Every token of text covers at least one byte of its UTF-8 encoding, so the byte length of the prompt's
JSON (which adds quotes, keys and escapes, never removes text) bounds its text tokens from above. Images are
priced by their pixels, not their bytes, and the API resizes large images, so each image counts as a fixed
ceiling instead of its base64 size. Fixed allowances cover what the vendor adds around the prompt: a few
tokens per message and the system prompt that comes with tool use.

The bound is deliberately high (English averages about four bytes per token): a hold must cover what the
request can cost, and the settle releases whatever was not used. It never exceeds the largest context window
the vendor offers, since a longer prompt is refused rather than billed (documents sent as base64 would
otherwise count every byte).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from seatmeter.domain.errors import InvalidRequest

__all__ = ["CONTEXT_WINDOW_CEILING", "IMAGE_TOKENS_CEILING", "input_tokens_bound", "requested_max_tokens"]

CONTEXT_WINDOW_CEILING = 1_000_000  # the largest context window of any Claude model

IMAGE_TOKENS_CEILING = 4_800  # the largest image the API accepts, after its resizing, is below this
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators around each message
REQUEST_OVERHEAD_TOKENS = 64
TOOL_USE_OVERHEAD_TOKENS = 1_024  # the tool-use system prompt the vendor adds is a few hundred tokens
_PROMPT_FIELDS = ("system", "messages", "tools", "tool_choice")


def _is_binary_image(block: Mapping[str, Any]) -> bool:
    source = block.get("source")
    return block.get("type") == "image" and isinstance(source, Mapping)


def _measure(value: Any) -> int:
    """Byte length of `value` as JSON, with each image counted as its token ceiling."""
    if isinstance(value, Mapping):
        if _is_binary_image(value):
            return IMAGE_TOKENS_CEILING
        return 2 + sum(_measure(k) + 1 + _measure(v) + 1 for k, v in value.items())
    if isinstance(value, list):
        return 2 + sum(_measure(item) + 1 for item in value)
    return len(json.dumps(value, ensure_ascii=False).encode())


def input_tokens_bound(body: Mapping[str, Any]) -> int:
    """An upper bound of the input tokens the request will be billed for (input, cache writes and reads)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    bound = REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * len(messages)
    bound += sum(_measure(body[field]) for field in _PROMPT_FIELDS if field in body)
    if body.get("tools"):
        bound += TOOL_USE_OVERHEAD_TOKENS
    return min(bound, CONTEXT_WINDOW_CEILING)


def requested_max_tokens(body: Mapping[str, Any]) -> int:
    value = body.get("max_tokens")
    if type(value) is not int or value < 1:
        raise InvalidRequest(f"max_tokens must be a positive whole number, got {value!r}")
    return value
