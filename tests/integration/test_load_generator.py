"""The benchmark's load generator (benchmarks/load.py) at tiny sizes: it counts what it sends, every hold it
sends is a new one, its fixed-answer server (its own ceiling) answers, and its open loop counts each latency
from when the request was due."""

from __future__ import annotations

import asyncio
from typing import cast

import uvloop
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from benchmarks.http_bench import free_port, start_trivial_server, stop_server
from benchmarks.load import _Trivial, run_load
from seatmeter.adapters.tables import holds
from seatmeter.adapters.threaded_server import serve_in_thread
from seatmeter.bootstrap import App
from seatmeter.entrypoints.api.app import create_app
from tests.conftest import Api, create_org


def test_the_load_generator_reaches_its_fixed_answer_server_without_errors() -> None:
    port = free_port()
    server = start_trivial_server(port)  # raises unless the server says "ready"
    try:
        result = uvloop.run(run_load(f"http://127.0.0.1:{port}", "-", "-", ["-"], 0.3, 4, "healthz"))
    finally:
        stop_server(server)
    assert result["errors"] == 0 and result["done"] > 100
    assert len(result["latencies_ms"]) == result["done"]  # type: ignore[arg-type]


def test_every_hold_the_load_generator_sends_is_granted_once_and_counted(app: App) -> None:
    api_app = create_app(app)
    with TestClient(api_app) as client:
        api = Api(client)
        org = create_org(api)
        api.post(
            f"/v1/organizations/{org.id}/credits/purchases",
            {"amount": "1000.00", "idempotency_key": "load-credits"},
            key=org.owner_key,
            expect=201,
        )
    with serve_in_thread(api_app) as base:
        result = uvloop.run(run_load(base, org.service_key, org.id, [org.owner_id], 0.5, 4, "holds"))
        health = uvloop.run(run_load(base, org.service_key, org.id, [], 0.2, 2, "healthz"))
        stack = uvloop.run(run_load(base, org.service_key, org.id, [], 0.2, 2, "get:/metrics"))
    assert result["errors"] == 0 and result["done"] > 0, result["error_statuses"]
    with app.engine.connect() as conn:
        count, keys = conn.execute(
            select(func.count(), func.count(holds.c.idempotency_key.distinct())).where(
                holds.c.organization_id == org.id
            )
        ).one()
    assert count == keys == result["done"]  # each answer a new hold: no replay, nothing lost or double-counted
    assert health["errors"] == 0 and health["done"] > 0
    assert stack["errors"] == 0 and stack["done"] > 0


def test_a_refused_request_is_counted_as_an_error_with_its_status(app: App) -> None:
    with serve_in_thread(create_app(app)) as base:
        result = uvloop.run(run_load(base, "not-a-key", "org_x", [], 0.2, 2, "get:/v1/organizations/org_x"))
    assert result["done"] == 0 and result["errors"] > 0 and result["error_statuses"] == [401]


class _SlowAnswers(asyncio.Protocol):
    """Answers each GET 20 ms after it arrives, one at a time per connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            asyncio.get_running_loop().call_later(0.02, self.transport.write, _Trivial.ANSWER)


async def _open_loop_against_slow_server(rate: float, seconds: float, pool: int) -> dict[str, object]:
    server = await asyncio.get_running_loop().create_server(_SlowAnswers, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        return await run_load(f"http://127.0.0.1:{port}", "-", "-", ["-"], seconds, pool, "healthz", rate)


def test_the_open_loop_sends_at_its_rate_and_counts_latency_from_each_due_time() -> None:
    # 100 requests/s due over 0.5 s, one connection, a server that takes 20 ms each: it can answer 50/s, so the
    # requests queue up, and the last of the 50 waits about 0.5 s. Counted from when each was sent (a closed loop's
    # view), every latency would be about 20 ms.
    result = uvloop.run(_open_loop_against_slow_server(100, 0.5, 1))
    latencies = cast(list[float], result["latencies_ms"])
    assert result["errors"] == 0 and result["due"] == result["done"] == len(latencies)
    assert 49 <= cast(int, result["due"]) <= 51 and result["offered_per_s"] == 100
    assert max(latencies) > 300 and min(latencies) > 15  # the loop's timers tick in whole milliseconds
    # With enough connections, nothing waits for one: each latency is the server's 20 ms and a little.
    pooled = uvloop.run(_open_loop_against_slow_server(100, 0.5, 8))
    assert pooled["errors"] == 0 and pooled["done"] == pooled["due"]
    assert max(cast(list[float], pooled["latencies_ms"])) < 100


class _Hangup(asyncio.Protocol):
    """Closes the connection on the first request it gets."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.close()


def test_the_open_loop_counts_requests_on_lost_connections_as_errors_and_ends_on_time() -> None:
    async def run() -> dict[str, object]:
        server = await asyncio.get_running_loop().create_server(_Hangup, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run_load(f"http://127.0.0.1:{port}", "-", "-", ["-"], 0.3, 2, "healthz", 100)

    result = uvloop.run(run())
    # Both connections are lost on their first request; every request due is an error, none is waited for.
    assert result["done"] == 0 and result["errors"] == result["due"] and cast(int, result["due"]) >= 25
    assert cast(float, result["seconds"]) < 5
