"""Real threads racing on one organization in PostgreSQL: holds never overspend a limit, exactly what fits is
granted, a hold ends exactly one way when settles race expiry, and overlapping usage batches count each key once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.tables import holds, ledger_entries, limit_accounts, usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import SeatmeterError
from seatmeter.domain.money import Money
from seatmeter.services import caps, credits, organizations, seats, usage
from seatmeter.services import holds as holds_service
from tests.conftest import NOW, make_app

pytestmark = pytest.mark.postgres

THREADS = 40
OPERATOR = Principal(PrincipalKind.OPERATOR)


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[App]:
    app = make_app(pg_url, FixedClock(NOW), db_pool_size=THREADS)
    yield app
    app.engine.dispose()


class Shop:
    def __init__(self, app: App, members: int, credits_usd: str | None, channel: str = "self_serve") -> None:
        now = app.clock.now()
        body = {
            "name": "Race",
            "plan": "usage_based",
            "channel": channel,
            "term_start": "2026-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "owner@race.test", "name": "Owner"},
        }
        org, owner = organizations.create_organization(app.uow(), OPERATOR, body, now)
        self.org_id = org.id
        self.owner = Principal(PrincipalKind.MEMBER, org.id, owner.id, "primary_owner")
        self.service = Principal(PrincipalKind.SERVICE, org.id)
        self.members = [
            organizations.add_member(app.uow(), self.owner, org.id, {"email": f"m{i}@race.test"}, now).id
            for i in range(members)
        ]
        seats.add_seats(app, OPERATOR, org.id, {"seat_type": "enterprise", "quantity": members})
        for member_id in self.members:
            seats.assign_seat(app, OPERATOR, org.id, member_id, {"seat_type": "enterprise"})
        if credits_usd:
            credits.buy_credits(app.uow(), self.owner, org.id, credits_usd, "initial", now)

    def hold_body(self, i: int, amount: str = "0.50") -> dict[str, Any]:
        return {
            "idempotency_key": f"hold-{i}",
            "member_id": self.members[i % len(self.members)],
            "model": "claude-sonnet-4-5",
            "surface": "api",
            "estimate": {"amount": amount},
        }


def race(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run every task on its own thread, all released at once; return each result or the error it raised."""
    barrier = threading.Barrier(min(len(tasks), THREADS))

    def run(task: Callable[[], Any], index: int) -> Any:
        if index < THREADS:
            barrier.wait()
        try:
            return task()
        except SeatmeterError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(run, tasks, range(len(tasks))))


def limit_rows(app: App, org_id: str) -> dict[str, Any]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(limit_accounts).where(limit_accounts.c.organization_id == org_id))
        return {r.account: r for r in rows}


def assert_within_limits_and_held_matches_open_holds(app: App, org_id: str) -> None:
    with app.engine.connect() as conn:
        hold_rows = conn.execute(select(holds).where(holds.c.organization_id == org_id)).all()
    for account, row in limit_rows(app, org_id).items():
        if row.limit_nano is not None:
            assert row.posted_nano + row.held_nano <= row.limit_nano, account
        open_against = sum(h.amount_nano for h in hold_rows if h.status == "open" and account in h.accounts.split(","))
        assert row.held_nano == open_against, account


def test_64_holds_of_0_50_on_10_00_of_credits_grant_exactly_20_and_refuse_the_rest(pg_app: App) -> None:
    shop = Shop(pg_app, members=4, credits_usd="10.00")
    caps.set_cap(pg_app.uow(), shop.owner, shop.org_id, "organization", "50.00", NOW)
    caps.set_cap(pg_app.uow(), shop.owner, shop.org_id, "member_default", "7.00", NOW)
    results = race(
        [lambda i=i: holds_service.authorize(pg_app, shop.service, shop.org_id, shop.hold_body(i)) for i in range(64)]
    )
    granted = [r for r in results if isinstance(r, holds_service.HoldView)]
    refused = Counter(r.code for r in results if isinstance(r, SeatmeterError))
    assert len(granted) == 20
    assert refused == {"credits_exhausted": 44}
    assert all(g.amount == Money.parse("0.50") for g in granted)
    rows = limit_rows(pg_app, shop.org_id)
    assert (rows["credits"].limit_nano, rows["credits"].held_nano) == (10 * 10**9, 10 * 10**9)
    assert rows["organization"].held_nano == 10 * 10**9
    assert sum(rows[f"member:{m}"].held_nano for m in shop.members) == 10 * 10**9
    assert_within_limits_and_held_matches_open_holds(pg_app, shop.org_id)


