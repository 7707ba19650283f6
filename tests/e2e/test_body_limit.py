"""A request's body is bounded (entrypoints/api/body_limit.py): over SEATMETER_MAX_BODY_BYTES it is refused with a
413 in the error envelope, before it is read, and nothing is written."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benchmarks.http_bench import free_port, start_server, stop_server
from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.db import upgrade
from seatmeter.entrypoints.api.app import create_app
from tests.conftest import NOW, OPERATOR_KEY, Api, create_org, make_app

LIMIT = 4_000


@pytest.fixture
def small(database_url: str, clock: FixedClock) -> Iterator[Api]:
    app = make_app(database_url, clock, max_body_bytes=LIMIT)
    with TestClient(create_app(app)) as client:
        yield Api(client)
    app.engine.dispose()


def _batch(n: int) -> dict[str, Any]:
    return {
        "events": [
            {"idempotency_key": f"k{i}", "member_id": "m", "model": "claude-sonnet-4-5", "surface": "api",
             "occurred_at": NOW.isoformat(), "input_tokens": 10, "output_tokens": 1}
            for i in range(n)
        ]
    }  # fmt: skip


def _usage_spend(api: Api, org_id: str, key: str) -> str:
    summary = api.get(f"/v1/organizations/{org_id}/usage/summary", key=key, expect=200)
    return str(summary["total"])


def _chunks(body: bytes, size: int = 1_000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_body_over_the_bound_is_refused_with_413_and_nothing_is_written(small: Api) -> None:
    org = create_org(small, seats=1)
    batch = _batch(40)
    for event in batch["events"]:
        event["member_id"] = org.owner_id
    before = _usage_spend(small, org.id, org.owner_key)
    answer = small.post(f"/v1/organizations/{org.id}/usage", batch, key=org.service_key, expect=413)
    assert answer["error"]["code"] == "request_too_large"
    assert f"{LIMIT:,} bytes" in answer["error"]["message"]
    assert "split a usage batch" in answer["error"]["resume"]
    assert _usage_spend(small, org.id, org.owner_key) == before
    # Within the bound the same route works.
    small.post(f"/v1/organizations/{org.id}/usage", {"events": batch["events"][:5]}, key=org.service_key, expect=200)
    assert _usage_spend(small, org.id, org.owner_key) != before


def test_a_body_sent_without_a_length_is_counted_as_it_arrives(small: Api) -> None:
    org = create_org(small, seats=1)
    headers = {"Authorization": f"Bearer {org.service_key}", "Content-Type": "application/json"}
    events = _batch(40)["events"]
    for event in events:
        event["member_id"] = org.owner_id
    big = json.dumps({"events": events}).encode()
    assert len(big) > LIMIT
    refused = small.client.post(f"/v1/organizations/{org.id}/usage", content=_chunks(big), headers=headers)
    assert refused.status_code == 413, refused.text
    assert "content-length" not in {k.lower() for k in refused.request.headers}
    assert refused.json()["error"]["code"] == "request_too_large"
    # A chunked body within the bound reaches the route whole.
    fits = json.dumps({"events": events[:5]}).encode()
    accepted = small.client.post(f"/v1/organizations/{org.id}/usage", content=_chunks(fits, 100), headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"accepted": 5, "duplicates": 0}


def test_the_gateway_answers_in_the_messages_apis_shape(small: Api) -> None:
    path = "/gateway/anthropic/v1/messages"
    small.post(path, {"model": "x", "messages": []}, key="any", expect=401)  # a real route: within the bound, answered
    answer = small.post(path, {"model": "x", "messages": [{"role": "user", "content": "y" * LIMIT}]}, key="any",
                        expect=413)  # fmt: skip
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "request_too_large"
    assert answer["error"]["code"] == "request_too_large"


def test_the_bound_is_in_the_openapi_documents_error_codes(small: Api) -> None:
    document = small.get("/openapi.json", key=None, expect=200)
    codes = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert "request_too_large" in codes


def test_the_served_process_refuses_an_announced_length_without_waiting_for_the_body(tmp_path: Path) -> None:
    """Through `seatmeter serve` (uvicorn, httptools): the headers alone announce 10 GB, no byte of the body is
    sent, and the 413 comes back at once."""
    url = f"sqlite:///{tmp_path / 'served.db'}"
    upgrade(url)
    port = free_port()
    server = start_server(url, port, workers=1, SEATMETER_MAX_BODY_BYTES=str(LIMIT))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            started = time.monotonic()
            conn.sendall(
                b"POST /v1/organizations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + OPERATOR_KEY.encode() + b"\r\nContent-Length: 10000000000\r\n\r\n"
            )
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                answer += chunk
            took = time.monotonic() - started
    finally:
        stop_server(server)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"request_too_large"' in answer
    assert took < 5
