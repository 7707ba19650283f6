import json

import pytest

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.messages_usage import StreamMeter, service_tier_of, usage_from_message
from seatmeter.domain.pricing import Usage


def test_usage_reads_every_token_kind_from_a_messages_response():
    usage = usage_from_message(
        {
            "input_tokens": 3,
            "cache_creation_input_tokens": 12_404,
            "cache_read_input_tokens": 7,
            "cache_creation": {"ephemeral_5m_input_tokens": 12_304, "ephemeral_1h_input_tokens": 100},
            "output_tokens": 550,
            "service_tier": "standard",
        }
    )
    assert usage == Usage(input=3, output=550, cache_write_5m=12_304, cache_write_1h=100, cache_read=7)


def test_cache_writes_without_a_breakdown_are_priced_as_five_minute_writes():
    usage = usage_from_message({"input_tokens": 1, "cache_creation_input_tokens": 40, "output_tokens": 2})
    assert usage == Usage(input=1, output=2, cache_write_5m=40)


def test_writes_missing_from_the_breakdown_are_not_dropped():
    usage = usage_from_message(
        {
            "cache_creation_input_tokens": 50,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 30},
        }
    )
    assert (usage.cache_write_5m, usage.cache_write_1h) == (20, 30)


def test_null_counts_are_zero_and_negative_counts_are_refused():
    assert usage_from_message({"input_tokens": 5, "cache_read_input_tokens": None, "output_tokens": 1}).cache_read == 0
    with pytest.raises(InvalidRequest):
        usage_from_message({"input_tokens": -1, "output_tokens": 1})
    with pytest.raises(InvalidRequest):
        usage_from_message({"input_tokens": 1.5, "output_tokens": 1})


def test_batch_service_tier_is_recognised():
    assert service_tier_of({"service_tier": "batch"}) == "batch"
    assert service_tier_of({"service_tier": "priority"}) == "standard"
    assert service_tier_of({}) == "standard"


def _event(name, data):
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


START = _event(
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "usage": {
                "input_tokens": 25,
                "cache_read_input_tokens": 10,
                "cache_creation_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": 1,
            },
        },
    },
)
DELTA = _event(
    "content_block_delta",
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello world"}},
)
END = (
    _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    + _event(
        "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}}
    )
    + _event("message_stop", {"type": "message_stop"})
)


def test_stream_usage_combines_message_start_input_with_message_delta_output():
    meter = StreamMeter()
    for chunk in (START, DELTA, END):
        meter.feed(chunk)
    assert meter.finished and meter.model == "claude-sonnet-4-5"
    assert meter.usage == Usage(input=25, output=15, cache_read=10)


def test_events_split_across_arbitrary_chunks_are_read_whole():
    stream = START + DELTA + DELTA + END
    meter = StreamMeter()
    for i in range(0, len(stream), 7):
        meter.feed(stream[i : i + 7])
    assert meter.deltas == 2 and meter.usage == Usage(input=25, output=15, cache_read=10)


def test_crlf_line_endings_are_understood():
    meter = StreamMeter()
    meter.feed((START + END).replace(b"\n", b"\r\n"))
    assert meter.finished and meter.usage.output == 15


def test_an_interrupted_stream_is_billed_for_the_text_already_generated():
    meter = StreamMeter(max_output_tokens=1000)
    meter.feed(START + DELTA * 4)  # 4 deltas of 11 bytes: at least ceil(44 / 3) = 15 tokens
    assert not meter.finished
    assert meter.usage == Usage(input=25, output=15, cache_read=10)


def test_an_interrupted_stream_is_never_billed_beyond_max_tokens():
    meter = StreamMeter(max_output_tokens=5)
    meter.feed(START + DELTA * 40)
    assert meter.usage.output == 5


def test_message_delta_input_counts_override_the_start_when_the_vendor_sends_them():
    meter = StreamMeter()
    meter.feed(
        START
        + _event(
            "message_delta", {"type": "message_delta", "delta": {}, "usage": {"input_tokens": 30, "output_tokens": 4}}
        )
    )
    assert meter.usage == Usage(input=30, output=4, cache_read=10)


def test_an_error_event_is_kept_for_the_gateway():
    meter = StreamMeter()
    meter.feed(START + _event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}))
    assert meter.error == {"type": "overloaded_error", "message": "x"}
