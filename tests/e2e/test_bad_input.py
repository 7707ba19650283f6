"""Bad input over HTTP: every refusal is a 4xx with the documented envelope and code, and nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api, Org, add_member, create_org

SONNET = "claude-sonnet-4-5"
OCCURRED = "2026-11-15T11:00:00Z"


def refused(response: Any, code: str) -> dict[str, Any]:
    assert set(response) == {"error"}, response
    assert set(response["error"]) == {"code", "message", "resume"}, response
    assert response["error"]["code"] == code, response
    assert isinstance(response["error"]["message"], str) and response["error"]["message"]
    assert isinstance(response["error"]["resume"], str)
    error: dict[str, Any] = response["error"]
    return error


def event(member_id: str, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "member_id": member_id,
        "model": SONNET,
        "surface": "web",
        "occurred_at": OCCURRED,
        "input_tokens": 1_000,
        "output_tokens": 100,
        **extra,
    }


def hold_body(member_id: str, key: str = "h1", **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "member_id": member_id,
        "model": SONNET,
        "surface": "api",
        "estimate": {"amount": "1.00"},
        **extra,
    }


@pytest.fixture
def org(api: Api) -> Org:
    org = create_org(api)
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "10.00", "idempotency_key": "p0"},
        key=org.owner_key,
        expect=201,
    )
    return org


def untouched(api: Api, org: Org) -> None:
    """Nothing was written: credits, holds and spend are as the fixture left them."""
    credits = api.get(f"/v1/organizations/{org.id}/credits", key=org.owner_key, expect=200)
    assert credits == {"balance": "10.00", "held": "0.00", "available": "10.00"}
    summary = api.get(f"/v1/organizations/{org.id}/usage/summary", key=org.owner_key, expect=200)
    assert summary["total"] == "0.00"
    assert all(m["spend"] == "0.00" and m["held"] == "0.00" for m in summary["members"])


@pytest.mark.parametrize(
    "path", ["/holds", "/usage", "/credits/purchases", "/caps/organization", "/caps/member-default"]
)
def test_malformed_json_is_refused_as_invalid_request_and_writes_nothing(api: Api, org: Org, path: str) -> None:
    method = "PUT" if "/caps/" in path else "POST"
    key = org.owner_key if "credits" in path or "caps" in path else org.service_key
    response = api.client.request(
        method,
        f"/v1/organizations/{org.id}{path}",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        content=b'{"amount": "1.00", "events": [',
    )
    assert response.status_code == 400, response.text
    refused(response.json(), "invalid_request")
    untouched(api, org)


def test_floats_for_money_are_refused_everywhere(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    purchase = api.post(f"{base}/credits/purchases", {"amount": 10.5, "idempotency_key": "p1"}, key=org.owner_key)
    refused(purchase, "invalid_request")
    cap = api.put(f"{base}/caps/organization", {"limit": 5.0}, key=org.owner_key, expect=400)
    refused(cap, "invalid_request")
    body = hold_body(org.owner_id, estimate={"amount": 0.4})
    refused(api.post(f"{base}/holds", body, key=org.service_key, expect=400), "invalid_request")
    refused(
        api.post(
            f"{base}/credits/purchases", {"amount": "1.005", "idempotency_key": "p2"}, key=org.owner_key, expect=400
        ),
        "invalid_request",
    )
    caps = api.get(f"{base}/caps", key=org.owner_key, expect=200)
    assert caps["organization"]["limit"] is None
    untouched(api, org)


@pytest.mark.parametrize(
    "tokens",
    [
        {"input_tokens": -1},
        {"output_tokens": -5},
        {"input_tokens": 10**12},
        {"cache_read_tokens": 100_000_001},
        {"input_tokens": 1.5},
        {"input_tokens": "1000"},
        {"output_tokens": True},
    ],
)
def test_negative_absurd_or_non_integer_token_counts_are_refused(api: Api, org: Org, tokens: dict[str, Any]) -> None:
    base = f"/v1/organizations/{org.id}"
    batch = {"events": [event(org.owner_id, "e1", **tokens)]}
    refused(api.post(f"{base}/usage", batch, key=org.service_key, expect=400), "invalid_request")
    estimate = {"input_tokens": 1_000, "max_output_tokens": 1_000}
    estimate.update({k: v for k, v in tokens.items() if k == "input_tokens"})
    if "input_tokens" in tokens:
        body = hold_body(org.owner_id, estimate=estimate)
        refused(api.post(f"{base}/holds", body, key=org.service_key, expect=400), "invalid_request")
    good = api.post(f"{base}/holds", hold_body(org.owner_id, "h-ok"), key=org.service_key, expect=201)
    usage = {"input_tokens": 0, "output_tokens": 0, **tokens}
    settle = api.post(f"{base}/holds/{good['id']}/settle", {"usage": usage}, key=org.service_key, expect=400)
    refused(settle, "invalid_request")
    api.post(f"{base}/holds/{good['id']}/void", key=org.service_key, expect=200)
    untouched(api, org)


@pytest.mark.parametrize("occurred_at", ["2026-11-15T11:00:00", "2026-11-15", "yesterday", 1763204400])
def test_times_without_a_zone_or_not_iso_are_refused(api: Api, org: Org, occurred_at: Any) -> None:
    batch = {"events": [event(org.owner_id, "e1", occurred_at=occurred_at)]}
    error = refused(
        api.post(f"/v1/organizations/{org.id}/usage", batch, key=org.service_key, expect=400), "invalid_request"
    )
    assert "occurred_at" in error["message"]
    untouched(api, org)


def test_unknown_members_and_models_are_refused(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    batch = {"events": [event("mem_nobody", "e1")]}
    refused(api.post(f"{base}/usage", batch, key=org.service_key, expect=400), "invalid_request")
    # A hold names one member, which is then a missing resource; in a batch it is a bad event.
    refused(api.post(f"{base}/holds", hold_body("mem_nobody"), key=org.service_key, expect=404), "not_found")
    batch = {"events": [event(org.owner_id, "e2", model="claude-sonnet-9")]}
    error = refused(api.post(f"{base}/usage", batch, key=org.service_key, expect=400), "unknown_model")
    assert "claude-sonnet-9" in error["message"]
    hold = api.post(f"{base}/holds", hold_body(org.owner_id, model="gpt-4o"), key=org.service_key, expect=400)
    refused(hold, "unknown_model")
    untouched(api, org)


def test_a_batch_with_one_bad_event_writes_none_of_it(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    good = [event(org.owner_id, f"e{i}") for i in range(5)]
    for bad in (
        event(org.owner_id, "bad", input_tokens=-1),
        event(org.owner_id, "bad", model="claude-nope"),
        event("mem_nobody", "bad"),
        event(org.owner_id, "bad", occurred_at="2026-11-15T11:00:00"),
        event(org.owner_id, "bad", surface="fax"),
        event(org.owner_id, "bad", occurred_at="2026-11-16T12:00:00Z"),  # a day in the future
    ):
        response = api.post(f"{base}/usage", {"events": [*good, bad]}, key=org.service_key)
        assert response["error"]["code"] in {"invalid_request", "unknown_model"}, response
        untouched(api, org)
    # The same good events alone are then accepted as new, not as replays.
    assert api.post(f"{base}/usage", {"events": good}, key=org.service_key, expect=200) == {
        "accepted": 5,
        "duplicates": 0,
    }


def test_a_reused_key_with_a_different_payload_is_a_conflict_and_writes_nothing(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    api.post(f"{base}/usage", {"events": [event(org.owner_id, "e1")]}, key=org.service_key, expect=200)
    before = api.get(f"{base}/credits", key=org.owner_key, expect=200)
    batch = {"events": [event(org.owner_id, "e2"), event(org.owner_id, "e1", output_tokens=101)]}
    refused(api.post(f"{base}/usage", batch, key=org.service_key, expect=409), "idempotency_conflict")
    assert api.get(f"{base}/credits", key=org.owner_key, expect=200) == before
    # 1,000 input + 100 output of Sonnet 4.5 = 0.0045
    assert before["balance"] == "9.9955"


def test_a_usage_key_cannot_take_the_key_a_hold_settles_under(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    hold = api.post(f"{base}/holds", hold_body(org.owner_id), key=org.service_key, expect=201)
    taken = {"events": [event(org.owner_id, f"hold:{hold['id']}")]}
    refused(api.post(f"{base}/usage", taken, key=org.service_key, expect=400), "invalid_request")
    settle = {"usage": {"input_tokens": 1_000, "output_tokens": 100}}
    settled = api.post(f"{base}/holds/{hold['id']}/settle", settle, key=org.service_key, expect=200)
    assert settled["cost"] == "0.0045"


def test_a_batch_of_10_000_events_is_accepted_and_10_001_refused(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    events = [event(org.owner_id, f"e{i}", input_tokens=1, output_tokens=0) for i in range(10_001)]
    refused(api.post(f"{base}/usage", {"events": events}, key=org.service_key, expect=400), "invalid_request")
    untouched(api, org)
    assert api.post(f"{base}/usage", {"events": events[:10_000]}, key=org.service_key, expect=200) == {
        "accepted": 10_000,
        "duplicates": 0,
    }
    summary = api.get(f"{base}/usage/summary", key=org.owner_key, expect=200)
    assert summary["total"] == "0.03"  # 10,000 input tokens at 3 USD/MTok
    refused(api.post(f"{base}/usage", {"events": []}, key=org.service_key, expect=400), "invalid_request")


def test_members_see_only_themselves_in_the_summary(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    alice = add_member(api, org, "alice@acme.test")
    bob = add_member(api, org, "bob@acme.test")
    batch = {"events": [event(alice["id"], "a1"), event(bob["id"], "b1", output_tokens=200)]}
    api.post(f"{base}/usage", batch, key=org.service_key, expect=200)
    mine = api.get(f"{base}/usage/summary", key=alice["api_key"], expect=200)
    assert [(m["member_id"], m["spend"]) for m in mine["members"]] == [(alice["id"], "0.0045")]
    everyone = api.get(f"{base}/usage/summary", key=org.owner_key, expect=200)
    spend = {m["member_id"]: m["spend"] for m in everyone["members"]}
    assert spend == {org.owner_id: "0.00", alice["id"]: "0.0045", bob["id"]: "0.006"}
    assert everyone["total"] == "0.0105"


def test_a_member_key_cannot_create_holds_for_another_member(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    alice = add_member(api, org, "alice@acme.test")
    bob = add_member(api, org, "bob@acme.test")
    refused(api.post(f"{base}/holds", hold_body(bob["id"]), key=alice["api_key"], expect=403), "forbidden")
    batch = {"events": [event(bob["id"], "e1")]}
    refused(api.post(f"{base}/usage", batch, key=alice["api_key"], expect=403), "forbidden")
    untouched(api, org)
    own = api.post(f"{base}/holds", hold_body(alice["id"]), key=alice["api_key"], expect=201)
    assert own["amount"] == "1.00"
    refused(api.post(f"{base}/holds/{own['id']}/void", key=bob["api_key"], expect=403), "forbidden")


def test_service_keys_cannot_buy_credits_or_set_caps(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    purchase = {"amount": "5.00", "idempotency_key": "p-svc"}
    refused(api.post(f"{base}/credits/purchases", purchase, key=org.service_key, expect=403), "forbidden")
    for path in ("/caps/organization", "/caps/member-default", f"/caps/members/{org.owner_id}"):
        refused(api.put(f"{base}{path}", {"limit": "1.00"}, key=org.service_key, expect=403), "forbidden")
    member = add_member(api, org, "m@acme.test")
    refused(api.post(f"{base}/credits/purchases", purchase, key=member["api_key"], expect=403), "forbidden")
    refused(api.put(f"{base}/caps/organization", {"limit": "1.00"}, key=member["api_key"], expect=403), "forbidden")
    caps = api.get(f"{base}/caps", key=org.owner_key, expect=200)
    assert caps["organization"]["limit"] is None and caps["members"] == []
    untouched(api, org)


def test_another_organizations_keys_are_refused(api: Api, org: Org) -> None:
    base = f"/v1/organizations/{org.id}"
    other = create_org(api)
    refused(api.post(f"{base}/holds", hold_body(org.owner_id), key=other.service_key, expect=403), "forbidden")
    refused(
        api.post(f"{base}/usage", {"events": [event(org.owner_id, "e1")]}, key=other.service_key, expect=403),
        "forbidden",
    )
    purchase = {"amount": "5.00", "idempotency_key": "p-other"}
    refused(api.post(f"{base}/credits/purchases", purchase, key=other.owner_key, expect=403), "forbidden")
    refused(api.put(f"{base}/caps/organization", {"limit": "1.00"}, key=other.owner_key, expect=403), "forbidden")
    refused(api.get(f"{base}/usage/summary", key=other.owner_key, expect=403), "forbidden")
    refused(api.get(f"{base}/credits", key=other.owner_key, expect=403), "forbidden")
    refused(api.get(f"{base}/credits", key=None, expect=401), "unauthenticated")
    refused(api.get(f"{base}/credits", key="not-a-key", expect=401), "unauthenticated")
    untouched(api, org)


def test_the_invoices_of_an_organization_that_does_not_exist_are_not_found(api: Api) -> None:
    refused(api.get("/v1/organizations/org_nobody/invoices", expect=404), "not_found")


@pytest.mark.parametrize("where", ["hold key", "usage key", "usage member", "hold model", "member name"])
def test_text_with_a_lone_surrogate_is_refused_as_invalid_request_and_writes_nothing(
    api: Api, org: Org, where: str
) -> None:
    # JSON can spell a lone surrogate ("\ud800"); it is no character, no encoding can store it.
    bad = "k-\ud800"
    base = f"/v1/organizations/{org.id}"
    path, key, body = {
        "hold key": ("/holds", org.service_key, hold_body(org.owner_id, bad)),
        "usage key": ("/usage", org.service_key, {"events": [event(org.owner_id, "ok"), event(org.owner_id, bad)]}),
        "usage member": ("/usage", org.service_key, {"events": [event(bad, "e1")]}),
        "hold model": ("/holds", org.service_key, hold_body(org.owner_id, model=bad)),
        "member name": ("/members", org.owner_key, {"email": "x@example.com", "name": bad}),
    }[where]
    response = api.client.post(
        f"{base}{path}",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        content=json.dumps(body).encode(),  # ASCII JSON: the surrogate travels as the escape \ud800
    )
    assert response.status_code == 400, response.text
    # An unknown model is named as such; every other field is simply invalid.
    refused(response.json(), "unknown_model" if where == "hold model" else "invalid_request")
    untouched(api, org)
    members = api.get(f"{base}/members", key=org.owner_key, expect=200)
    assert all(m["email"] != "x@example.com" for m in members["data"])
