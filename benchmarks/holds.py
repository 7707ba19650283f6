"""Authorize + settle pairs through the services, against the same statements hand-written for the bare driver."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import text

from benchmarks.common import fresh_postgres, fresh_sqlite, make_app, make_org, postgres_available, rate
from benchmarks.registry import Result, Size, register
from seatmeter.bootstrap import App
from seatmeter.domain.ids import new_id
from seatmeter.services import holds

__all__ = ["check_no_overspend", "holds_postgres_hot_org", "holds_sqlite"]

HOLD_NANO = 10_000_000  # a 0.01 USD estimate
USAGE = {"input_tokens": 100, "output_tokens": 50}
COST_NANO = 100 * 3_000 + 50 * 15_000  # claude-sonnet-4-5 at 3 / 15 USD per MTok
CLIENTS = 16


def _service_pairs(app: App, org: Any, n: int, tag: str, *, batched: bool = False) -> int:
    """Authorize + settle pairs; `batched`: authorize through the App's group commit (services/hold_batches.py)."""
    for i in range(n):
        member = org.member_ids[i % len(org.member_ids)]
        body = {
            "idempotency_key": f"{tag}-{i}", "member_id": member, "model": "claude-sonnet-4-5",
            "surface": "api", "estimate": {"amount": "0.01"},
        }
        if batched:
            view = app.hold_batches.authorize(org.service, org.id, body)
        else:
            view = holds.authorize(app, org.service, org.id, body)
        holds.settle(app, org.service, org.id, view.id, {"usage": USAGE})
    return n


# -- the raw statements: what authorize and settle execute, written by hand ----------------------------
AUTHORIZE = [
    "SELECT * FROM holds WHERE organization_id = {p} AND idempotency_key = {p}",
    "SELECT * FROM organizations WHERE id = {p}",
    "SELECT * FROM members WHERE organization_id = {p} AND id = {p}",
]
LOCK = ("SELECT * FROM limit_accounts WHERE organization_id = {p} AND (account, period) IN (({p}, {p}), ({p}, {p}), "
        "({p}, {p})) ORDER BY account, period{lock}")
RESERVE = ("UPDATE limit_accounts SET held_nano = held_nano + {p} WHERE organization_id = {p} AND (account, period) IN "
           "(({p}, {p}), ({p}, {p}), ({p}, {p})) "
           "AND (limit_nano IS NULL OR posted_nano + held_nano + {p} <= limit_nano)")
INSERT_HOLD = ("INSERT INTO holds (organization_id, id, idempotency_key, fingerprint, member_id, model, surface, "
               "amount_nano, max_output_tokens, accounts, period, status, created_at, expires_at) VALUES "
               "({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, NULL, {p}, {p}, 'open', {p}, {p})")
CLOSE_HOLD = ("UPDATE holds SET status = 'settled', closed_at = {p}, event_id = {p} WHERE organization_id = {p} "
              "AND id = {p} AND status = 'open' AND expires_at > {p} RETURNING *")
INSERT_EVENT = ("INSERT INTO usage_events (organization_id, id, idempotency_key, fingerprint, member_id, model, "
                "surface, "
                "service_tier, occurred_at, period, input_tokens, output_tokens, cache_write_5m_tokens, "
                "cache_write_1h_tokens, cache_read_tokens, cost_nano, price_version, hold_id, exceeded_hold, "
                "recorded_at) VALUES ({p}, {p}, {p}, 'fp', {p}, 'claude-sonnet-4-5', 'api', 'standard', {p}, {p}, "
                "100, 50, 0, 0, 0, {p}, 'raw', {p}, FALSE, {recorded_at})")
# What settle runs for the close fence (adapters/close_fence.py): recorded_at no earlier than the last cutoff, and
# on PostgreSQL the organization's advisory lock taken shared in the hold's UPDATE.
RECORDED_AT = {
    "?": "max(?, coalesce((SELECT max(cutoff_at) FROM period_closes WHERE organization_id = ?), ?))",
    "%s": "GREATEST(%s, (SELECT max(cutoff_at) FROM period_closes WHERE organization_id = %s::varchar))",
}
FENCE_PG = "WITH fence AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(60111, hashtext(%s)) AS locked) "
INSERT_LEDGER = ("INSERT INTO ledger_entries (organization_id, id, kind, debit_account, credit_account, amount_nano, "
                 "reference, created_at) VALUES ({p}, {p}, 'usage', 'credits', 'revenue', {p}, {p}, {p})")
