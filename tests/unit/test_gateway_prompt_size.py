import base64
import json

import pytest

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.prompt_size import (
    CONTEXT_WINDOW_CEILING,
    IMAGE_TOKENS_CEILING,
    input_tokens_bound,
    requested_max_tokens,
)


def test_bound_is_at_least_the_utf8_bytes_of_the_prompt_text():
    text = "Résumé des coûts: 費用の概要 " * 50
    body = {"model": "m", "max_tokens": 10, "system": "Be brief.", "messages": [{"role": "user", "content": text}]}
    assert input_tokens_bound(body) >= len(text.encode()) + len(b"Be brief.")


def test_every_message_and_content_block_counts():
    one = {"messages": [{"role": "user", "content": "hi"}]}
    three = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "more " * 100}]},
        ]
    }
    assert input_tokens_bound(three) > input_tokens_bound(one) + 500


def test_an_image_counts_as_its_token_ceiling_not_its_base64_size():
    data = base64.b64encode(b"\x89PNG" + b"\0" * 300_000).decode()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ]
    }
    bound = input_tokens_bound(body)
    assert IMAGE_TOKENS_CEILING < bound < IMAGE_TOKENS_CEILING + 500


def test_tools_add_their_schema_and_the_tool_use_allowance():
    tool = {"name": "get_weather", "description": "Weather for a city", "input_schema": {"type": "object"}}
    without = {"messages": [{"role": "user", "content": "hi"}]}
    with_tools = {**without, "tools": [tool]}
    assert input_tokens_bound(with_tools) - input_tokens_bound(without) >= 1024 + len(json.dumps(tool)) - 10


def test_a_request_without_messages_is_refused():
    with pytest.raises(InvalidRequest):
        input_tokens_bound({"messages": []})
    with pytest.raises(InvalidRequest):
        input_tokens_bound({})


@pytest.mark.parametrize("value", [None, 0, -5, 1.5, "100", True])
def test_max_tokens_must_be_a_positive_integer(value):
    with pytest.raises(InvalidRequest):
        requested_max_tokens({"max_tokens": value})


def test_max_tokens_is_read():
    assert requested_max_tokens({"max_tokens": 1024}) == 1024


def test_a_large_document_is_bounded_by_the_largest_context_window():
    pdf = base64.b64encode(b"%PDF-1.7" + b"\0" * 3_000_000).decode()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}
                ],
            }
        ]
    }
    assert input_tokens_bound(body) == CONTEXT_WINDOW_CEILING
