"""The lean hold path (entrypoints/api/fastpath.py) answers exactly as the FastAPI routes do.

The same script of requests runs twice, each time on a fresh database with the same seeded randomness (ids and
keys) and the same fixed clock: once through the app as served, once with the lean path off. Every answer must
be the same bytes, status and headers. The requests that reach FastAPI's router are counted, so the test
also shows which requests the lean path answered itself and which it handed to FastAPI.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, OperationalError

from seatmeter.adapters import metrics
from seatmeter.adapters.clock import FixedClock
from seatmeter.bootstrap import App
from seatmeter.domain import ids
from seatmeter.entrypoints.api.app import create_app
from seatmeter.entrypoints.api.fastpath import hot_route
from tests.conftest import NOW, Api, add_member, create_org, make_app

SONNET = "claude-sonnet-4-5"
JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    name: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    by_fastapi: bool  # it reached FastAPI's router


def hold(member_id: str, key: str, amount: str = "1.00", **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "member_id": member_id,
        "model": SONNET,
        "surface": "api",
        "estimate": {"amount": amount},
        **extra,
    }


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


class Counted:
    """Counts the requests that reach FastAPI's router (every request the lean path does not answer itself)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        route = fastapi.routing.APIRouter.__call__

        async def counted(router: Any, scope: Any, receive: Any, send: Any) -> None:
            self.calls += 1
            await route(router, scope, receive, send)

        monkeypatch.setattr(fastapi.routing.APIRouter, "__call__", counted)


def seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids and keys from a fixed seed, so that two runs of the script make the same ones."""
    rng = random.Random(20261127)
    monkeypatch.setattr(ids, "os", SimpleNamespace(urandom=rng.randbytes))
    monkeypatch.setattr(ids, "secrets", SimpleNamespace(token_urlsafe=lambda n: rng.randbytes(n).hex()))
    # Ids may lead with the wall clock's time (time-ordered ids): fixed too, where they do.
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: 1_795_000_000_000_000_000), raising=False)


def counters() -> dict[str, int]:
    lines = [line.rsplit(" ", 1) for line in metrics.render().splitlines() if line and not line.startswith("#")]
    return {name: int(value) for name, value in lines}


def script(url: str, fast_path: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Answer], dict[str, int]]:
    seeded(monkeypatch)
    before = counters()
    counted = Counted(monkeypatch)
    app = make_app(url, FixedClock(NOW))
    answers: list[Answer] = []
    try:
        with TestClient(create_app(app, fast_path=fast_path), raise_server_exceptions=False) as client:
            api = Api(client)
            org = create_org(api)
            other = create_org(api, name="Other")
            base = f"/v1/organizations/{org.id}"
            api.post(f"{base}/credits/purchases", {"amount": "10.00", "idempotency_key": "p1"}, key=org.owner_key)
            alice = add_member(api, org, "alice@acme.test")
            bob = add_member(api, org, "bob@acme.test")
            api.put(f"{base}/caps/members/{alice['id']}", {"limit": "0.50"}, key=org.owner_key, expect=200)

            def send(name: str, path: str, body: Any, key: str | None = org.service_key, **headers: str) -> Any:
                if key is not None:
                    headers.setdefault("Authorization", f"Bearer {key}")
                headers.setdefault("Content-Type", JSON)
                content = body if isinstance(body, bytes) else encode(body)
                before = counted.calls
                response = client.post(path, content=content, headers=headers)
                answers.append(
                    Answer(
                        name,
                        response.status_code,
                        sorted(response.headers.items()),
                        response.content,
                        counted.calls > before,
                    )
                )
                return response.json() if response.headers.get("content-type") == JSON else None

            granted = send("granted", f"{base}/holds", hold(org.owner_id, "h1"))
            send("replay", f"{base}/holds", hold(org.owner_id, "h1"))
            send("idempotency conflict", f"{base}/holds", hold(org.owner_id, "h1", amount="2.00"))
            tokens = {"input_tokens": 1_000, "max_output_tokens": 400_000}
            send("partial", f"{base}/holds", {**hold(org.owner_id, "h2"), "estimate": tokens, "allow_partial": True})
            send("x-api-key", f"{base}/holds", hold(org.owner_id, "h3"), key=None, **{"X-API-Key": org.service_key})
            send("member's own key", f"{base}/holds", hold(bob["id"], "h4"), key=bob["api_key"])
            send("member cap reached", f"{base}/holds", hold(alice["id"], "h5"))
            send("credits exhausted", f"{base}/holds", hold(org.owner_id, "h6", amount="50.00"))
            send("unknown model", f"{base}/holds", hold(org.owner_id, "h7", model="no-such-model"))
            surrogate = encode(hold(org.owner_id, "SURROGATE")).replace(b"SURROGATE", b"\\ud800")
            send("lone surrogate", f"{base}/holds", surrogate)
            send("no key", f"{base}/holds", hold(org.owner_id, "h8"), key=None)
            send("unknown key", f"{base}/holds", hold(org.owner_id, "h8"), key="sm_nobody")
            send("another organization's key", f"{base}/holds", hold(org.owner_id, "h8"), key=other.service_key)
            send("another member", f"{base}/holds", hold(alice["id"], "h8"), key=bob["api_key"])
            send("unknown organization", "/v1/organizations/org_nope/holds", hold(org.owner_id, "h8"))
            send("invalid body", f"{base}/holds", hold(org.owner_id, "h9", surface="fax"))
            send("extra field", f"{base}/holds", hold(org.owner_id, "h9", colour="red"))
            send("money as a number", f"{base}/holds", {**hold(org.owner_id, "h9"), "estimate": {"amount": 1.5}})
            send("estimate as a string", f"{base}/holds", {**hold(org.owner_id, "h9"), "estimate": "1.00"})
            send("body not an object", f"{base}/holds", [1, 2])
            send("invalid body, no key", f"{base}/holds", {"model": SONNET}, key=None)
            send("malformed JSON", f"{base}/holds", b'{"idempotency_key": ')
            send("malformed JSON, no key", f"{base}/holds", b"{", key=None)
            send("not UTF-8", f"{base}/holds", b'{"idempotency_key": "\xff"}')
            send("empty body", f"{base}/holds", b"")
            send("text/plain", f"{base}/holds", hold(org.owner_id, "h9"), **{"Content-Type": "text/plain"})
            send(
                "json with charset",
                f"{base}/holds",
                hold(org.owner_id, "h10"),
                **{"Content-Type": f"{JSON}; charset=utf-8"},
            )
            settle = f"{base}/holds/{granted['id']}/settle"
            usage = {"usage": {"input_tokens": 1_000, "output_tokens": 100}}
            send("settled", settle, usage)
            send("settled twice", settle, usage)
            send("settle of an unknown hold", f"{base}/holds/hold_nope/settle", usage)
            send("settle, invalid body", settle, {"usage": {"input_tokens": "1"}})
            send("settle, no key", settle, usage, key=None)
            send("settle, another organization's key", settle, usage, key=other.service_key)
    finally:
        app.engine.dispose()
    after = counters()
    return answers, {name: value - before.get(name, 0) for name, value in after.items() if value != before.get(name)}


# What FastAPI answers itself when the lean path is on: what the lean path hands over, and the one path it does
# not take (a content type with parameters).
HANDED_TO_FASTAPI = {
    "invalid body",
    "extra field",
    "money as a number",
    "estimate as a string",
    "body not an object",
    "invalid body, no key",
    "malformed JSON",
    "malformed JSON, no key",
    "not UTF-8",
    "empty body",
    "text/plain",
    "json with charset",
    "settle, invalid body",
}


@pytest.fixture
def two_databases(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[str, str]]:
    urls = []
    for name in ("fast", "fastapi"):
        path = tmp_path / f"{name}.db"
        shutil.copy(sqlite_template, path)
        urls.append(f"sqlite:///{path}")
    yield urls[0], urls[1]


def test_the_lean_path_answers_every_hold_and_settle_as_the_fastapi_routes_do(
    two_databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, fast_counted = script(two_databases[0], True, monkeypatch)
    reference, reference_counted = script(two_databases[1], False, monkeypatch)
    assert fast_counted == reference_counted
    assert reference_counted['seatmeter_holds_total{outcome="granted"}'] == 5  # granted, replay, partial, two keys
    assert [a.name for a in fast] == [a.name for a in reference]
    for lean, route in zip(fast, reference, strict=True):
        assert (lean.status, lean.headers, lean.body) == (route.status, route.headers, route.body), lean.name
    assert all(a.by_fastapi for a in reference)
    assert {a.name for a in fast if a.by_fastapi} == HANDED_TO_FASTAPI
    statuses = {a.name: a.status for a in reference}
    expected = {
        "granted": 201,
        "replay": 200,
        "idempotency conflict": 409,
        "member cap reached": 429,
        "credits exhausted": 402,
        "lone surrogate": 400,
        "no key": 401,
        "another organization's key": 403,
        "invalid body": 400,
        "invalid body, no key": 401,
        "malformed JSON": 400,
        "settled": 200,
        "settled twice": 200,
        "settle, no key": 401,
    }
    assert {name: statuses[name] for name in expected} == expected


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/organizations/org_1/holds", ("org_1", "")),
        ("/v1/organizations/org_1/holds/hold_2/settle", ("org_1", "hold_2")),
        ("/v1/organizations/org_1/holds/", None),
        ("/v1/organizations//holds", None),
        ("/v1/organizations/org_1/holds/hold_2/void", None),
        ("/v1/organizations/org_1/holds/hold_2", None),
        ("/v1/organizations/org_1/holds//settle", None),
        ("/v1/organizations/org_1/usage", None),
        ("/v2/organizations/org_1/holds", None),
    ],
)
def test_only_the_hold_and_settle_paths_take_the_lean_path(path: str, route: tuple[str, str] | None) -> None:
    assert hot_route(path) == route


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (RuntimeError("something nobody foresaw"), 500),
        (OperationalError("SELECT 1", {}, Exception("connection refused")), 503),
        (DataError("INSERT", {}, Exception("NUL")), 400),
    ],
)
def test_an_error_in_the_hold_service_is_answered_as_the_route_answers_it(
    app: App, monkeypatch: pytest.MonkeyPatch, failure: Exception, status: int
) -> None:
    async def broken(*_: object) -> None:
        raise failure

    monkeypatch.setattr(app.hold_batches, "authorize_async", broken)
    answers = []
    for fast_path in (True, False):
        with TestClient(create_app(app, fast_path=fast_path), raise_server_exceptions=False) as client:
            api = Api(client)
            org = create_org(api, name=f"Acme {fast_path}")
            path = f"/v1/organizations/{org.id}/holds"
            response = client.post(
                path, json=hold(org.owner_id, "h1"), headers={"Authorization": f"Bearer {org.service_key}"}
            )
            answers.append((response.status_code, sorted(response.headers.items()), response.content))
        if status == 500:  # and, as from any route, raised again for the server to log
            with TestClient(create_app(app, fast_path=fast_path)) as client, pytest.raises(RuntimeError):
                client.post(path, json=hold(org.owner_id, "h2"), headers={"Authorization": f"Bearer {org.service_key}"})
    assert answers[0] == answers[1]
    assert answers[0][0] == status