def test_member_caps_and_the_organization_cap_hold_under_a_race_of_72_holds(pg_app: App) -> None:
    # Credits 100.00 never bind. Four members capped at 2.00 (4 holds each), one uncapped member; the
    # organization cap of 9.00 lets 18 holds through in all.
    shop = Shop(pg_app, members=6, credits_usd="100.00")
    caps.set_cap(pg_app.uow(), shop.owner, shop.org_id, "organization", "9.00", NOW)
    for member in shop.members[:4]:
        caps.set_cap(pg_app.uow(), shop.owner, shop.org_id, "member", "2.00", NOW, member_id=member)
    results = race(
        [lambda i=i: holds_service.authorize(pg_app, shop.service, shop.org_id, shop.hold_body(i)) for i in range(72)]
    )
    granted = [r for r in results if isinstance(r, holds_service.HoldView)]
    refused = Counter(r.code for r in results if isinstance(r, SeatmeterError))
    assert len(granted) == 18
    assert set(refused) <= {"organization_cap_reached", "member_cap_reached"}
    assert sum(refused.values()) == 72 - 18
    rows = limit_rows(pg_app, shop.org_id)
    assert rows["organization"].held_nano == 9 * 10**9
    for member in shop.members[:4]:
        assert rows[f"member:{member}"].held_nano <= 2 * 10**9
    assert_within_limits_and_held_matches_open_holds(pg_app, shop.org_id)


def test_settles_racing_expiry_end_each_hold_exactly_one_way(pg_url: str, pg_app: App) -> None:
    shop = Shop(pg_app, members=4, credits_usd="100.00")
    caps.set_cap(pg_app.uow(), shop.owner, shop.org_id, "organization", "80.00", NOW)
    views = [holds_service.authorize(pg_app, shop.service, shop.org_id, shop.hold_body(i)) for i in range(48)]
    expires_at = views[0].expires_at
    # The settlers still see the hold as open (one second before its timeout); the sweepers see it expired.
    settler = make_app(pg_url, FixedClock(expires_at - timedelta(seconds=1)), db_pool_size=THREADS)
    sweeper = make_app(pg_url, FixedClock(expires_at + timedelta(seconds=1)), db_pool_size=THREADS)
    body = {"usage": {"input_tokens": 1_000, "output_tokens": 1_000}}  # 0.018 USD of Sonnet 4.5
    try:
        tasks: list[Callable[[], Any]] = [
            lambda v=v: holds_service.settle(settler, shop.service, shop.org_id, v.id, body) for v in views
        ]
        tasks += [lambda: holds_service.expire_holds(sweeper.uow(), sweeper.clock.now(), batch=5) for _ in range(16)]
        results = race(tasks)
    finally:
        settler.engine.dispose()
        sweeper.engine.dispose()
    settled = [r for r in results[:48] if isinstance(r, holds_service.Settled)]
    lost = [r for r in results[:48] if isinstance(r, SeatmeterError)]
    assert all(e.code == "hold_not_open" for e in lost), [(e.code, str(e.__cause__)[:300]) for e in lost][:2]
    with pg_app.engine.connect() as conn:
        statuses = Counter(conn.execute(select(holds.c.status).where(holds.c.organization_id == shop.org_id)).scalars())
        events = conn.execute(
            select(func.count()).select_from(usage_events).where(usage_events.c.organization_id == shop.org_id)
        ).scalar_one()
        usage_debits = conn.execute(
            select(func.coalesce(func.sum(ledger_entries.c.amount_nano), 0)).where(
                ledger_entries.c.organization_id == shop.org_id, ledger_entries.c.kind == "usage"
            )
        ).scalar_one()
    # Sweeps running out of batch may leave some open; they are neither settled nor expired twice.
    assert statuses["settled"] == len(settled) == events
    assert statuses["settled"] + statuses["expired"] + statuses["open"] == 48
    assert statuses["expired"] + statuses["open"] == len(lost)
    assert sum(r for r in results[48:] if isinstance(r, int)) == statuses["expired"]
    cost = 18_000_000
    assert usage_debits == len(settled) * cost
    rows = limit_rows(pg_app, shop.org_id)
    for account in ("credits", "organization"):
        assert rows[account].posted_nano == len(settled) * cost, account
        assert rows[account].held_nano == statuses["open"] * 500_000_000, account
    assert_within_limits_and_held_matches_open_holds(pg_app, shop.org_id)


