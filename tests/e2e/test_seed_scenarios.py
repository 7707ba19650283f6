"""The stories an owner lives through, over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, Org, add_member, create_org

SONNET = "claude-sonnet-4-5"


def hold(
    api: Api, org: Org, member_id: str, key: str, amount: str = "1.00", expect: int | None = None, **extra: Any
) -> Any:
    body = {
        "idempotency_key": key,
        "member_id": member_id,
        "model": SONNET,
        "surface": "api",
        "estimate": {"amount": amount},
        **extra,
    }
    return api.post(f"/v1/organizations/{org.id}/holds", body, key=org.service_key, expect=expect)


def settle(api: Api, org: Org, hold_id: str, expect: int = 200, **usage: int) -> Any:
    body = {"usage": {"input_tokens": 0, "output_tokens": 0, **usage}}
    return api.post(f"/v1/organizations/{org.id}/holds/{hold_id}/settle", body, key=org.service_key, expect=expect)


def buy(api: Api, org: Org, amount: str, key: str) -> Any:
    return api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": amount, "idempotency_key": key},
        key=org.owner_key,
        expect=201,
    )


def test_credits_run_out_usage_stops_and_resumes_when_an_owner_buys_more(api: Api) -> None:
    org = create_org(api)
    buy(api, org, "2.00", "p1")
    first = hold(api, org, org.owner_id, "h1", "1.50", expect=201)
    # 1.50 of 2.00 is held: a second request for 1.00 does not fit.
    refused = hold(api, org, org.owner_id, "h2", "1.00", expect=402)
    assert refused["error"]["code"] == "credits_exhausted"
    assert "buys more credits" in refused["error"]["resume"]
    # 1,000,000 output tokens of Sonnet 4.5 = 15.00 USD: more than held, posted anyway and flagged.
    settled = settle(api, org, first["id"], output_tokens=100_000)
    assert settled == {"event_id": settled["event_id"], "cost": "1.50", "exceeded_hold": False}
    credits = api.get(f"/v1/organizations/{org.id}/credits", key=org.owner_key, expect=200)
    assert credits == {"balance": "0.50", "held": "0.00", "available": "0.50"}
    assert hold(api, org, org.owner_id, "h3", "1.00", expect=402)["error"]["code"] == "credits_exhausted"
    buy(api, org, "10.00", "p2")
    assert hold(api, org, org.owner_id, "h3", "1.00", expect=201)["amount"] == "1.00"


def test_member_cap_stops_member_before_organization_cap_stops_everyone(api: Api) -> None:
    org = create_org(api, channel="sales_assisted")
    alice = add_member(api, org, "alice@acme.test")
    bob = add_member(api, org, "bob@acme.test")
    api.put(f"/v1/organizations/{org.id}/caps/organization", {"limit": "5.00"}, key=org.owner_key, expect=200)
    api.put(f"/v1/organizations/{org.id}/caps/members/{alice['id']}", {"limit": "2.00"}, key=org.owner_key, expect=200)
    alice_hold = hold(api, org, alice["id"], "a1", "2.00", expect=201)
    settle(api, org, alice_hold["id"], output_tokens=100_000)  # 1.50
    refused = hold(api, org, alice["id"], "a2", "1.00", expect=429)
    assert refused["error"]["code"] == "member_cap_reached"
    assert "next billing period begins at 2026-12-01" in refused["error"]["resume"]
    # Bob is not stopped by Alice's cap, only by the organization's: 5.00 - 1.50 = 3.50 left.
    assert hold(api, org, bob["id"], "b1", "3.50", expect=201)["amount"] == "3.50"
    refused = hold(api, org, bob["id"], "b2", "0.01", expect=429)
    assert refused["error"]["code"] == "organization_cap_reached"
    caps = api.get(f"/v1/organizations/{org.id}/caps", key=org.owner_key, expect=200)
    assert caps["organization"] == {
        "limit": "5.00",
        "spent": "1.50",
        "held": "3.50",
        "remaining": "0.00",
        "status": "reached",
    }


def test_raising_a_cap_or_setting_it_to_null_lifts_it_at_once(api: Api) -> None:
    org = create_org(api, channel="sales_assisted")
    alice = add_member(api, org, "alice@acme.test")
    api.put(f"/v1/organizations/{org.id}/caps/member-default", {"limit": "1.00"}, key=org.owner_key, expect=200)
    hold(api, org, alice["id"], "a1", "1.00", expect=201)
    assert hold(api, org, alice["id"], "a2", "1.00", expect=429)["error"]["code"] == "member_cap_reached"
    api.put(f"/v1/organizations/{org.id}/caps/members/{alice['id']}", {"limit": "2.00"}, key=org.owner_key, expect=200)
    hold(api, org, alice["id"], "a2", "1.00", expect=201)
    assert hold(api, org, alice["id"], "a3", "1.00", expect=429)["error"]["code"] == "member_cap_reached"
    api.put(f"/v1/organizations/{org.id}/caps/members/{alice['id']}", {"limit": None}, key=org.owner_key, expect=200)
    hold(api, org, alice["id"], "a3", "100.00", expect=201)
    summary = api.get(f"/v1/organizations/{org.id}/usage/summary", key=org.owner_key, expect=200)
    row = next(m for m in summary["members"] if m["member_id"] == alice["id"])
    assert row["cap"] is None and row["held"] == "102.00"


def test_replayed_holds_and_usage_count_once(api: Api) -> None:
    org = create_org(api)
    buy(api, org, "100.00", "p1")
    first = hold(api, org, org.owner_id, "same", "1.00", expect=201)
    again = hold(api, org, org.owner_id, "same", "1.00", expect=200)
    assert again["id"] == first["id"]
    conflict = hold(api, org, org.owner_id, "same", "2.00", expect=409)
    assert conflict["error"]["code"] == "idempotency_conflict"
    event = {
        "idempotency_key": "e1",
        "member_id": org.owner_id,
        "model": SONNET,
        "surface": "web",
        "occurred_at": "2026-11-15T10:00:00Z",
        "input_tokens": 1000,
        "output_tokens": 1000,
    }
    path = f"/v1/organizations/{org.id}/usage"
    assert api.post(path, {"events": [event]}, key=org.service_key, expect=200) == {"accepted": 1, "duplicates": 0}
    assert api.post(path, {"events": [event, event]}, key=org.service_key, expect=200) == {
        "accepted": 0,
        "duplicates": 2,
    }
    changed = {**event, "output_tokens": 2}
    assert (
        api.post(path, {"events": [changed]}, key=org.service_key, expect=409)["error"]["code"]
        == "idempotency_conflict"
    )
    # 1,000 input at 3 + 1,000 output at 15 per million = 0.018
    summary = api.get(f"/v1/organizations/{org.id}/usage/summary?period=2026-11", key=org.owner_key, expect=200)
    assert summary["total"] == "0.018"
    assert summary["credits"] == {"balance": "99.982", "held": "1.00", "available": "98.982"}
    settle(api, org, first["id"], input_tokens=10)
    settle(api, org, first["id"], input_tokens=10)  # a retried settle answers the same
    assert settle(api, org, first["id"], expect=409, input_tokens=11)["error"]["code"] == "hold_not_open"


def test_the_sonnet_example_of_the_design_costs_exactly_0_054399(api: Api) -> None:
    org = create_org(api, channel="sales_assisted")
    granted = hold(api, org, org.owner_id, "s1", expect=201)
    settled = settle(api, org, granted["id"], input_tokens=3, cache_write_5m_tokens=12_304, output_tokens=550)
    assert settled["cost"] == "0.054399"


def test_a_partial_grant_lowers_max_output_tokens_to_what_fits(api: Api) -> None:
    org = create_org(api)
    buy(api, org, "1.00", "p1")
    body = {
        "idempotency_key": "t1",
        "member_id": org.owner_id,
        "model": SONNET,
        "surface": "api",
        "estimate": {"input_tokens": 10_000, "max_output_tokens": 200_000},
        "allow_partial": True,
    }
    granted = api.post(f"/v1/organizations/{org.id}/holds", body, key=org.service_key, expect=201)
    # Input bound: 10,000 × 6.00 (the 1-hour cache-write rate, the dearest input) = 0.06; 0.94 left at 15.00/MTok.
    assert granted["max_output_tokens"] == 62_666
    assert granted["amount"] == "0.99999"
    body = {**body, "idempotency_key": "t2", "allow_partial": False}
    assert (
        api.post(f"/v1/organizations/{org.id}/holds", body, key=org.service_key, expect=402)["error"]["code"]
        == "credits_exhausted"
    )
