"""Demo data for `make run`: one self-serve organization with members, credits, caps, usage and an open hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from seatmeter.adapters.tables import organizations
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.services import caps, credits, holds, seats, usage
from seatmeter.services import organizations as orgs

__all__ = ["DemoKeys", "create_demo"]

OPERATOR = Principal(PrincipalKind.OPERATOR)
DEMO_NAME = "Demo Co"
MODELS = ("claude-sonnet-4-5", "claude-opus-4-6", "claude-haiku-4-5")


@dataclass(frozen=True)
class DemoKeys:
    organization_id: str
    owner_key: str
    member_key: str
    service_key: str
    created: bool


def create_demo(app: App) -> DemoKeys:
    """Create the demo organization once; on later runs, issue fresh keys for it (keys are shown only once)."""
    with app.uow() as uow:
        existing = uow.conn.execute(select(organizations.c.id).where(organizations.c.name == DEMO_NAME)).scalar()
    if existing is not None:
        return _fresh_keys(app, existing)
    now = app.clock.now()
    org, owner = orgs.create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": DEMO_NAME,
            "timezone": "America/New_York",
            "plan": "usage_based",
            "channel": "self_serve",
            "term_start": now.date().replace(month=1, day=1).isoformat(),
            "seat_prices": {"enterprise": "30.00"},
            "primary_owner": {"email": "olivia@demo.example", "name": "Olivia Owner"},
        },
        now,
    )
    people = [
        orgs.add_member(
            app.uow(), OPERATOR, org.id, {"email": f"{n.lower()}@demo.example", "name": n, "role": "member"}, now
        )
        for n in ("Alice", "Bashir", "Chen", "Dana")
    ]
    seats.add_seats(app, OPERATOR, org.id, {"seat_type": "enterprise", "quantity": 10})
    for person in [owner, *people]:
        seats.assign_seat(app, OPERATOR, org.id, person.id, {"seat_type": "enterprise"})
    credits.buy_credits(app.uow(), OPERATOR, org.id, "500.00", "demo-initial-credits", now)
    caps.set_cap(app.uow(), OPERATOR, org.id, "organization", "400.00", now)
    caps.set_cap(app.uow(), OPERATOR, org.id, "member_default", "100.00", now)
    caps.set_cap(app.uow(), OPERATOR, org.id, "member", "20.00", now, member_id=people[0].id)
    service_key = orgs.create_service_key(app.uow(), OPERATOR, org.id, now)
    events: list[dict[str, Any]] = []
    everyone = [owner.id] + [p.id for p in people]
    for day in range(1, 10):
        for i, member_id in enumerate(everyone):
            events.append(
                {
                    "idempotency_key": f"demo-{day}-{i}",
                    "member_id": member_id,
                    "model": MODELS[(day + i) % 3],
                    "surface": "claude_code" if i % 2 else "web",
                    "occurred_at": (now - timedelta(hours=day * 7 + i)).isoformat(),
                    "input_tokens": 20_000 + 3_000 * i * day,
                    "output_tokens": 4_000 + 700 * day,
                    "cache_read_tokens": 50_000 * (i + 1),
                    "cache_write_5m_tokens": 8_000,
                }
            )
    usage.record_usage(app, OPERATOR, org.id, {"events": events})
    holds.authorize(
        app,
        OPERATOR,
        org.id,
        {
            "idempotency_key": "demo-open-hold",
            "member_id": people[1].id,
            "model": "claude-sonnet-4-5",
            "surface": "claude_code",
            "estimate": {"input_tokens": 12_000, "max_output_tokens": 8_000},
        },
    )
    return DemoKeys(org.id, owner.api_key, people[0].api_key, service_key, created=True)


def _fresh_keys(app: App, org_id: str) -> DemoKeys:
    now = app.clock.now()
    members = orgs.list_members(app.uow(), OPERATOR, org_id)
    owner = next(m for m in members if m["role"] == "primary_owner")
    alice = next(m for m in members if m["email"] == "alice@demo.example")
    return DemoKeys(
        org_id,
        orgs.issue_member_key(app.uow(), OPERATOR, org_id, owner["id"], now),
        orgs.issue_member_key(app.uow(), OPERATOR, org_id, alice["id"], now),
        orgs.create_service_key(app.uow(), OPERATOR, org_id, now),
        created=False,
    )
