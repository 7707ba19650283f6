"""Set-up shared by the benchmarks: fresh databases, a wired App, an organization with members."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text, update

from seatmeter.adapters.clock import SystemClock
from seatmeter.adapters.db import upgrade
from seatmeter.adapters.tables import api_keys, members, metadata
from seatmeter.bootstrap import App, build
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.services import caps, credits, organizations
from seatmeter.settings import Settings

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "OPERATOR_KEY",
    "OPERATOR",
    "BenchOrg",
    "fresh_postgres",
    "fresh_sqlite",
    "make_app",
    "make_org",
    "percentile",
    "postgres_available",
    "rate",
]

DEFAULT_POSTGRES_URL = os.environ.get(
    "SEATMETER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test_bench"
)
OPERATOR = Principal(PrincipalKind.OPERATOR)
OPERATOR_KEY = "bench-operator-key"


def fresh_sqlite() -> str:
    path = Path(tempfile.mkdtemp(prefix="seatmeter-bench-")) / "bench.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def postgres_available(url: str) -> str | None:
    """None if the database answers, else why not."""
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "skip, and say why"
        return f"PostgreSQL at {url} cannot be reached: {exc.__class__.__name__}"
    return None


def fresh_postgres(url: str) -> str:
    """Migrate (idempotent) and empty every table. Never drops the schema: a test session may share it."""
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))
    engine.dispose()
    return url


def make_app(url: str, **settings: Any) -> App:
    return build(Settings(database_url=url, operator_key=OPERATOR_KEY, **settings), clock=SystemClock(), migrate=False)


class BenchOrg:
    def __init__(self, org_id: str, owner: Principal, member_ids: list[str]) -> None:
        self.id = org_id
        self.owner = owner
        self.service = Principal(PrincipalKind.SERVICE, org_id)
        self.member_ids = member_ids


def make_org(app: App, *, members_n: int = 4, credits_usd: str = "1000000.00", org_cap: str | None = "900000.00",
             member_cap: str | None = None, channel: str = "self_serve") -> BenchOrg:
    now = app.clock.now()
    org, owner = organizations.create_organization(
        app.uow(), OPERATOR,
        {"name": "Bench", "timezone": "UTC", "plan": "usage_based", "channel": channel,
         "term_start": date(now.year, 1, 1).isoformat(), "seat_prices": {"enterprise": "10.00"},
         "primary_owner": {"email": "owner@bench.test", "name": "Owner"}},
        now,
    )
    owner_p = Principal(PrincipalKind.MEMBER, org.id, owner.id, "primary_owner")
    member_ids = [owner.id]
    with app.engine.begin() as conn:  # set-up: a member needs a seat to use the product
        conn.execute(update(members).where(members.c.organization_id == org.id).values(seat_type="enterprise"))
    if members_n > 1:
        member_ids += bulk_members(app, org.id, members_n - 1)
    if channel == "self_serve":
        credits.buy_credits(app.uow(), owner_p, org.id, credits_usd, "bench-credits", now)
    if org_cap is not None:
        caps.set_cap(app.uow(), owner_p, org.id, "organization", org_cap, now)
    if member_cap is not None:
        caps.set_cap(app.uow(), owner_p, org.id, "member_default", member_cap, now)
    return BenchOrg(org.id, owner_p, member_ids)


def bulk_members(app: App, org_id: str, n: int) -> list[str]:
    """Members written in bulk (set-up, not measured): the service adds them one at a time."""
    now = datetime.now(UTC)
    ids = [f"mem_bench{i:06d}" for i in range(n)]
    with app.engine.begin() as conn:
        conn.execute(insert(members), [
            {"organization_id": org_id, "id": m, "email": f"m{i}@bench.test", "name": f"Member {i}",
             "role": "member", "seat_type": "enterprise", "created_at": now}
            for i, m in enumerate(ids)
        ])
        conn.execute(insert(api_keys), [
            {"key_hash": f"{org_id}-{m}", "organization_id": org_id, "member_id": m, "kind": "member",
             "prefix": "sm_bench", "created_at": now} for m in ids
        ])
    return ids


def rate(fn: Callable[[], int]) -> float:
    """Operations per second of `fn`, which returns how many operations it did."""
    start = time.perf_counter()
    done = fn()
    return done / (time.perf_counter() - start)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
