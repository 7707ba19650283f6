"""A lean load generator, run as its own process so that it does not share an interpreter with the server.

    python -m benchmarks.load URL KEY ORG MEMBERS SECONDS CONCURRENCY MODE [OUT [RATE]]
    python -m benchmarks.load --trivial-server PORT      (a fixed-answer server: measures the generator's own ceiling)

MODE is `holds` (POST .../holds, a fresh idempotency key per hold), `healthz` (GET /healthz, the HTTP stack's
own limit) or `get:/some/path` (any GET, authenticated). Writes one JSON object to OUT, or prints it as one line:
{"done", "errors", "error_statuses", "seconds", "latencies_ms": [...]}. (The benchmark uses OUT: under heavy load
the printed line reached it cut at 128 KiB a few times in twenty runs, the exit status still 0; cause not found.)

Without RATE it is a closed loop over CONCURRENCY keep-alive HTTP/1.1 connections (each sends its next request as
soon as the answer to the previous one has arrived). With RATE it is an open loop: requests are due at a fixed
RATE per second whatever the answers do, sent over a pool of CONCURRENCY connections, and each latency is counted
from the moment its request was due, so time spent waiting for a free connection counts too (a closed loop slows
down with the server and leaves that wait out: "coordinated omission"). Either way it runs on uvloop, with
requests pre-encoded as bytes and responses parsed only as far as the status line and Content-Length: httpx spent
more CPU per request than the server it measured.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import uvloop

__all__ = ["Connection", "Requests", "run_load", "serve_trivial"]

MODEL = "claude-sonnet-4-5"


class Requests:
    """Pre-encoded requests. A hold's body differs only in its idempotency key, which has a fixed length so that
    the head (with its Content-Length) is encoded once per member."""

    def __init__(self, host: str, key: str, org: str, members: list[str], mode: str) -> None:
        self.mode = mode
        self.prefix = f"http-{os.getpid():x}-{time.time_ns():x}-".encode()
        auth = f"Authorization: Bearer {key}\r\n"
        if mode == "holds":
            path = f"/v1/organizations/{org}/holds"
            self.parts: list[tuple[bytes, bytes, bytes]] = []
            for member in members:
                before = b'{"idempotency_key": "' + self.prefix
                after = (
                    f'", "member_id": "{member}", "model": "{MODEL}", "surface": "api", '
                    '"estimate": {"amount": "0.01"}}'
                ).encode()
                length = len(before) + 16 + len(after)  # the counter is 16 hex digits
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n"
                    f"Content-Length: {length}\r\n\r\n"
                ).encode()
                self.parts.append((head + before, after, b""))
            self.expect = 201
        else:
            path = "/healthz" if mode == "healthz" else mode.removeprefix("get:")
            self.fixed = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()
            self.expect = 200
        self.counter = 0

    def next(self, k: int) -> bytes:
        if self.mode != "holds":
            return self.fixed
        self.counter += 1
        head, after, _ = self.parts[(k + self.counter) % len(self.parts)]
        return b"".join((head, b"%016x" % self.counter, after))


def take_response(buffer: bytearray) -> int | None:
    """The status of the whole response at the start of `buffer`, which is removed from it; None while it is
    incomplete. ValueError for a response without Content-Length (this generator reads no other)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("a response without Content-Length")
    stop = head.find(b"\r\n", at + 2)
    length = int(head[at + 17 : stop if stop >= 0 else len(head)])
    total = end + 4 + length
    if len(buffer) < total:
        return None
    status = int(buffer[9:12])
    del buffer[:total]
    return status


