# ruff: noqa: T201  (a benchmark prints its figures)
"""gateway_overhead: the latency the Anthropic gateway adds to a Messages call, against calling the upstream directly.

Two real servers in their own processes, as in production: the local fake upstream, and `seatmeter serve` (SQLite,
its production server settings) pointed at it. This process sends the same small non-streaming request, one at a
time over keep-alive connections, alternately to the upstream and through the gateway, so both see the same machine
state. The gateway's cost per request is authentication, a hold (one transaction), the forward, and a settle (one
transaction).

    python benchmarks/gateway_overhead.py [--requests 400] [--database-url postgresql+psycopg://...]

Prints p50 and p99 of both paths and of the difference; `run()` returns
`{"name": "gateway_overhead", "value": <added p50 ms>, "unit": "ms", "raw_limit": <direct p50 ms>,
"ratio": <direct p50 / gateway p50>}`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

VENDOR_KEY = "sk-ant-bench"
BODY = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}
FAKE_SERVER = (
    "import sys, uvicorn\n"
    "from seatmeter.adapters.fake_anthropic import FakeAnthropic\n"
    "uvicorn.run(FakeAnthropic(api_key=sys.argv[2]).app(), host='127.0.0.1', port=int(sys.argv[1]),"
    " log_level='warning', access_log=False)\n"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout_s} s")


@contextmanager
def _process(args: list[str], env: dict[str, str], probe_url: str) -> Iterator[None]:
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_up(probe_url, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _member_key(env: dict[str, str]) -> str:
    """An organization with one member, created on the benchmark's database; returns the member's key."""
    from seatmeter.bootstrap import build
    from seatmeter.domain.auth import Principal, PrincipalKind
    from seatmeter.services.organizations import add_member, create_organization
    from seatmeter.services.seats import add_seats, assign_seat
    from seatmeter.settings import Settings

    app = build(Settings(database_url=env["SEATMETER_DATABASE_URL"]))
    operator = Principal(PrincipalKind.OPERATOR)
    now = app.clock.now()
    org, _ = create_organization(app.uow(), operator, {
        "name": "Bench", "channel": "sales_assisted", "seat_prices": {"enterprise": "10.00"},
        "primary_owner": {"email": "owner@bench.test", "name": "Owner"}}, now)
    member = add_member(app.uow(), operator, org.id, {"email": "dev@bench.test", "name": "Dev", "role": "member"}, now)
    add_seats(app, operator, org.id, {"seat_type": "enterprise", "quantity": 1})
    assign_seat(app, operator, org.id, member.id, {"seat_type": "enterprise"})
    app.engine.dispose()
    return member.api_key


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(requests: int = 400, warmup: int = 40, database_url: str = "") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as workdir:
        fake_port, gateway_port = _free_port(), _free_port()
        fake_url, gateway_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{gateway_port}"
        database_url = database_url or f"sqlite:///{Path(workdir) / 'bench.db'}"
        env = {**os.environ, "SEATMETER_DATABASE_URL": database_url,
               "SEATMETER_ANTHROPIC_UPSTREAM": fake_url, "SEATMETER_ANTHROPIC_API_KEY": VENDOR_KEY}
        key = _member_key(env)
        seatmeter = str(Path(sys.executable).with_name("seatmeter"))
        with (_process([sys.executable, "-c", FAKE_SERVER, str(fake_port), VENDOR_KEY], env, fake_url),
              _process([seatmeter, "serve", "--port", str(gateway_port)], env, f"{gateway_url}/healthz"),
              httpx.Client(timeout=30) as client):
            direct_headers = {"x-api-key": VENDOR_KEY, "anthropic-version": "2023-06-01"}
            gateway_headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
            direct: list[float] = []
            gateway: list[float] = []
            for i in range(warmup + requests):
                for url, headers, samples in ((f"{fake_url}/v1/messages", direct_headers, direct),
                                              (f"{gateway_url}/gateway/anthropic/v1/messages", gateway_headers,
                                               gateway)):
                    started = time.perf_counter()
                    response = client.post(url, json=BODY, headers=headers)
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise RuntimeError(f"{url} answered {response.status_code}: {response.text}")
                    if i >= warmup:
                        samples.append(elapsed_ms)
    return {
        "direct_p50_ms": statistics.median(direct), "direct_p99_ms": _percentile(direct, 0.99),
        "gateway_p50_ms": statistics.median(gateway), "gateway_p99_ms": _percentile(gateway, 0.99),
        "requests": requests,
    }


def run(requests: int = 400, database_url: str = "") -> dict[str, Any]:
    """`database_url` empty: a new SQLite file (the embedded default); a PostgreSQL URL measures that instead."""
    figures = measure(requests, database_url=database_url)
    added_p50 = figures["gateway_p50_ms"] - figures["direct_p50_ms"]
    added_p99 = figures["gateway_p99_ms"] - figures["direct_p99_ms"]
    print(f"gateway_overhead: {requests} sequential non-streaming requests each way "
          f"({database_url.split(':')[0] if database_url else 'sqlite'})")
    print(f"  direct to upstream  p50 {figures['direct_p50_ms']:.2f} ms  p99 {figures['direct_p99_ms']:.2f} ms")
    print(f"  through the gateway p50 {figures['gateway_p50_ms']:.2f} ms  p99 {figures['gateway_p99_ms']:.2f} ms")
    print(f"  added               p50 {added_p50:.2f} ms  p99 {added_p99:.2f} ms")
    return {
        "name": "gateway_overhead",
        "value": round(added_p50, 3),
        "unit": "ms",
        "raw_limit": round(figures["direct_p50_ms"], 3),
        "ratio": round(figures["direct_p50_ms"] / figures["gateway_p50_ms"], 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--database-url", default="", help="default: a new SQLite file")
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.requests, arguments.database_url)))
