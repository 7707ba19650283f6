"""The fake upstream must be faithful enough that the official SDK reads it like the real API."""

import anthropic
import pytest

from seatmeter.adapters.fake_anthropic import FakeAnthropic
from seatmeter.adapters.threaded_server import serve_in_thread


@pytest.fixture
def fake():
    return FakeAnthropic(reply="one two three four five", api_key="sk-vendor", cache_read_tokens=7)


@pytest.fixture
def client(fake):
    with (
        serve_in_thread(fake.app()) as url,
        anthropic.Anthropic(
            base_url=url, api_key="unused", max_retries=0, default_headers={"x-api-key": "sk-vendor"}
        ) as client,
    ):
        yield client


def test_the_sdk_reads_a_fake_message_with_usage(client, fake):
    message = client.messages.create(
        model="claude-haiku-4-5", max_tokens=3, messages=[{"role": "user", "content": "count"}]
    )
    assert message.content[0].text == "one two three"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3 and message.usage.cache_read_input_tokens == 7
    assert fake.last_request.body["max_tokens"] == 3


def test_the_sdk_reads_a_fake_stream_to_the_final_message(client, fake):
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three four five"
    assert final.usage.output_tokens == 5 and final.stop_reason == "end_turn"
    assert fake.streams_completed == 1


def test_the_fake_answers_vendor_shaped_errors(client, fake):
    fake.fail_status = 529
    with pytest.raises(anthropic.APIStatusError) as failed:
        client.messages.create(model="claude-haiku-4-5", max_tokens=3, messages=[{"role": "user", "content": "x"}])
    assert failed.value.status_code == 529
    assert failed.value.body["error"]["type"] == "overloaded_error"


def test_the_fake_refuses_a_wrong_vendor_key(fake):
    with serve_in_thread(fake.app()) as url:
        client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, default_headers={"x-api-key": "bad"})
        with client, pytest.raises(anthropic.AuthenticationError):
            client.messages.create(model="m", max_tokens=3, messages=[{"role": "user", "content": "x"}])
