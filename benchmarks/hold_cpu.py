"""CPU per hold in the server process, with the lean hold path and without it:
`python -m benchmarks.hold_cpu [--rounds 8] [--holds 2000] [--url DATABASE_URL] [--no-service]`.

The ASGI app is driven in-process, as uvicorn calls it but with no socket and no HTTP parsing (those are
uvicorn's, the same either way), by CONCURRENCY tasks, on one App and one organization. `time.process_time()`
counts every thread of the process (the event loop and the group commit's workers), so a busy machine slows
the wall clock but not this figure much. The two apps alternate round by round (A B B A A B ...), and the
median per hold of each is printed with every round's figure. `--no-service` answers every hold with one fixed
granted hold instead of deciding it (no database), which leaves the HTTP stack's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import fresh_sqlite, make_app, make_org
from seatmeter.domain.money import Money
from seatmeter.entrypoints.api.app import create_app
from seatmeter.services.holds import HoldView
from seatmeter.services.organizations import create_service_key

CONCURRENCY = 16


async def post(app: Any, path: str, key: str, body: dict[str, Any]) -> int:
    content = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": content, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def holds(app: Any, path: str, key: str, members: list[str], n: int) -> None:
    async def client(k: int) -> None:
        for i in range(k, n, CONCURRENCY):
            body = {
                "idempotency_key": f"cpu-{uuid.uuid4().hex}",
                "member_id": members[i % len(members)],
                "model": "claude-sonnet-4-5",
                "surface": "api",
                "estimate": {"amount": "0.01"},
            }
            status = await post(app, path, key, body)
            if status != 201:
                raise RuntimeError(f"a hold answered {status}")

    await asyncio.gather(*(client(k) for k in range(CONCURRENCY)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hold_cpu")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--holds", type=int, default=2_000)
    parser.add_argument("--url", default="", help="a migrated database (default: a fresh SQLite file)")
    parser.add_argument("--no-service", action="store_true", help="a fixed answer instead of the group commit")
    args = parser.parse_args()
    rounds, n = args.rounds, args.holds
    seatmeter = make_app(args.url or fresh_sqlite())
    org = make_org(seatmeter, members_n=32)
    key = create_service_key(seatmeter.uow(), org.owner, org.id, seatmeter.clock.now())
    if args.no_service:
        view = HoldView("hold_fixed", Money.parse("0.01"), None, datetime(2026, 1, 1, tzinfo=UTC), "open")

        async def fixed(*_: object) -> HoldView:
            return view

        seatmeter.hold_batches.authorize_async = fixed  # type: ignore[method-assign]
    apps = {"lean": create_app(seatmeter), "fastapi": create_app(seatmeter, fast_path=False)}
    path = f"/v1/organizations/{org.id}/holds"
    per_hold_us: dict[str, list[float]] = {name: [] for name in apps}

    async def run() -> None:
        for app in apps.values():  # warm both: key cache, price book, pools
            await holds(app, path, key, org.member_ids, 200)
        for r in range(rounds):
            order = list(apps) if r % 2 == 0 else list(reversed(apps))
            for name in order:
                started = time.process_time()
                await holds(apps[name], path, key, org.member_ids, n)
                per_hold_us[name].append((time.process_time() - started) / n * 1e6)

    asyncio.run(run())
    seatmeter.hold_batches.close()
    seatmeter.engine.dispose()
    for name, figures in per_hold_us.items():
        rounded = ", ".join(f"{f:.0f}" for f in figures)
        print(f"{name}: median {statistics.median(figures):.0f} µs CPU per hold (rounds: {rounded})")
    ratio = statistics.median(per_hold_us["lean"]) / statistics.median(per_hold_us["fastapi"])
    print(f"lean / fastapi: {ratio:.2f}")


if __name__ == "__main__":
    main()
