"""usage_summary of an organization of 10,000 members: p95 latency, against the same reads done by hand.

The raw limit runs the statements the summary runs (the organization's row and the three reads of
`adapters.summary_repo`) on the bare driver, in one transaction, fetching every row: the database's and the
driver's share of the work, with no framework and no output built. The same summary through the HTTP endpoint
(in-process TestClient, JSON of 10,000 members) is reported beside it as `http_median_ms`.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from benchmarks.common import (
    OPERATOR_KEY,
    fresh_postgres,
    fresh_sqlite,
    make_app,
    make_org,
    percentile,
    postgres_available,
)
from benchmarks.ingest import _events
from benchmarks.registry import Result, Size, register
from seatmeter.adapters import summary_repo
from seatmeter.adapters.raw import Statement
from seatmeter.entrypoints.api.app import create_app
from seatmeter.services.usage import record_usage, usage_summary

__all__ = ["summary_10k"]

RAW = [
    Statement("SELECT * FROM organizations WHERE id = :org"),
    summary_repo.MEMBERS,
    summary_repo.LIMITS,
    summary_repo.CAPS,
]


@register("summary_10k")
def summary_10k(size: Size) -> Result:
    members = size.pick(10_000, 300)
    reps = size.pick(30, 5)
    url = size.postgres_url if postgres_available(size.postgres_url) is None else None
    url = fresh_postgres(url) if url else fresh_sqlite()
    app = make_app(url)
    org = make_org(app, members_n=members, member_cap="100.00")
    for start in range(0, members, 10_000):
        chunk = org.member_ids[start:start + 10_000]
        record_usage(app, org.service, org.id, {"events": _events(chunk, len(chunk), f"s{start}")})
    samples: list[float] = []
    for _ in range(reps):
        started = time.perf_counter()
        out: dict[str, Any] = usage_summary(app, org.owner, org.id)
        samples.append((time.perf_counter() - started) * 1000)
    assert len(out["members"]) == members
    database = "postgresql" if url.startswith("postgresql") else "sqlite"
    params = {"org": org.id, "period": out["period"]}
    raw: list[float] = []
    driver = app.engine.raw_connection()  # the pool's DBAPI connection: psycopg or sqlite3, no SQLAlchemy
    try:
        for _ in range(reps):
            started = time.perf_counter()
            cursor = driver.cursor()
            for statement in RAW:
                cursor.execute(statement.postgres if database == "postgresql" else statement.sqlite, params)
                cursor.fetchall()
            cursor.close()
            driver.rollback()
            raw.append((time.perf_counter() - started) * 1000)
    finally:
        driver.close()
    http: list[float] = []
    with TestClient(create_app(app)) as client:
        path, headers = f"/v1/organizations/{org.id}/usage/summary", {"Authorization": f"Bearer {OPERATOR_KEY}"}
        for _ in range(reps):
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            http.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    app.engine.dispose()
    return Result.latency("summary_10k", percentile(samples, 95), percentile(raw, 95), "ms p95",
                          members=members, database=database, median_ms=round(percentile(samples, 50), 2),
                          http_median_ms=round(percentile(http, 50), 2), http_p95_ms=round(percentile(http, 95), 2))
