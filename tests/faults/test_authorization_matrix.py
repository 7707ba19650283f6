"""Every endpoint × every kind of key, against the allow/deny the spec gives (API.md, DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import OPERATOR_KEY, Api, add_member, create_org

ROLES = ("operator", "primary_owner", "owner", "member", "service", "other_org", "none")
OWNERS = {"operator", "primary_owner", "owner"}
PEOPLE = OWNERS | {"member"}
# Holds, settles and voids of the member's own usage: the member itself and the service key (and the operator).
USAGE_FOR_MEMBER = {"operator", "member", "service"}


@dataclass
class World:
    api: Api
    org: Any
    member_id: str
    keys: dict[str, str | None]
    seq: int = 0

    def next(self) -> int:
        self.seq += 1
        return self.seq

    def hold(self) -> str:
        body = {
            "idempotency_key": f"setup-{self.next()}",
            "member_id": self.member_id,
            "model": "claude-sonnet-4-5",
            "surface": "api",
            "estimate": {"amount": "0.01"},
        }
        hold_id: str = self.api.post(
            f"/v1/organizations/{self.org.id}/holds", body, key=self.org.service_key, expect=201
        )["id"]
        return hold_id


@pytest.fixture
def world(api: Api) -> World:
    org = create_org(api)
    owner = add_member(api, org, "second-owner@acme.test", role="owner")
    member = add_member(api, org, "member@acme.test")
    other = create_org(api, primary_owner={"email": "owner@other.test", "name": "Other"})
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "100.00", "idempotency_key": "c0"},
        key=org.owner_key,
        expect=201,
    )
    keys: dict[str, str | None] = {
        "operator": OPERATOR_KEY,
        "primary_owner": org.owner_key,
        "owner": owner["api_key"],
        "member": member["api_key"],
        "service": org.service_key,
        "other_org": other.service_key,
        "none": None,
    }
    return World(api, org, member["id"], keys)


Call = Callable[[World, str | None], Any]


def _org_path(w: World, tail: str = "") -> str:
    return f"/v1/organizations/{w.org.id}{tail}"


ENDPOINTS: list[tuple[str, set[str], Call]] = [
    (
        "POST /organizations",
        {"operator"},
        lambda w, k: w.api.client.post(
            "/v1/organizations", headers=_h(k), json={"name": "N", "primary_owner": {"email": f"p{w.next()}@n.test"}}
        ),
    ),
    ("GET /organizations", {"operator"}, lambda w, k: w.api.client.get("/v1/organizations", headers=_h(k))),
    ("GET /organizations/{org}", PEOPLE, lambda w, k: w.api.client.get(_org_path(w), headers=_h(k))),
    (
        "POST members",
        OWNERS,
        lambda w, k: w.api.client.post(
            _org_path(w, "/members"), headers=_h(k), json={"email": f"new{w.next()}@acme.test", "role": "member"}
        ),
    ),
    ("GET members", PEOPLE, lambda w, k: w.api.client.get(_org_path(w, "/members"), headers=_h(k))),
    ("POST service-keys", OWNERS, lambda w, k: w.api.client.post(_org_path(w, "/service-keys"), headers=_h(k))),
    (
        "POST credits/purchases",
        OWNERS,
        lambda w, k: w.api.client.post(
            _org_path(w, "/credits/purchases"),
            headers=_h(k),
            json={"amount": "1.00", "idempotency_key": f"p{w.next()}"},
        ),
    ),
    ("GET credits", PEOPLE, lambda w, k: w.api.client.get(_org_path(w, "/credits"), headers=_h(k))),
    (
        "PUT caps/organization",
        OWNERS,
        lambda w, k: w.api.client.put(_org_path(w, "/caps/organization"), headers=_h(k), json={"limit": "500.00"}),
    ),
    (
        "PUT caps/member-default",
        OWNERS,
        lambda w, k: w.api.client.put(_org_path(w, "/caps/member-default"), headers=_h(k), json={"limit": None}),
    ),
    (
        "PUT caps/members/{m}",
        OWNERS,
        lambda w, k: w.api.client.put(
            _org_path(w, f"/caps/members/{w.member_id}"), headers=_h(k), json={"limit": "50.00"}
        ),
    ),
    (
        "DELETE caps/members/{m}",
        OWNERS,
        lambda w, k: w.api.client.delete(_org_path(w, f"/caps/members/{w.member_id}"), headers=_h(k)),
    ),
    ("GET caps", PEOPLE, lambda w, k: w.api.client.get(_org_path(w, "/caps"), headers=_h(k))),
    (
        "POST holds",
        USAGE_FOR_MEMBER,
        lambda w, k: w.api.client.post(
            _org_path(w, "/holds"),
            headers=_h(k),
            json={
                "idempotency_key": f"h{w.next()}",
                "member_id": w.member_id,
                "model": "claude-sonnet-4-5",
                "surface": "api",
                "estimate": {"amount": "0.01"},
            },
        ),
    ),
    (
        "POST holds/{h}/settle",
        USAGE_FOR_MEMBER,
        lambda w, k: w.api.client.post(
            _org_path(w, f"/holds/{w.hold()}/settle"),
            headers=_h(k),
            json={"usage": {"input_tokens": 10, "output_tokens": 10}},
        ),
    ),
    (
        "POST holds/{h}/void",
        USAGE_FOR_MEMBER,
        lambda w, k: w.api.client.post(_org_path(w, f"/holds/{w.hold()}/void"), headers=_h(k)),
    ),
    (
        "POST usage",
        {"operator", "service"},
        lambda w, k: w.api.client.post(
            _org_path(w, "/usage"),
            headers=_h(k),
            json={
                "events": [
                    {
                        "idempotency_key": f"u{w.next()}",
                        "member_id": w.member_id,
                        "model": "claude-sonnet-4-5",
                        "surface": "api",
                        "occurred_at": "2026-11-15T11:00:00Z",
                        "input_tokens": 5,
                        "output_tokens": 5,
                    }
                ]
            },
        ),
    ),
    ("GET usage/summary", PEOPLE, lambda w, k: w.api.client.get(_org_path(w, "/usage/summary"), headers=_h(k))),
    ("GET invoices", OWNERS, lambda w, k: w.api.client.get(_org_path(w, "/invoices"), headers=_h(k))),
    ("GET price-book", set(ROLES), lambda w, k: w.api.client.get("/v1/price-book", headers=_h(k))),
    (
        "POST price-book/versions",
        {"operator"},
        lambda w, k: w.api.client.post(
            "/v1/price-book/versions",
            headers=_h(k),
            json={
                "id": f"matrix-{w.next()}",
                "effective_from": "2026-12-01T00:00:00Z",
                "models": {f"matrix-model-{w.seq}": {"input": "1", "output": "2"}},
            },
        ),
    ),
    ("GET /healthz", set(ROLES), lambda w, k: w.api.client.get("/healthz", headers=_h(k))),
]


def _h(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.mark.parametrize(("endpoint", "allowed", "call"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_each_key_is_allowed_or_denied_exactly_as_the_spec_says(
    world: World, endpoint: str, allowed: set[str], call: Call
) -> None:
    wrong = []
    for role in ROLES:
        response = call(world, world.keys[role])
        if role in allowed:
            ok = response.status_code < 300 or (endpoint == "POST price-book/versions" and response.status_code == 400)
        elif role == "none":
            ok = response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
        else:
            ok = response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
        if not ok:
            wrong.append(f"{role}: {response.status_code} {response.text[:160]}")
    assert not wrong, f"{endpoint} (allowed: {sorted(allowed)}):\n" + "\n".join(wrong)
