"""Summaries read while usage and holds race on PostgreSQL, with real threads: every summary is one consistent
picture of the limit rows (the total is the sum of the members' spend, the caps show the same spend and held as
the member list), and the last one counts every recorded event."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.tables import usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import UsageRefused
from seatmeter.domain.money import Money
from seatmeter.services import caps, credits, organizations, seats, usage
from seatmeter.services import holds as holds_service
from tests.conftest import NOW, make_app

pytestmark = pytest.mark.postgres

OPERATOR = Principal(PrincipalKind.OPERATOR)
MEMBERS = 6
WRITERS = 3
BATCHES = 15


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[App]:
    app = make_app(pg_url, FixedClock(NOW), db_pool_size=WRITERS + 3)
    yield app
    app.engine.dispose()


def _check(summary: dict[str, Any]) -> None:
    listed = summary["members"]
    spent = sum((Money.parse(m["spend"]) for m in listed), Money(0))
    held = sum((Money.parse(m["held"]) for m in listed), Money(0))
    assert Money.parse(summary["total"]) == spent
    assert Money.parse(summary["caps"]["organization"]["spent"]) == spent
    assert Money.parse(summary["caps"]["organization"]["held"]) == held
    by_id = {m["member_id"]: m for m in listed}
    for entry in summary["caps"]["members"]:
        member = by_id[entry["member_id"]]
        assert (entry["spent"], entry["held"], entry["limit"], entry["status"]) == (
            member["spend"],
            member["held"],
            member["cap"],
            member["cap_status"],
        )


def test_summaries_read_during_racing_usage_and_holds_are_never_torn(pg_app: App) -> None:
    app, now = pg_app, pg_app.clock.now()
    org, owner = organizations.create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Race",
            "plan": "usage_based",
            "channel": "self_serve",
            "term_start": "2026-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "owner@race.test", "name": "Owner"},
        },
        now,
    )
    member_ids = [
        organizations.add_member(app.uow(), OPERATOR, org.id, {"email": f"m{i}@race.test"}, now).id
        for i in range(MEMBERS)
    ]
    seats.add_seats(app, OPERATOR, org.id, {"seat_type": "enterprise", "quantity": MEMBERS})
    for member_id in member_ids:
        seats.assign_seat(app, OPERATOR, org.id, member_id, {"seat_type": "enterprise"})
    credits.buy_credits(app.uow(), OPERATOR, org.id, "1000.00", "initial", now)
    caps.set_cap(app.uow(), OPERATOR, org.id, "member_default", "2.00", now)
    caps.set_cap(app.uow(), OPERATOR, org.id, "member", "0.50", now, member_ids[0])
    owner_p = Principal(PrincipalKind.MEMBER, org.id, owner.id, "primary_owner")
    done = threading.Event()

    def write(writer: int) -> None:
        for batch in range(BATCHES):
            events = [
                {
                    "idempotency_key": f"w{writer}-b{batch}-{i}",
                    "member_id": member_ids[(writer + batch + i) % MEMBERS],
                    "model": "claude-haiku-4-5",
                    "surface": "api",
                    "occurred_at": (now - timedelta(minutes=1)).isoformat(),
                    "input_tokens": 1_000 * (1 + writer + batch + i),
                    "output_tokens": 7 * i,
                }
                for i in range(MEMBERS)
            ]
            usage.record_usage(app, OPERATOR, org.id, {"events": events})
            try:
                hold = holds_service.authorize(
                    app,
                    OPERATOR,
                    org.id,
                    {
                        "idempotency_key": f"h{writer}-{batch}",
                        "member_id": member_ids[(writer * 7 + batch) % MEMBERS],
                        "model": "claude-haiku-4-5",
                        "surface": "api",
                        "estimate": {"amount": "0.05"},
                    },
                )
            except UsageRefused:
                continue
            if batch % 2:
                holds_service.void(app, OPERATOR, org.id, hold.id)

    def read() -> int:
        seen = 0
        while not done.is_set() or seen == 0:
            _check(usage.usage_summary(app, owner_p, org.id))
            seen += 1
        return seen

    with ThreadPoolExecutor(WRITERS + 2) as pool:
        readers = [pool.submit(read) for _ in range(2)]
        writers = [pool.submit(write, w) for w in range(WRITERS)]
        for future in writers:
            future.result()
        done.set()
        assert all(future.result() > 0 for future in readers)

    final = usage.usage_summary(app, owner_p, org.id)
    _check(final)
    with app.engine.connect() as conn:
        recorded = conn.execute(
            select(func.count(), func.sum(usage_events.c.cost_nano)).where(usage_events.c.organization_id == org.id)
        ).one()
    assert recorded[0] == WRITERS * BATCHES * MEMBERS
    assert Money.parse(final["total"]) == Money(int(recorded[1]))
    assert any(m["cap_status"] == "reached" for m in final["members"])  # the 0.50 cap was overdrawn by usage
