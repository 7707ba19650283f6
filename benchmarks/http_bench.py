"""Holds per second and p99 latency through `seatmeter serve` (2 workers, PostgreSQL), load from another process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.common import (
    OPERATOR_KEY,
    fresh_postgres,
    fresh_sqlite,
    make_app,
    make_org,
    percentile,
    postgres_available,
)
from benchmarks.registry import Result, Size, register
from seatmeter.services.organizations import create_service_key

__all__ = ["free_port", "holds_http", "start_server", "stop_server"]

WORKERS = 2
CONCURRENCY = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, workers: int = WORKERS, **env: str) -> subprocess.Popen[bytes]:
    seatmeter = Path(sys.executable).with_name("seatmeter")
    environ = {**os.environ, "SEATMETER_DATABASE_URL": url, "SEATMETER_OPERATOR_KEY": OPERATOR_KEY, **env}
    proc = subprocess.Popen(
        [str(seatmeter), "serve", "--port", str(port), "--workers", str(workers)],
        env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            message = proc.stderr.read().decode() if proc.stderr else ""
            stop_server(proc)
            raise RuntimeError(f"seatmeter serve exited: {message}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError("seatmeter serve did not answer /healthz within 60 s")


def stop_server(proc: subprocess.Popen[bytes], sig: int = 15) -> None:
    """Stop the server's whole process group (master and workers); SIGKILL if it lingers, or if asked to."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    if proc.stderr:
        proc.stderr.close()


def _load(base: str, key: str, org: str, members: list[str], seconds: float, mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", base, key, org, ",".join(members), str(seconds), str(CONCURRENCY),
         mode], capture_output=True, check=True, text=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@register("holds_http")
def holds_http(size: Size) -> Result:
    seconds = size.pick(15, 2)
    pg = postgres_available(size.postgres_url) is None
    url = fresh_postgres(size.postgres_url) if pg else fresh_sqlite()
    app = make_app(url)
    org = make_org(app, members_n=32)
    key = create_service_key(app.uow(), org.owner, org.id, app.clock.now())
    app.engine.dispose()
    port = free_port()
    proc = start_server(url, port)
    try:
        base = f"http://127.0.0.1:{port}"
        _load(base, key, org.id, org.member_ids, 1, "holds")  # warm both workers
        holds = _load(base, key, org.id, org.member_ids, seconds, "holds")
        health = _load(base, key, org.id, org.member_ids, seconds, "healthz")
    finally:
        stop_server(proc)
    latencies = holds["latencies_ms"]
    assert isinstance(latencies, list)
    value = float(holds["done"]) / float(holds["seconds"])  # type: ignore[arg-type]
    raw = float(health["done"]) / float(health["seconds"])  # type: ignore[arg-type]
    return Result.throughput(
        "holds_http", value, raw, "holds/s", p99_ms=round(percentile(latencies, 99), 2),
        p50_ms=round(percentile(latencies, 50), 2), errors=holds["errors"], workers=WORKERS,
        concurrency=CONCURRENCY, database="postgresql" if pg else "sqlite", raw_limit_is="GET /healthz",
    )
