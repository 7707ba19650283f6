"""usage_summary of an organization of 10,000 members: p95 latency, against the same reads done by hand."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from benchmarks.common import fresh_postgres, fresh_sqlite, make_app, make_org, percentile, postgres_available
from benchmarks.ingest import _events
from benchmarks.registry import Result, Size, register
from seatmeter.services.usage import record_usage, usage_summary

__all__ = ["summary_10k"]

RAW = [
    "SELECT * FROM organizations WHERE id = :o",
    "SELECT * FROM limit_accounts WHERE organization_id = :o",
    "SELECT * FROM caps WHERE organization_id = :o",
    "SELECT id, email, name FROM members WHERE organization_id = :o ORDER BY created_at, id",
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
    raw: list[float] = []
    with app.engine.connect() as conn:
        for _ in range(reps):
            started = time.perf_counter()
            for sql in RAW:
                conn.execute(text(sql), {"o": org.id}).all()
            raw.append((time.perf_counter() - started) * 1000)
    app.engine.dispose()
    database = "postgresql" if url.startswith("postgresql") else "sqlite"
    return Result.latency("summary_10k", percentile(samples, 95), percentile(raw, 95), "ms p95",
                          members=members, database=database, median_ms=round(percentile(samples, 50), 2))
