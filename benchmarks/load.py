"""A load generator run as its own process: `python -m benchmarks.load URL KEY ORG MEMBERS SECONDS CONCURRENCY MODE`.

MODE is `holds` (POST .../holds) or `healthz` (GET /healthz, the HTTP stack's own limit). Prints one JSON line:
{"done", "errors", "seconds", "latencies_ms": [...]}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import httpx


async def _worker(client: httpx.AsyncClient, mode: str, org: str, members: list[str], deadline: float,
                  latencies: list[float], errors: list[int], k: int) -> None:
    i = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        if mode == "holds":
            response = await client.post(f"/v1/organizations/{org}/holds", json={
                "idempotency_key": f"http-{uuid.uuid4().hex}", "member_id": members[(k + i) % len(members)],
                "model": "claude-sonnet-4-5", "surface": "api", "estimate": {"amount": "0.01"}})
            ok = response.status_code == 201
        else:
            response = await client.get("/healthz")
            ok = response.status_code == 200
        latencies.append((time.perf_counter() - started) * 1000)
        if not ok:
            errors.append(response.status_code)
        i += 1


async def main(url: str, key: str, org: str, members: list[str], seconds: float, concurrency: int, mode: str) -> None:
    latencies: list[float] = []
    errors: list[int] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=30) as client:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(_worker(client, mode, org, members, deadline, latencies, errors, k)
                               for k in range(concurrency)))
        took = time.perf_counter() - started
    print(json.dumps({"done": len(latencies) - len(errors), "errors": len(errors), "error_statuses":
                      sorted(set(errors)), "seconds": took, "latencies_ms": latencies}))


if __name__ == "__main__":
    u, k, o, m, s, c, mode = sys.argv[1:8]
    asyncio.run(main(u, k, o, m.split(","), float(s), int(c), mode))