RELEASE = ("UPDATE limit_accounts SET held_nano = held_nano - {p}, posted_nano = posted_nano + {p} WHERE "
           "organization_id = {p} AND (account, period) IN (({p}, {p}), ({p}, {p}), ({p}, {p}))")


def _raw_pair(cur: Any, begin: str, p: str, lock: str, org_id: str, member: str, key: str, period: str,
              now: Any) -> None:
    accounts = ["credits", "", f"member:{member}", period, "organization", period]
    cur.execute(begin)
    cur.execute(AUTHORIZE[0].format(p=p), (org_id, key))
    cur.fetchall()
    cur.execute(AUTHORIZE[1].format(p=p), (org_id,))
    cur.fetchall()
    cur.execute(AUTHORIZE[2].format(p=p), (org_id, member))
    cur.fetchall()
    cur.execute(LOCK.format(p=p, lock=lock), (org_id, *accounts))
    cur.fetchall()
    cur.execute(RESERVE.format(p=p), (HOLD_NANO, org_id, *accounts, HOLD_NANO))
    if cur.rowcount != 3:
        raise RuntimeError("raw reserve found no room")
    hold_id = new_id("hold")
    cur.execute(INSERT_HOLD.format(p=p), (org_id, hold_id, key, "fp", member, "claude-sonnet-4-5", "api", HOLD_NANO,
                                          "credits,member:" + member + ",organization", period, now,
                                          now + timedelta(minutes=10)))
    cur.execute("COMMIT")
    event_id = new_id("evt")
    cur.execute(begin)
    if p == "%s":
        close = FENCE_PG + CLOSE_HOLD.format(p=p).replace(" WHERE ", " FROM fence WHERE ", 1)
        cur.execute(close, (org_id, now, event_id, org_id, hold_id, now))
    else:
        cur.execute(CLOSE_HOLD.format(p=p), (now, event_id, org_id, hold_id, now))
    cur.fetchall()
    recorded_at = (now, org_id) if p == "%s" else (now, org_id, now)
    cur.execute(INSERT_EVENT.format(p=p, recorded_at=RECORDED_AT[p]),
                (org_id, event_id, f"hold:{hold_id}", member, now, period, COST_NANO, hold_id, *recorded_at))
    cur.execute(INSERT_LEDGER.format(p=p), (org_id, new_id("le"), COST_NANO, event_id, now))
    if lock:  # PostgreSQL: settle locks the limit rows in the fixed order before releasing (limits_repo.release)
        cur.execute(LOCK.format(p=p, lock=lock), (org_id, *accounts))
        cur.fetchall()
    cur.execute(RELEASE.format(p=p), (HOLD_NANO, COST_NANO, org_id, *accounts))
    cur.execute("COMMIT")


def _sqlite_now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _raw_sqlite_pairs(path: str, org: Any, n: int, period: str, prefix: str = "raw-") -> int:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    cur = _SqliteCursor(conn.cursor())
    for i in range(n):
        member = org.member_ids[i % len(org.member_ids)]
        _raw_pair(cur, "BEGIN IMMEDIATE", "?", "", org.id, member, f"{prefix}{i}", period, _NowText(_sqlite_now()))
    conn.close()
    return n


class _NowText(str):
    """A timestamp as SQLite stores it, which still answers `+ timedelta` like a datetime."""

    def __add__(self, other: Any) -> str:  # type: ignore[override]
        return (datetime.fromisoformat(str(self)) + other).isoformat(sep=" ")


class _SqliteCursor:
    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._cur.execute(sql, params)

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


def _period(app: App) -> str:
    return app.clock.now().strftime("%Y-%m")


