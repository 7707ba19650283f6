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
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ValueError("a response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(self.buffer[9:12])
        del self.buffer[:total]
        if self.waiter is not None and not self.waiter.done():
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


async def _due_worker(
    host: str,
    port: int,
    requests: Requests,
    k: int,
    due: asyncio.Queue[float],
    latencies: list[float],
    errors: list[int],
) -> None:
    """Sends each request as `due` hands it out (its due time; a negative one means stop), on one connection."""
    loop = asyncio.get_running_loop()
    conn: Connection | None = None
    perf = time.perf_counter
    try:
        while (at := await due.get()) >= 0:
            if conn is None or conn.transport is None:
                _, conn = await loop.create_connection(Connection, host, port)
            try:
                status = await conn.request(requests.next(k))
            except (ConnectionError, ValueError):
                errors.append(0)
                conn.close()
                conn = None
                continue
            latencies.append((perf() - at) * 1000)
            if status != requests.expect:
                errors.append(status)
    finally:
        if conn is not None:
            conn.close()


async def _schedule(due: asyncio.Queue[float], rate: float, started: float, deadline: float, workers: int) -> int:
    """Puts each request's due time on the queue when it comes (`started + i / rate`), until the deadline; then
    one stop per worker. Returns how many were due. The loop's timers tick in milliseconds, so requests due within
    the same millisecond are put together, each still with its own due time."""
    perf = time.perf_counter
    sent = 0
    while (now := perf()) < deadline:
        while started + sent / rate <= now:
            due.put_nowait(started + sent / rate)
            sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - perf()))
    for _ in range(workers):
        due.put_nowait(-1.0)
    return sent


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
        due: asyncio.Queue[float] = asyncio.Queue()
        workers = [_due_worker(host, port, requests, k, due, latencies, errors) for k in range(concurrency)]
        sent, *_ = await asyncio.gather(_schedule(due, rate, started, deadline, concurrency), *workers)
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
