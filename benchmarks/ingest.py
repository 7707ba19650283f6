"""Idempotent usage events per second through record_usage batches, against a plain bulk insert of the same rows."""

from __future__ import annotations

import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import text

from benchmarks.common import fresh_postgres, fresh_sqlite, make_app, make_org, postgres_available, rate
from benchmarks.registry import Result, Size, register
from seatmeter.bootstrap import App
from seatmeter.domain.ids import new_ids
from seatmeter.services.usage import MAX_BATCH, record_usage

__all__ = ["ingest_postgres", "ingest_sqlite"]

COLUMNS = ("organization_id", "id", "idempotency_key", "fingerprint", "member_id", "model", "surface", "service_tier",
           "occurred_at", "period", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
           "cache_read_tokens", "cost_nano", "price_version", "hold_id", "exceeded_hold", "recorded_at")
TYPES = ["text"] * 8 + ["timestamptz", "text"] + ["int8"] * 6 + ["text", "text", "bool", "timestamptz"]


def _events(members: list[str], n: int, tag: str) -> list[dict[str, Any]]:
    at = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0).isoformat()
    return [
        {"idempotency_key": f"{tag}-{i}", "member_id": members[i % len(members)], "model": "claude-sonnet-4-5",
         "surface": "api", "occurred_at": at, "input_tokens": 1000 + i % 100, "output_tokens": 200,
         "cache_read_tokens": 50}
        for i in range(n)
    ]


def _service(app: App, org: Any, batches: list[list[dict[str, Any]]]) -> int:
    done = 0
    for events in batches:
        result = record_usage(app, org.service, org.id, {"events": events})
        done += result["accepted"] + result["duplicates"]
    return done


def _raw_rows(org_id: str, batches: list[list[dict[str, Any]]], sqlite_text: bool) -> list[list[tuple[Any, ...]]]:
    now: Any = datetime.now(UTC)
    if sqlite_text:
        now = now.replace(tzinfo=None).isoformat(sep=" ")
    # The same ids as the service's (time-ordered, domain/ids.py), though since migration 0006 no index holds them.
    return [
        [(org_id, event_id, f"raw-{e['idempotency_key']}", "fp", e["member_id"], e["model"],
          e["surface"], "standard", now, "2026-11", e["input_tokens"], e["output_tokens"], 0, 0, 50, 1234, "raw",
          None, False, now) for e, event_id in zip(events, new_ids("evt", len(events)), strict=True)]
        for events in batches
    ]


def _insert_sql(p: str) -> str:
    return f"INSERT INTO usage_events ({', '.join(COLUMNS)}) VALUES ({', '.join([p] * len(COLUMNS))})"


def _run(name: str, url: str, size: Size, raw: Any) -> Result:
    per_batch = min(MAX_BATCH, size.pick(MAX_BATCH, 500))
    n_batches = size.pick(5, 2)
    app = make_app(url)
    org = make_org(app, members_n=100)
    _service(app, org, [_events(org.member_ids, 200, "warm")])
    if not url.startswith("sqlite"):
        # What autovacuum does on any PostgreSQL left at its defaults (it is off on the machines measured here):
        # without statistics, the lookup of a batch's keys was planned as a scan of the organization's events.
        with app.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    batches = [_events(org.member_ids, per_batch, f"b{b}") for b in range(n_batches)]
    raw_batches = _raw_rows(org.id, batches, url.startswith("sqlite"))
    # Alternating batches, service then raw, so a drift of the machine (or of the growing table) weighs on both.
    service_s, raw_s, ratios = 0.0, 0.0, []
    for events, rows in zip(batches, raw_batches, strict=True):
        started = time.perf_counter()
        _service(app, org, [events])
        took = time.perf_counter() - started
        started = time.perf_counter()
        raw(url, [rows])
        raw_took = time.perf_counter() - started
        service_s, raw_s = service_s + took, raw_s + raw_took
        ratios.append(raw_took / took)
    replay = rate(lambda: _service(app, org, batches[:1]))
    app.engine.dispose()
    events_n = per_batch * n_batches
    return Result.throughput(
        name, events_n / service_s, events_n / raw_s, "events/s", batch=per_batch, batches=n_batches,
        median_batch_ratio=round(statistics.median(ratios), 3), replay_events_per_s=round(replay),
    )


def _raw_sqlite(url: str, batches: list[list[tuple[Any, ...]]]) -> int:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql = _insert_sql("?")
    for rows in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    conn.close()
    return sum(len(b) for b in batches)


def _raw_postgres(url: str, batches: list[list[tuple[Any, ...]]]) -> int:
    # The engine's own COPY format: binary, with the columns' types (adapters/sql.py).
    statement = f"COPY usage_events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for rows in batches:
            with conn.cursor() as cur, cur.copy(statement) as copy:
                copy.set_types(TYPES)
                for row in rows:
                    copy.write_row(row)
            conn.commit()
    return sum(len(b) for b in batches)


@register("ingest_sqlite")
def ingest_sqlite(size: Size) -> Result:
    return _run("ingest_sqlite", fresh_sqlite(), size, _raw_sqlite)


@register("ingest_postgres")
def ingest_postgres(size: Size) -> Result:
    unavailable = postgres_available(size.postgres_url)
    if unavailable:
        return Result.skipped("ingest_postgres", "events/s", unavailable)
    return _run("ingest_postgres", fresh_postgres(size.postgres_url), size, _raw_postgres)
