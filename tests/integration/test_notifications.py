"""Notifications end to end over HTTP on SQLite and PostgreSQL: thresholds fire once, re-arm after a cap change,
stops and resumes are announced, and the worker delivers to a real webhook receiver and SMTP server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from seatmeter.adapters.email import Mailer
from seatmeter.adapters.webhooks import WebhookSender
from seatmeter.domain.retries import RetryPolicy
from seatmeter.services.notifications import deliver_due
from tests.conftest import Api, Org, add_member, create_org
from tests.support.receivers import smtp_server, webhook_receiver

HAIKU = "claude-haiku-4-5"  # 1.00 USD per million input tokens: a million tokens is exactly a dollar
_seq = iter(range(10**9))


def spend(api: Api, org: Org, member_id: str, dollars: int, cents: int = 0) -> None:
    event = {
        "idempotency_key": f"e{next(_seq)}",
        "member_id": member_id,
        "model": HAIKU,
        "surface": "api",
        "occurred_at": "2026-11-15T11:00:00Z",
        "input_tokens": dollars * 1_000_000 + cents * 10_000,
        "output_tokens": 0,
    }
    api.post(f"/v1/organizations/{org.id}/usage", {"events": [event]}, key=org.service_key, expect=200)


def log(api: Api, org: Org, key: str | None = None) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = api.get(
        f"/v1/organizations/{org.id}/notifications", key=key or org.owner_key, expect=200
    )["data"]
    return data


def crossed(api: Api, org: Org, account: str) -> list[int]:
    return sorted(
        n["data"]["threshold_percent"]
        for n in log(api, org)
        if n["type"] == "threshold_crossed" and n["account"] == account
    )


def test_each_threshold_of_a_member_cap_fires_once_per_period(api: Api) -> None:
    org = create_org(api, channel="sales_assisted")
    alice = add_member(api, org, "alice@acme.test")
    api.put(f"/v1/organizations/{org.id}/caps/members/{alice['id']}", {"limit": "10.00"}, key=org.owner_key, expect=200)
    spend(api, org, alice["id"], 4, 99)
    assert crossed(api, org, f"member:{alice['id']}") == []
    spend(api, org, alice["id"], 0, 1)  # exactly 5.00: 50% reached
    spend(api, org, alice["id"], 4)  # 9.00: 75% and 90% in one step
    spend(api, org, alice["id"], 5)  # 14.00: past 100%, recorded usage is always accepted
    spend(api, org, alice["id"], 5)
    assert crossed(api, org, f"member:{alice['id']}") == [50, 75, 90, 100]
    first = next(n for n in log(api, org) if n["data"].get("threshold_percent") == 90)
    assert first["data"]["limit"] == "10.00" and first["data"]["spent"] == "9.00"


def test_raising_a_cap_rearms_its_thresholds_and_they_fire_again_when_crossed_anew(api: Api) -> None:
    org = create_org(api, channel="sales_assisted")
    cap = f"/v1/organizations/{org.id}/caps/organization"
    api.put(cap, {"limit": "10.00"}, key=org.owner_key, expect=200)
    spend(api, org, org.owner_id, 6)
    assert crossed(api, org, "organization") == [50]
    api.put(cap, {"limit": "20.00"}, key=org.owner_key, expect=200)
    spend(api, org, org.owner_id, 3)  # 9.00 of 20.00: under 50% of the new cap, nothing new
    assert crossed(api, org, "organization") == [50]
    spend(api, org, org.owner_id, 2)  # 11.00: 50% of 20.00 crossed anew
    assert crossed(api, org, "organization") == [50, 50]


def test_a_refusal_announces_usage_stopped_once_and_buying_credits_announces_usage_resumed(api: Api) -> None:
    org = create_org(api)
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "1.00", "idempotency_key": "p1"},
        key=org.owner_key,
        expect=201,
    )
    for attempt in range(3):
        body = {
            "idempotency_key": f"h{attempt}",
            "member_id": org.owner_id,
            "model": HAIKU,
            "surface": "api",
            "estimate": {"amount": "2.00"},
        }
        refused = api.post(f"/v1/organizations/{org.id}/holds", body, key=org.service_key, expect=402)
        assert refused["error"]["code"] == "credits_exhausted"
    assert [n["type"] for n in log(api, org)] == ["usage_stopped"]
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "5.00", "idempotency_key": "p2"},
        key=org.owner_key,
        expect=201,
    )
    assert sorted(n["type"] for n in log(api, org)) == ["usage_resumed", "usage_stopped"]
    # A new stop after the resume is a new episode, announced again.
    body = {
        "idempotency_key": "h9",
        "member_id": org.owner_id,
        "model": HAIKU,
        "surface": "api",
        "estimate": {"amount": "50.00"},
    }
    api.post(f"/v1/organizations/{org.id}/holds", body, key=org.service_key, expect=402)
    assert sorted(n["type"] for n in log(api, org)) == ["usage_resumed", "usage_stopped", "usage_stopped"]


def test_credits_used_thresholds_and_the_low_balance_amount_fire(api: Api) -> None:
    org = create_org(api)
    api.put(
        f"/v1/organizations/{org.id}/notification-settings",
        {"thresholds_percent": [50, 90], "low_balance": "3.00"},
        key=org.owner_key,
        expect=200,
    )
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "10.00", "idempotency_key": "p1"},
        key=org.owner_key,
        expect=201,
    )
    spend(api, org, org.owner_id, 6)
    assert crossed(api, org, "credits") == [50]
    spend(api, org, org.owner_id, 2)  # balance 2.00: below 3.00
    low = [n for n in log(api, org) if n["type"] == "low_balance"]
    assert len(low) == 1 and low[0]["data"]["balance"] == "2.00"


def test_settings_are_validated_and_a_bad_request_writes_nothing(api: Api) -> None:
    org = create_org(api)
    url = f"/v1/organizations/{org.id}/notification-settings"
    for body in (
        {"thresholds_percent": [0]},
        {"thresholds_percent": [50], "webhook_url": "ftp://x"},
        {"thresholds_percent": [50], "emails": ["not-an-address"]},
        {"thresholds_percent": [50], "low_balance": 5},
    ):
        assert api.put(url, body, key=org.owner_key, expect=400)["error"]["code"] == "invalid_request"
    saved = api.get(url, key=org.owner_key, expect=200)
    assert saved["thresholds_percent"] == [50, 75, 90, 100] and saved["webhook_url"] is None
    member = add_member(api, org, "m@acme.test")
    assert api.put(url, {"thresholds_percent": [50]}, key=member["api_key"], expect=403)["error"]["code"] == "forbidden"


def test_members_see_only_notifications_about_their_own_cap(api: Api) -> None:
    org = create_org(api, channel="sales_assisted")
    alice = add_member(api, org, "alice@acme.test")
    bob = add_member(api, org, "bob@acme.test")
    for member in (alice, bob):
        api.put(
            f"/v1/organizations/{org.id}/caps/members/{member['id']}", {"limit": "2.00"}, key=org.owner_key, expect=200
        )
        spend(api, org, member["id"], 1)
    seen = log(api, org, alice["api_key"])
    assert [n["account"] for n in seen] == [f"member:{alice['id']}"]
    assert "deliveries" not in seen[0]


def test_the_worker_delivers_signed_webhooks_and_email(api: Api, app: Any, clock: Any) -> None:
    org = create_org(api, channel="sales_assisted")
    with webhook_receiver() as receiver, smtp_server() as inbox:
        saved = api.put(
            f"/v1/organizations/{org.id}/notification-settings",
            {"thresholds_percent": [50], "webhook_url": receiver.url, "emails": ["owner@acme.test"]},
            key=org.owner_key,
            expect=200,
        )
        receiver.secret = saved["webhook_secret"]
        api.put(f"/v1/organizations/{org.id}/caps/organization", {"limit": "4.00"}, key=org.owner_key, expect=200)
        spend(api, org, org.owner_id, 3)
        sender = WebhookSender(timeout_s=5, allow_private=True)
        report = deliver_due(app.engine, clock.now(), sender=sender, mailer=Mailer(inbox.host, inbox.port))
        again = deliver_due(app.engine, clock.now(), sender=sender, mailer=Mailer(inbox.host, inbox.port))
        sender.close()
    assert (report.delivered, report.failed, again.attempted) == (2, 0, 0)
    assert len(receiver.received) == 1 and receiver.received[0]["verified"]
    assert b'"threshold_percent": 50' in receiver.received[0]["body"]
    assert len(inbox.messages) == 1 and "50%" in inbox.messages[0]["Subject"]
    deliveries = log(api, org)[0]["deliveries"]
    assert sorted((d["channel"], d["status"], d["attempts"]) for d in deliveries) == [
        ("email", "delivered", 1),
        ("webhook", "delivered", 1),
    ]


def test_a_failing_receiver_is_retried_with_backoff_and_finally_marked_failed(api: Api, app: Any, clock: Any) -> None:
    org = create_org(api, channel="sales_assisted")
    policy = RetryPolicy(base_delay_s=60, factor=2, max_attempts=3)
    sender = WebhookSender(timeout_s=5, allow_private=True)
    with webhook_receiver(fail_with=503) as receiver:
        api.put(
            f"/v1/organizations/{org.id}/notification-settings",
            {"thresholds_percent": [50], "webhook_url": receiver.url},
            key=org.owner_key,
            expect=200,
        )
        api.put(f"/v1/organizations/{org.id}/caps/organization", {"limit": "2.00"}, key=org.owner_key, expect=200)
        spend(api, org, org.owner_id, 1)
        start = clock.now()
        # Due at once, then 60 s after the first failure, then 120 s after the second.
        outcomes = [
            deliver_due(
                app.engine, start + timedelta(seconds=offset_s), sender=sender, mailer=Mailer(None), policy=policy
            )
            for offset_s in (0, 30, 60, 179, 180)
        ]
    sender.close()
    assert [(o.retrying, o.failed) for o in outcomes] == [(1, 0), (0, 0), (1, 0), (0, 0), (0, 1)]
    assert len(receiver.received) == 3
    assert len({r["headers"]["webhook-id"] for r in receiver.received}) == 1  # the same message each time
    delivery = log(api, org)[0]["deliveries"][0]
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert [entry["status_code"] for entry in delivery["log"]] == [503, 503, 503]
