"""The official `anthropic` SDK, pointed at seatmeter's gateway, talking to a local upstream on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import anthropic
import httpx
import pytest
from sqlalchemy import select

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.fake_anthropic import FakeAnthropic
from seatmeter.adapters.tables import holds, limit_accounts, usage_events
from seatmeter.adapters.threaded_server import serve_in_thread
from seatmeter.bootstrap import App
from seatmeter.domain.money import Money
from seatmeter.domain.pricing import Usage
from seatmeter.entrypoints.api.app import create_app
from tests.conftest import NOW, Api, Org, add_member, create_org, make_app

VENDOR_KEY = "sk-ant-vendor-test"
SONNET = "claude-sonnet-4-6"  # priced as Sonnet 4.5; the SDK warns that 4.5 is deprecated
HELLO = [{"role": "user", "content": "Say hello."}]


@dataclass
class Stack:
    app: App
    url: str
    api: Api
    fake: FakeAnthropic
    org: Org
    member: dict[str, Any]
    clients: list[anthropic.Anthropic] = field(default_factory=list)

    def client(self, **kw: Any) -> anthropic.Anthropic:
        client = anthropic.Anthropic(
            base_url=f"{self.url}/gateway/anthropic",
            api_key=kw.pop("api_key", self.member["api_key"]),
            max_retries=0,
            **kw,
        )
        self.clients.append(client)
        return client

    def async_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url=f"{self.url}/gateway/anthropic", api_key=self.member["api_key"], max_retries=0
        )

    def cap_member(self, limit: str | None) -> None:
        self.api.put(
            f"/v1/organizations/{self.org.id}/caps/members/{self.member['id']}",
            {"limit": limit},
            key=self.org.owner_key,
            expect=200,
        )

    def events(self) -> list[Any]:
        with self.app.engine.connect() as conn:
            return list(conn.execute(select(usage_events).where(usage_events.c.organization_id == self.org.id)))

    def hold(self, hold_id: str) -> Any:
        with self.app.engine.connect() as conn:
            return conn.execute(
                select(holds).where(holds.c.organization_id == self.org.id, holds.c.id == hold_id)
            ).one()

    def held_nano(self) -> int:
        with self.app.engine.connect() as conn:
            return sum(
                conn.execute(
                    select(limit_accounts.c.held_nano).where(limit_accounts.c.organization_id == self.org.id)
                ).scalars()
            )

    def price(self, usage: Usage, tier: str = "standard") -> Money:
        return self.app.prices.get().cost(SONNET, usage, NOW, tier).cost


def usage_of(message: Any) -> Usage:
    u = message.usage
    creation = u.cache_creation
    return Usage(
        input=u.input_tokens,
        output=u.output_tokens,
        cache_read=u.cache_read_input_tokens or 0,
        cache_write_5m=creation.ephemeral_5m_input_tokens if creation else 0,
        cache_write_1h=creation.ephemeral_1h_input_tokens if creation else 0,
    )


def wait_for(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic(api_key=VENDOR_KEY)
    with serve_in_thread(fake.app()) as url:
        yield fake, url


@pytest.fixture
def stack(database_url: str, clock: FixedClock, upstream: tuple[FakeAnthropic, str]) -> Iterator[Stack]:
    fake, upstream_url = upstream
    fake.reset()
    app = make_app(database_url, clock, anthropic_upstream=upstream_url, anthropic_api_key=VENDOR_KEY)
    try:
        with serve_in_thread(create_app(app)) as url, httpx.Client(base_url=url) as http:
            api = Api(http)  # type: ignore[arg-type]
            org = create_org(api)
            api.post(
                f"/v1/organizations/{org.id}/credits/purchases",
                {"amount": "100.00", "idempotency_key": "buy-1"},
                key=org.owner_key,
                expect=201,
            )
            member = add_member(api, org, "dev@acme.test")
            stack = Stack(app, url, api, fake, org, member)
            yield stack
            for client in stack.clients:
                client.close()
    finally:
        app.engine.dispose()


def test_a_message_costs_exactly_the_published_price_of_its_usage(stack: Stack) -> None:
    # DESIGN.md's check (Sonnet 4.5 and 4.6 share prices):
    # 3 input + 12,304 cache-write (5 min) + 550 output tokens = $0.054399.
    stack.fake.reply = " ".join(["word"] * 550)
    stack.fake.count_input = lambda body: 3
    stack.fake.cache_write_5m_tokens = 12_304
    raw = stack.client().messages.with_raw_response.create(model=SONNET, max_tokens=1024, messages=HELLO)
    message = raw.parse()
    assert usage_of(message) == Usage(input=3, output=550, cache_write_5m=12_304)
    (event,) = stack.events()
    assert Money(event.cost_nano) == Money.parse("0.054399") == stack.price(usage_of(message))
    assert raw.headers["x-seatmeter-cost"] == "0.054399"
    assert stack.hold(raw.headers["x-seatmeter-hold"]).status == "settled"
    assert stack.held_nano() == 0


def test_the_upstream_sees_the_vendor_key_and_never_the_member_key(stack: Stack) -> None:
    stack.client().messages.create(model=SONNET, max_tokens=16, messages=HELLO)
    headers = stack.fake.last_request.headers
    assert headers["x-api-key"] == VENDOR_KEY
    assert stack.member["api_key"] not in " ".join(headers.values())


def test_a_stream_passes_through_and_is_settled_from_its_usage(stack: Stack) -> None:
    stack.fake.cache_read_tokens = 2_000
    with stack.client().messages.stream(model=SONNET, max_tokens=1024, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == stack.fake.reply
    wait_for(lambda: len(stack.events()) == 1)
    (event,) = stack.events()
    assert event.cache_read_tokens == 2_000 and event.output_tokens == final.usage.output_tokens
    assert Money(event.cost_nano) == stack.price(usage_of(final))
    wait_for(lambda: stack.held_nano() == 0)


def test_the_async_client_is_metered_streaming_and_not(stack: Stack) -> None:
    async def calls() -> tuple[Any, Any]:
        async with stack.async_client() as client:
            plain = await client.messages.create(model=SONNET, max_tokens=64, messages=HELLO)
            async with client.messages.stream(model=SONNET, max_tokens=64, messages=HELLO) as stream:
                streamed = await stream.get_final_message()
            return plain, streamed

    plain, streamed = asyncio.run(calls())
    wait_for(lambda: len(stack.events()) == 2)
    costs = sorted(Money(e.cost_nano) for e in stack.events())
    assert costs == sorted([stack.price(usage_of(plain)), stack.price(usage_of(streamed))])
    assert streamed.content[0].text == stack.fake.reply


def test_a_member_over_their_cap_gets_an_error_through_the_sdk_and_nothing_is_forwarded(stack: Stack) -> None:
    stack.cap_member("0.00")
    with pytest.raises(anthropic.RateLimitError) as refused:
        stack.client().messages.create(model=SONNET, max_tokens=256, messages=HELLO)
    error = refused.value.body["error"]  # type: ignore[index]
    assert error["type"] == "rate_limit_error" and error["code"] == "member_cap_reached"
    assert "raises" in error["resume"]
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert stack.fake.requests == [] and stack.events() == []


def test_a_partial_grant_lowers_max_tokens_as_the_upstream_sees_it(stack: Stack) -> None:
    stack.fake.reply = " ".join(["token"] * 3000)
    stack.cap_member("0.01")
    raw = stack.client().messages.with_raw_response.create(model=SONNET, max_tokens=4096, messages=HELLO)
    message = raw.parse()
    lowered = stack.fake.last_request.body["max_tokens"]
    assert 0 < lowered < 4096
    assert raw.headers["x-seatmeter-max-tokens"] == str(lowered)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == lowered
    (event,) = stack.events()
    assert Money(event.cost_nano) <= Money.parse("0.01") and not event.exceeded_hold


def test_a_client_that_disconnects_mid_stream_still_pays_for_what_was_generated(stack: Stack) -> None:
    stack.fake.reply = " ".join(["slow"] * 200)
    stack.fake.delay_s = 0.02
    seen = 0
    with stack.client().messages.stream(model=SONNET, max_tokens=1000, messages=HELLO) as stream:
        hold_id = stream.response.headers["x-seatmeter-hold"]
        for event in stream:
            if event.type == "content_block_delta":
                seen += 1
                if seen == 5:
                    break
    wait_for(lambda: stack.hold(hold_id).status != "open")
    assert stack.hold(hold_id).status == "settled"
    wait_for(lambda: stack.fake.streams_abandoned == 1)  # the gateway stopped the generation upstream too
    (event,) = stack.events()
    assert 5 <= event.output_tokens < 200
    assert event.input_tokens > 0
    usage = Usage(input=event.input_tokens, output=event.output_tokens)
    assert Money(event.cost_nano) == stack.price(usage) > Money.zero()
    assert stack.held_nano() == 0


def test_an_upstream_error_voids_the_hold_and_reaches_the_client_in_the_vendor_shape(stack: Stack) -> None:
    stack.fake.fail_status = 529
    with pytest.raises(anthropic.APIStatusError) as failed:
        stack.client().messages.create(model=SONNET, max_tokens=64, messages=HELLO)
    assert failed.value.status_code == 529
    assert failed.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert stack.hold(failed.value.response.headers["x-seatmeter-hold"]).status == "voided"
    assert stack.events() == [] and stack.held_nano() == 0


def test_an_error_in_the_middle_of_a_stream_voids_the_hold(stack: Stack) -> None:
    stack.fake.fail_after_deltas = 3
    with (
        pytest.raises(anthropic.APIStatusError),
        stack.client().messages.stream(model=SONNET, max_tokens=64, messages=HELLO) as stream,
    ):
        hold_id = stream.response.headers["x-seatmeter-hold"]
        stream.get_final_message()
    wait_for(lambda: stack.hold(hold_id).status == "voided")
    assert stack.events() == []


def test_an_unknown_model_is_refused_before_anything_is_forwarded(stack: Stack) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        stack.client().messages.create(model="claude-imaginary-9", max_tokens=64, messages=HELLO)
    assert refused.value.body["error"]["code"] == "unknown_model"  # type: ignore[index]
    assert stack.fake.requests == []


def test_a_wrong_key_is_an_authentication_error(stack: Stack) -> None:
    with pytest.raises(anthropic.AuthenticationError) as refused:
        stack.client(api_key="sk-not-a-seatmeter-key").messages.create(model=SONNET, max_tokens=8, messages=HELLO)
    assert refused.value.body["error"]["code"] == "unauthenticated"  # type: ignore[index]
    assert stack.fake.requests == []


def test_the_key_is_also_accepted_as_x_api_key(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.url}/gateway/anthropic/v1/messages",
        headers={"x-api-key": stack.member["api_key"], "anthropic-version": "2023-06-01"},
        json={"model": SONNET, "max_tokens": 8, "messages": HELLO},
    )
    assert response.status_code == 200 and response.json()["type"] == "message"
    assert stack.fake.last_request.headers["anthropic-version"] == "2023-06-01"


def test_a_service_key_meters_the_member_it_names(stack: Stack) -> None:
    client = stack.client(api_key=stack.org.service_key, default_headers={"x-seatmeter-member": stack.member["id"]})
    client.messages.create(model=SONNET, max_tokens=8, messages=HELLO)
    (event,) = stack.events()
    assert event.member_id == stack.member["id"]
    with pytest.raises(anthropic.BadRequestError):
        stack.client(api_key=stack.org.service_key).messages.create(model=SONNET, max_tokens=8, messages=HELLO)


def test_the_surface_header_is_recorded_on_the_usage(stack: Stack) -> None:
    stack.client(default_headers={"x-seatmeter-surface": "claude_code"}).messages.create(
        model=SONNET, max_tokens=8, messages=HELLO
    )
    (event,) = stack.events()
    assert event.surface == "claude_code"


def test_usage_the_vendor_bills_at_the_batch_tier_is_priced_at_half(stack: Stack) -> None:
    stack.fake.service_tier = "batch"
    message = stack.client().messages.create(model=SONNET, max_tokens=64, messages=HELLO)
    (event,) = stack.events()
    assert event.service_tier == "batch"
    assert Money(event.cost_nano) == stack.price(usage_of(message), "batch")
    assert Money(event.cost_nano).nano * 2 == stack.price(usage_of(message)).nano


def test_a_member_without_a_seat_is_refused_through_the_sdk(stack: Stack) -> None:
    seatless = add_member(stack.api, stack.org, "visitor@acme.test", seat=None)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        stack.client(api_key=seatless["api_key"]).messages.create(model=SONNET, max_tokens=8, messages=HELLO)
    assert refused.value.body["error"]["code"] == "no_seat"  # type: ignore[index]
    assert stack.fake.requests == []


def test_a_stream_that_outlasts_the_price_cache_refresh_is_still_settled(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite a price-book refresh from inside the settle's transaction would wait on that transaction's lock.
    monkeypatch.setattr("seatmeter.services.price_book.REFRESH_S", 0.2)
    stack.fake.reply = " ".join(["tick"] * 10)
    stack.fake.delay_s = 0.05
    with stack.client().messages.stream(model=SONNET, max_tokens=64, messages=HELLO) as stream:
        hold_id = stream.response.headers["x-seatmeter-hold"]
        stream.get_final_message()
    wait_for(lambda: stack.hold(hold_id).status != "open")
    assert stack.hold(hold_id).status == "settled"


def test_the_key_is_checked_before_the_body(stack: Stack) -> None:
    url = f"{stack.url}/gateway/anthropic/v1/messages"
    assert httpx.post(url, content=b"{not json").status_code == 401
    response = httpx.post(url, content=b"{not json", headers={"x-api-key": stack.member["api_key"]})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_request",
        "message": "the body must be a JSON object of a Messages API request",
        "resume": "",
    }
    assert stack.fake.requests == []


def batch_requests(*custom_ids: str, model: str = SONNET) -> list[dict[str, Any]]:
    return [{"custom_id": cid, "params": {"model": model, "max_tokens": 32, "messages": HELLO}} for cid in custom_ids]


def test_batch_results_read_through_the_gateway_are_billed_once_at_the_batch_tier(stack: Stack) -> None:
    client = stack.client()
    batch = client.messages.batches.create(requests=batch_requests("first", "second"))  # type: ignore[arg-type]
    assert stack.fake.last_request.headers["x-api-key"] == VENDOR_KEY
    retrieved = client.messages.batches.retrieve(batch.id)
    assert retrieved.results_url == f"{stack.url}/gateway/anthropic/v1/messages/batches/{batch.id}/results"
    results = list(client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == ["first", "second"]
    events = stack.events()
    assert len(events) == 2 and {e.service_tier for e in events} == {"batch"}
    for result in results:
        assert result.result.type == "succeeded"
        event = next(e for e in events if e.idempotency_key.endswith(f":{result.custom_id}"))
        assert Money(event.cost_nano) == stack.price(usage_of(result.result.message), "batch")
    list(client.messages.batches.results(batch.id))  # reading again records nothing twice
    assert len(stack.events()) == 2


def test_a_batch_that_does_not_fit_under_the_cap_is_refused_before_it_is_sent(stack: Stack) -> None:
    stack.cap_member("0.0001")
    with pytest.raises(anthropic.RateLimitError) as refused:
        stack.client().messages.batches.create(requests=batch_requests("a", "b"))  # type: ignore[arg-type]
    assert refused.value.body["error"]["code"] == "member_cap_reached"  # type: ignore[index]
    assert stack.fake.requests == [] and stack.held_nano() == 0


def test_a_batch_with_an_unknown_model_names_the_request(stack: Stack) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        stack.client().messages.batches.create(
            requests=batch_requests("a") + batch_requests("b", model="claude-imaginary-9")
        )  # type: ignore[arg-type]
    error = refused.value.body["error"]  # type: ignore[index]
    assert error["code"] == "unknown_model" and error["message"].startswith("requests[1]")
    assert stack.fake.requests == []


def test_a_client_that_leaves_before_a_plain_answer_arrives_gets_its_hold_voided(stack: Stack) -> None:
    stack.fake.response_delay_s = 1.0
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{stack.url}/gateway/anthropic/v1/messages",
            headers={"x-api-key": stack.member["api_key"]},
            json={"model": SONNET, "max_tokens": 8, "messages": HELLO},
            timeout=0.3,
        )
    wait_for(lambda: stack.held_nano() == 0)
    with stack.app.engine.connect() as conn:
        statuses = list(conn.execute(select(holds.c.status).where(holds.c.organization_id == stack.org.id)).scalars())
    assert statuses == ["voided"]
    assert len(stack.fake.requests) == 1 and stack.events() == []


def test_an_unreachable_upstream_is_a_retryable_error_and_voids_the_hold(stack: Stack, clock: FixedClock) -> None:
    stack.app.settings = replace(stack.app.settings, anthropic_upstream="http://127.0.0.1:9")  # nothing listens
    with serve_in_thread(create_app(stack.app)) as url:
        client = anthropic.Anthropic(
            base_url=f"{url}/gateway/anthropic", api_key=stack.member["api_key"], max_retries=0
        )
        stack.clients.append(client)
        with pytest.raises(anthropic.APIStatusError) as failed:
            client.messages.create(model=SONNET, max_tokens=8, messages=HELLO)
    assert failed.value.status_code == 503
    assert failed.value.body["error"]["code"] == "service_unavailable"  # type: ignore[index]
    assert failed.value.response.headers["x-should-retry"] == "true"
    assert stack.held_nano() == 0 and stack.events() == []


def test_counting_tokens_passes_through_for_members_only(stack: Stack) -> None:
    counted = stack.client().messages.count_tokens(model=SONNET, messages=HELLO)
    assert counted.input_tokens == stack.fake.count_input({"messages": HELLO})
    assert stack.fake.last_request.headers["x-api-key"] == VENDOR_KEY
    with pytest.raises(anthropic.AuthenticationError):
        stack.client(api_key="sk-nobody").messages.count_tokens(model=SONNET, messages=HELLO)
    assert stack.events() == []