class Connection(asyncio.Protocol):
    """One keep-alive connection; `request` writes the bytes and waits for a whole response (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            status = take_response(self.buffer)
        except ValueError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            return
        if status is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    async def request(self, data: bytes) -> int:
        if self.transport is None:
            raise ConnectionError("not connected")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _worker(
    host: str, port: int, requests: Requests, k: int, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    loop = asyncio.get_running_loop()
    conn: Connection | None = None
    perf = time.perf_counter
    try:
        while perf() < deadline:
            if conn is None or conn.transport is None:
                _, conn = await loop.create_connection(Connection, host, port)
            data = requests.next(k)
            started = perf()
            try:
                status = await conn.request(data)
            except (ConnectionError, ValueError):
                errors.append(0)
                conn.close()
                conn = None
                continue
            latencies.append((perf() - started) * 1000)
            if status != requests.expect:
                errors.append(status)
    finally:
        if conn is not None:
            conn.close()


class _OpenLoop:
    """The open loop's pool: a request that comes due goes out at once on an idle connection, or waits for the
    first connection that frees up. Callbacks only, no task or future per request: at 2,000 requests/s a queue
    and a coroutine per connection cost the generator 68 µs a request, on the cores it shares with the server."""

    def __init__(self, requests: Requests, latencies: list[float], errors: list[int]) -> None:
        self.requests, self.latencies, self.errors = requests, latencies, errors
        self.idle: list[_PooledConnection] = []
        self.waiting: collections.deque[float] = collections.deque()
        self.alive = 0  # connections not lost
        self.busy = 0  # requests in flight
        self.drained = asyncio.Event()  # set whenever nothing is in flight or waiting

    def due(self, at: float) -> None:
        if self.idle:
            self.idle.pop().send(at)
        elif self.alive == 0:  # every connection is lost: it can never go
            self.errors.append(0)
        else:
            self.waiting.append(at)

    def free(self, conn: _PooledConnection) -> None:
        if self.waiting:
            conn.send(self.waiting.popleft())
            return
        self.idle.append(conn)
        if self.busy == 0:
            self.drained.set()

    def lost(self, conn: _PooledConnection, in_flight: bool) -> None:
        self.alive -= 1
        if in_flight:
            self.errors.append(0)
        if conn in self.idle:
            self.idle.remove(conn)
        if self.alive == 0:
            self.errors.extend(0 for _ in self.waiting)
            self.waiting.clear()
        if self.busy == 0 and not self.waiting:
            self.drained.set()


class _PooledConnection(asyncio.Protocol):
    """One keep-alive connection of the open loop's pool, sending one request at a time. A connection lost is
    not replaced: its request in flight counts as an error, and the others carry on."""

    def __init__(self, pool: _OpenLoop, k: int) -> None:
        self.pool, self.k = pool, k
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.at = -1.0  # the due time of the request in flight, or -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def send(self, at: float) -> None:
        assert self.transport is not None  # noqa: S101 - only connected connections are idle
        self.at = at
        self.pool.busy += 1
        self.transport.write(self.pool.requests.next(self.k))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        pool = self.pool
        try:
            status = take_response(self.buffer)
        except ValueError:  # an answer it cannot read: an error, and the connection is given up
            pool.errors.append(0)
            self.at = -1.0
            pool.busy -= 1
            if self.transport is not None:
                self.transport.close()
            return
        if status is None:
            return
        pool.latencies.append((time.perf_counter() - self.at) * 1000)
        if status != pool.requests.expect:
            pool.errors.append(status)
        self.at = -1.0
        pool.busy -= 1
        pool.free(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        in_flight = self.at >= 0
        if in_flight:
            self.pool.busy -= 1
        self.pool.lost(self, in_flight)


async def _open_loop(
    host: str, port: int, requests: Requests, rate: float, connections: int, seconds: float,
    latencies: list[float], errors: list[int],
) -> tuple[int, float]:
    """Requests due at `started + i / rate` until `seconds` have passed, then every answer awaited (at most 60 s
    more; what is still unanswered then counts as an error). Returns how many came due, and when the first was due
    (after the connections were made). It wakes once a millisecond at most and sends what came due meanwhile, each
    request with its own due time: uvloop's timers tick in whole milliseconds, and a shorter sleep returned at
    once, so the loop spun and took a core from the server it measured."""
    loop = asyncio.get_running_loop()
    pool = _OpenLoop(requests, latencies, errors)
    pooled: list[_PooledConnection] = []
    for k in range(connections):
        _, conn = await loop.create_connection(functools.partial(_PooledConnection, pool, k), host, port)
        pooled.append(conn)
    pool.idle.extend(pooled)
    pool.alive = len(pooled)
    perf = time.perf_counter
    started = perf()
    deadline = started + seconds
    sent = 0
    while (now := perf()) < deadline:
        while started + sent / rate <= now:
            pool.due(started + sent / rate)
            sent += 1
        await asyncio.sleep(max(0.001, started + sent / rate - perf()))
    if pool.busy or pool.waiting:
        pool.drained.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.drained.wait(), 60)
    errors.extend(0 for _ in range(pool.busy + len(pool.waiting)))
    for conn in pooled:
        if conn.transport is not None:
            conn.transport.close()
    return sent, started


async def run_load(
    url: str,
    key: str,
    org: str,
    members: list[str],
    seconds: float,
    concurrency: int,
    mode: str,
    rate: float = 0.0,
) -> dict[str, object]:
    """A closed loop over `concurrency` connections, or with `rate` an open loop at that many requests per second
    over a pool of `concurrency` connections (latency counted from each request's due time)."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    requests = Requests(f"{host}:{port}", key, org, members, mode)
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    extra: dict[str, object] = {}
    if rate > 0:
        sent, started = await _open_loop(host, port, requests, rate, concurrency, seconds, latencies, errors)
        extra = {"offered_per_s": rate, "due": sent}
    else:
        await asyncio.gather(
            *(_worker(host, port, requests, k, deadline, latencies, errors) for k in range(concurrency))
        )
    took = time.perf_counter() - started
    return {
        "done": len(latencies) - sum(1 for e in errors if e),
        "errors": len(errors),
        "error_statuses": sorted(set(errors)),
        "seconds": took,
        "latencies_ms": latencies,
        **extra,
    }


class _Trivial(asyncio.Protocol):
    ANSWER = b'HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\n\r\n{"status":"ok"}'

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        # Requests from this generator without a body (GET) end at the blank line; one answer per request.
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            self.transport.write(self.ANSWER)


async def serve_trivial(port: int) -> None:
    """Answer every GET with the same 15 bytes: what the generator reaches here is its own ceiling."""
    server = await asyncio.get_running_loop().create_server(_Trivial, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "--trivial-server":
        uvloop.run(serve_trivial(int(sys.argv[2])))
    else:
        u, k, o, m, s, c, mode = sys.argv[1:8]
        per_s = float(sys.argv[9]) if len(sys.argv) > 9 else 0.0
        result = uvloop.run(run_load(u, k, o, m.split(","), float(s), int(c), mode, per_s))
        result["latencies_ms"] = [round(x, 3) for x in result["latencies_ms"]]  # type: ignore[attr-defined]
        if len(sys.argv) > 8:  # OUT: write the result to this file (what the benchmark does)
            Path(sys.argv[8]).write_text(json.dumps(result))
        else:
            print(json.dumps(result), flush=True)