def test_concurrent_usage_batches_with_overlapping_keys_count_each_key_once(pg_app: App) -> None:
    shop = Shop(pg_app, members=3, credits_usd="100.00")
    occurred = (NOW - timedelta(minutes=1)).isoformat()

    def event(k: int) -> dict[str, Any]:
        return {
            "idempotency_key": f"evt-{k}",
            "member_id": shop.members[k % 3],
            "model": "claude-haiku-4-5",
            "surface": "web",
            "occurred_at": occurred,
            "input_tokens": 1_000,
            "output_tokens": 100,
        }  # 0.0015 USD

    # 40 batches of 30 events over 0..129: every key is sent by several batches at once.
    # Odd batches list their keys backwards, so two batches can meet on shared keys from opposite ends.
    batches = [[event(k) for k in range(3 * i, 3 * i + 30)][:: -1 if i % 2 else 1] for i in range(40)]
    results = race([lambda b=b: usage.record_usage(pg_app, shop.service, shop.org_id, {"events": b}) for b in batches])
    errors = [r for r in results if not isinstance(r, dict)]
    assert errors == []
    distinct = 3 * 39 + 30
    assert sum(r["accepted"] for r in results) == distinct
    assert sum(r["accepted"] + r["duplicates"] for r in results) == 40 * 30
    with pg_app.engine.connect() as conn:
        events = conn.execute(
            select(func.count()).select_from(usage_events).where(usage_events.c.organization_id == shop.org_id)
        ).scalar_one()
    assert events == distinct
    rows = limit_rows(pg_app, shop.org_id)
    assert rows["credits"].posted_nano == distinct * 1_500_000
    assert rows["organization"].posted_nano == distinct * 1_500_000
    assert sum(rows[f"member:{m}"].posted_nano for m in shop.members) == distinct * 1_500_000


def test_holds_racing_on_a_full_sales_assisted_cap_release_overdue_holds_without_deadlocks(
    pg_url: str, pg_app: App
) -> None:
    # Sales-assisted: no credit row to queue on first. Every member's overdue hold fills the organization cap,
    # so each authorize is refused at first and releases overdue holds of other members while it holds its
    # own member row and the organization row.
    shop = Shop(pg_app, members=8, credits_usd=None, channel="sales_assisted")
    caps.set_cap(pg_app.uow(), shop.owner, shop.org_id, "organization", "4.00", NOW)
    views = [holds_service.authorize(pg_app, shop.service, shop.org_id, shop.hold_body(i)) for i in range(8)]
    later = make_app(pg_url, FixedClock(views[0].expires_at + timedelta(seconds=1)), db_pool_size=THREADS)
    try:
        tasks: list[Callable[[], Any]] = [
            lambda i=i: holds_service.authorize(later, shop.service, shop.org_id, shop.hold_body(100 + i, "0.10"))
            for i in range(THREADS)
        ]
        tasks += [lambda: holds_service.expire_holds(later.uow(), later.clock.now(), batch=2) for _ in range(8)]
        results = race(tasks)
    finally:
        later.engine.dispose()
    # A request may still find the cap full while some overdue holds are being released; nothing else fails.
    errors = [(r.code, str(r.__cause__)[:300]) for r in results if isinstance(r, SeatmeterError)]
    assert [e for e in errors if e[0] != "organization_cap_reached"] == []
    assert sum(isinstance(r, holds_service.HoldView) for r in results) >= THREADS // 2
    assert_within_limits_and_held_matches_open_holds(pg_app, shop.org_id)


def test_a_credit_purchase_sent_by_many_threads_at_once_is_bought_once_and_answered_alike(pg_app: App) -> None:
    shop = Shop(pg_app, members=1, credits_usd=None)
    results = race(
        [lambda: credits.buy_credits(pg_app.uow(), shop.owner, shop.org_id, "25.00", "retry-me", NOW)] * THREADS
    )
    errors = [(type(r).__name__, str(r)[:200]) for r in results if not isinstance(r, tuple)]
    assert errors == []
    assert {invoice["id"] for _, invoice in results} == {results[0][1]["id"]}
    rows = limit_rows(pg_app, shop.org_id)
    assert rows["credits"].limit_nano == 25 * 10**9