def check_no_overspend(app: App, org_id: str) -> dict[str, int]:
    """Every limit row within its limit; held equals the open holds; posted equals the recorded costs."""
    with app.engine.connect() as conn:
        over = conn.execute(text(
            "SELECT count(*) FROM limit_accounts WHERE organization_id = :o AND limit_nano IS NOT NULL "
            "AND posted_nano + held_nano > limit_nano AND account <> 'credits'"), {"o": org_id}).scalar_one()
        credits = conn.execute(text(
            "SELECT limit_nano - posted_nano - held_nano FROM limit_accounts WHERE organization_id = :o "
            "AND account = 'credits'"), {"o": org_id}).scalar_one_or_none()
        held = conn.execute(text(
            "SELECT coalesce(sum(held_nano), 0) FROM limit_accounts WHERE organization_id = :o "
            "AND account = 'organization'"), {"o": org_id}).scalar_one()
        open_held = conn.execute(text(
            "SELECT coalesce(sum(amount_nano), 0) FROM holds WHERE organization_id = :o AND status = 'open'"),
            {"o": org_id}).scalar_one()
        posted = conn.execute(text(
            "SELECT coalesce(sum(posted_nano), 0) FROM limit_accounts WHERE organization_id = :o "
            "AND account = 'organization'"), {"o": org_id}).scalar_one()
        costs = conn.execute(text(
            "SELECT coalesce(sum(cost_nano), 0) FROM usage_events WHERE organization_id = :o"),
            {"o": org_id}).scalar_one()
    return {
        "rows_over_limit": int(over) + (1 if credits is not None and credits < 0 else 0),
        "held_mismatch_nano": int(held) - int(open_held),
        "posted_mismatch_nano": int(posted) - int(costs),
    }


@register("holds_sqlite")
def holds_sqlite(size: Size) -> Result:
    n = size.pick(3000, 100)
    url = fresh_sqlite()
    app = make_app(url)
    org = make_org(app)
    _service_pairs(app, org, max(20, len(org.member_ids)), "warm")
    # Alternating rounds, so a drift of the machine (or of the growing tables) weighs on both sides alike.
    rounds, service_s, raw_s, path, period = 5, 0.0, 0.0, url.removeprefix("sqlite:///"), _period(app)
    for r in range(rounds):
        started = time.perf_counter()
        _service_pairs(app, org, n // rounds, f"svc{r}")
        service_s += time.perf_counter() - started
        started = time.perf_counter()
        _raw_sqlite_pairs(path, org, n // rounds, period, f"raw{r}-")
        raw_s += time.perf_counter() - started
    value, raw = n // rounds * rounds / service_s, n // rounds * rounds / raw_s
    checks = check_no_overspend(app, org.id)
    app.engine.dispose()
    result = Result.throughput("holds_sqlite", value, raw, "pairs/s", **checks)
    return result


# -- PostgreSQL, one hot organization ------------------------------------------------------------------
def _threads(n_clients: int, work: Any) -> None:
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _raw_pg_pairs(url: str, org: Any, per_client: int, period: str) -> int:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")

    def work(k: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.cursor()
            for i in range(per_client):
                member = org.member_ids[(k * per_client + i) % len(org.member_ids)]
                _raw_pair(cur, "BEGIN ISOLATION LEVEL READ COMMITTED", "%s", " FOR UPDATE", org.id, member,
                          f"raw-{k}-{i}", period, datetime.now(UTC))

    _threads(CLIENTS, work)
    return CLIENTS * per_client


@register("holds_postgres_hot_org")
def holds_postgres_hot_org(size: Size) -> Result:
    unavailable = postgres_available(size.postgres_url)
    if unavailable:
        return Result.skipped("holds_postgres_hot_org", "pairs/s", unavailable)
    per_client = size.pick(150, 8)
    url = fresh_postgres(size.postgres_url)
    app = make_app(url, db_pool_size=CLIENTS)
    org = make_org(app, members_n=32, member_cap="1000.00")
    _service_pairs(app, org, max(20, len(org.member_ids)), "warm")

    def service() -> int:
        # The 16 clients authorize through the group commit, as the API does; settles run one by one, as today.
        _threads(CLIENTS, lambda k: _service_pairs(app, org, per_client, f"svc-{k}", batched=True))
        return CLIENTS * per_client

    batches_before, requests_before = app.hold_batches.batches, app.hold_batches.requests
    value = rate(service)
    mean_batch = (app.hold_batches.requests - requests_before) / max(1, app.hold_batches.batches - batches_before)
    # The raw limit stays each request's own statements on the bare driver, 16 threads: what the database does
    # for these pairs without seatmeter, not a batched hand-written version of seatmeter's own design.
    raw = rate(lambda: _raw_pg_pairs(url, org, per_client, _period(app)))
    checks = check_no_overspend(app, org.id)
    app.hold_batches.close()
    app.engine.dispose()
    print(f"  holds_postgres_hot_org overspend check: {checks}, mean batch {mean_batch:.2f} holds")
    return Result.throughput("holds_postgres_hot_org", value, raw, "pairs/s", clients=CLIENTS,
                             mean_batch=round(mean_batch, 2), **checks)
