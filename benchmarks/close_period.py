"""Period close for one organization of 10,000 members and 2,000,000 events (sales-assisted: an invoice in
arrears per member and model). raw_limit: the aggregate the close needs, written by hand."""

from __future__ import annotations

import importlib
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text

from benchmarks.common import OPERATOR, fresh_postgres, fresh_sqlite, make_app, make_org, postgres_available
from benchmarks.registry import Result, Size, register
from seatmeter.adapters.sql import bulk_insert
from seatmeter.adapters.tables import usage_events

__all__ = ["close_period"]

PERIOD = "2026-10"
RAW = ("SELECT member_id, model, period, sum(input_tokens + output_tokens + cache_write_5m_tokens + "
       "cache_write_1h_tokens + cache_read_tokens), sum(cost_nano) FROM usage_events WHERE organization_id = :o "
       "AND period = :p AND recorded_at <= :c GROUP BY member_id, model, period ORDER BY member_id, model")
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-6")


def _load_events(app: Any, org_id: str, members: list[str], n: int) -> None:
    """Set-up, not measured: October's events written straight into the table, 50,000 at a time."""
    occurred = datetime(2026, 10, 15, 12, tzinfo=UTC)
    recorded = datetime(2026, 11, 1, 1, tzinfo=UTC)
    for start in range(0, n, 50_000):
        rows = [
            {"organization_id": org_id, "id": f"evt_c{i:09d}", "idempotency_key": f"c{i}", "fingerprint": "f",
             "member_id": members[i % len(members)], "model": MODELS[i % 3], "surface": "api",
             "service_tier": "standard", "occurred_at": occurred, "period": PERIOD, "input_tokens": 1000,
             "output_tokens": 200, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
             "cost_nano": 6_000_000, "price_version": "bench", "hold_id": None, "exceeded_hold": False,
             "recorded_at": recorded}
            for i in range(start, min(n, start + 50_000))
        ]
        with app.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(insert(usage_events), rows)
            else:
                bulk_insert(conn, usage_events, rows)


@register("close_period")
def close_period(size: Size) -> Result:
    try:
        billing = importlib.import_module("seatmeter.services.billing")
    except ModuleNotFoundError:
        billing = None
    if billing is None or not hasattr(billing, "close_period"):
        return Result.skipped(
            "close_period", "s", "seatmeter.services.billing.close_period is not on this branch yet (issue 3)"
        )
    members_n, events_n = size.pick(10_000, 200), size.pick(2_000_000, 5_000)
    pg = postgres_available(size.postgres_url) is None
    url = fresh_postgres(size.postgres_url) if pg else fresh_sqlite()
    app = make_app(url)
    org = make_org(app, members_n=members_n, channel="sales_assisted", org_cap=None)
    _load_events(app, org.id, org.member_ids, events_n)
    if pg:
        # A month of usage is a month of autovacuum's analyzes; the set-up wrote it in seconds. Without statistics,
        # PostgreSQL takes the period for a few rows and sorts 2,000,000 of them on disk (docs/performance.md).
        with app.engine.begin() as conn:
            conn.execute(text("ANALYZE usage_events"))
    with app.engine.connect() as conn:
        started = time.perf_counter()
        groups = conn.execute(text(RAW), {"o": org.id, "p": PERIOD, "c": datetime.now(UTC)}).all()
        raw_s = time.perf_counter() - started
    started = time.perf_counter()
    invoice = billing.close_period(app, OPERATOR, org.id, PERIOD)
    value_s = time.perf_counter() - started
    app.engine.dispose()
    return Result.latency("close_period", value_s, raw_s, "s", members=members_n, events=events_n,
                          lines=len(invoice.get("lines", [])), raw_groups=len(groups),
                          database="postgresql" if pg else "sqlite", total=invoice.get("total"))
