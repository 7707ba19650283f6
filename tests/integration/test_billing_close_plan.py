"""The close's aggregate on PostgreSQL: hashed, never sorted, even on a table that was never analyzed; its groups
come back in the same order as on SQLite; the planner settings it takes end with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine

from seatmeter.adapters import billing_repo
from seatmeter.adapters.sql import bulk_insert
from seatmeter.adapters.tables import usage_events

pytestmark = pytest.mark.postgres

ORG = "org_close_plan"
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-6")
RECORDED = datetime(2026, 11, 1, 1, tzinfo=UTC)


def _events(n: int) -> list[dict[str, object]]:
    return [
        {
            "organization_id": ORG,
            "id": f"evt_p{i:07d}",
            "idempotency_key": f"p{i}",
            "fingerprint": "f",
            "member_id": f"mem_{i % 97:03d}",
            "model": MODELS[i % 3],
            "surface": "api",
            "service_tier": "standard",
            "occurred_at": RECORDED - timedelta(days=10),
            "period": "2026-09" if i % 10 == 0 else "2026-10",  # a tenth are late usage of the period before
            "input_tokens": i % 1000,
            "output_tokens": 7,
            "cache_write_5m_tokens": 0,
            "cache_write_1h_tokens": 1,
            "cache_read_tokens": 2,
            "cost_nano": 1_000 + i,
            "price_version": "test",
            "hold_id": None,
            "exceeded_hold": False,
            "recorded_at": RECORDED,
        }
        for i in range(n)
    ]


def test_close_aggregate_is_hashed_and_sorted_in_python(pg_url: str) -> None:
    engine = create_engine(pg_url)
    events = _events(30_000)
    cutoff = RECORDED + timedelta(hours=1)
    try:
        with engine.begin() as conn:
            bulk_insert(conn, usage_events, events)  # no ANALYZE: the planner knows nothing of these rows
        with engine.begin() as conn:
            before = [conn.exec_driver_sql(f"SHOW {name}").scalar() for name in ("enable_sort", "work_mem")]
            statement = billing_repo.totals_statement(ORG, "2026-10", cutoff, None).compile(dialect=conn.dialect)
            with billing_repo.hashed_aggregates(conn):
                plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(statement), statement.params))
            assert "HashAggregate" in plan, plan
            assert "Sort" not in plan, plan
            # SET LOCAL ... TO DEFAULT: the rest of the transaction, and the pooled connection, are as before.
            assert [conn.exec_driver_sql(f"SHOW {name}").scalar() for name in ("enable_sort", "work_mem")] == before
            totals = billing_repo.usage_totals(conn, ORG, "2026-10", cutoff, None)
    finally:
        engine.dispose()
    expected: dict[tuple[str, str, str], int] = {}
    for e in events:
        key = (str(e["period"]), str(e["member_id"]), str(e["model"]))
        expected[key] = expected.get(key, 0) + int(e["cost_nano"])  # type: ignore[call-overload]
    assert [(t.period, t.member_id, t.model) for t in totals] == sorted(expected)
    assert {(t.period, t.member_id, t.model): t.cost_nano for t in totals} == expected
    assert sum(t.tokens["input"] for t in totals) == sum(int(e["input_tokens"]) for e in events)  # type: ignore[call-overload]
