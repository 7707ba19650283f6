"""The usage summary equals a recomputation from the recorded facts, for random members, caps, usage and holds.

The summary reads counters (limit rows) and matches them to members in Python; the recomputation here starts
from the usage events, the open holds, the credit purchases and the caps as they were set, on SQLite and
PostgreSQL. Every view is checked: an owner's, each member's own, and the caps list.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from seatmeter.adapters.tables import credit_purchases, holds, members, usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import UsageRefused
from seatmeter.domain.money import NANO_PER_CENT, Money
from seatmeter.services import caps, credits, organizations, seats, usage
from seatmeter.services import holds as holds_service

OPERATOR = Principal(PrincipalKind.OPERATOR)
ABSENT = "absent"  # no cap of the member's own (the default, if any, applies)

cents = st.integers(0, 400)
optional_cents = st.none() | cents
scenario = st.fixed_dictionaries(
    {
        "members": st.integers(1, 4),
        "default_cap": optional_cents,
        "org_cap": optional_cents,
        "own_caps": st.lists(st.just(ABSENT) | optional_cents, min_size=4, max_size=4),
        "caps_after_usage": st.booleans(),
        # (member index, input tokens): haiku at 1 USD/MTok, so up to 3 USD an event
        "events": st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3_000_000)), max_size=8),
        "holds": st.lists(st.tuples(st.integers(0, 3), st.integers(1, 300)), max_size=4),
        "credits_usd": st.sampled_from(["5.00", "1000.00"]),
    }
)
_names = count()


def _usd(cents_: int | None) -> str | None:
    return None if cents_ is None else str(Money(cents_ * NANO_PER_CENT))


def _text(nano: int) -> str:
    return str(Money(nano))


def _cap_entry(limit: int | None, spent: int, held: int) -> dict[str, Any]:
    if limit is None:
        remaining, status = None, "ok"
    else:
        room = max(0, limit - spent - held)
        remaining, status = _text(room), ("reached" if room == 0 else "ok")
    limit_text = None if limit is None else _text(limit)
    return {"limit": limit_text, "spent": _text(spent), "held": _text(held), "remaining": remaining, "status": status}


def _play(app: App, plan: dict[str, Any]) -> tuple[str, Principal, list[str]]:
    now = app.clock.now()
    org, owner = organizations.create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Summary",
            "timezone": "UTC",
            "plan": "usage_based",
            "channel": "self_serve",
            "term_start": "2026-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "owner@summary.test", "name": "Owner"},
        },
        now,
    )
    owner_p = Principal(PrincipalKind.MEMBER, org.id, owner.id, "primary_owner")
    added = [
        organizations.add_member(app.uow(), OPERATOR, org.id, {"email": f"m{i}@summary.test", "name": f"M {i}"}, now)
        for i in range(1, plan["members"])
    ]
    ids = [owner.id] + [m.id for m in added]
    seats.add_seats(app, OPERATOR, org.id, {"seat_type": "enterprise", "quantity": len(ids)})
    for member_id in ids:
        seats.assign_seat(app, OPERATOR, org.id, member_id, {"seat_type": "enterprise"})
    credits.buy_credits(app.uow(), OPERATOR, org.id, plan["credits_usd"], f"buy-{next(_names)}", now)

    def set_caps() -> None:
        caps.set_cap(app.uow(), OPERATOR, org.id, "member_default", _usd(plan["default_cap"]), now)
        caps.set_cap(app.uow(), OPERATOR, org.id, "organization", _usd(plan["org_cap"]), now)
        for member_id, own in zip(ids, plan["own_caps"], strict=False):
            if own != ABSENT:
                caps.set_cap(app.uow(), OPERATOR, org.id, "member", _usd(own), now, member_id)

    if not plan["caps_after_usage"]:
        set_caps()
    events = [
        {
            "idempotency_key": f"e{n}",
            "member_id": ids[who % len(ids)],
            "model": "claude-haiku-4-5",
            "surface": "web",
            "occurred_at": (now - timedelta(minutes=1)).isoformat(),
            "input_tokens": tokens,
            "output_tokens": 0,
        }
        for n, (who, tokens) in enumerate(plan["events"])
    ]
    if events:
        usage.record_usage(app, OPERATOR, org.id, {"events": events})
    if plan["caps_after_usage"]:
        set_caps()
    for n, (who, amount_cents) in enumerate(plan["holds"]):
        try:
            holds_service.authorize(
                app,
                OPERATOR,
                org.id,
                {
                    "idempotency_key": f"h{n}",
                    "member_id": ids[who % len(ids)],
                    "model": "claude-haiku-4-5",
                    "surface": "web",
                    "estimate": {"amount": _usd(amount_cents)},
                },
            )
        except UsageRefused:
            pass  # a cap or the credits refused it: it holds nothing
    return org.id, owner_p, ids


def _recompute(app: App, org_id: str, period: str, plan: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """The summary an owner sees, from the events, open holds, purchases and the caps the plan set."""
    with app.engine.connect() as conn:
        people = conn.execute(
            select(members.c.id, members.c.email, members.c.name, members.c.created_at).where(
                members.c.organization_id == org_id
            )
        ).all()
        spent = dict(
            conn.execute(
                select(usage_events.c.member_id, func.sum(usage_events.c.cost_nano))
                .where(usage_events.c.organization_id == org_id, usage_events.c.period == period)
                .group_by(usage_events.c.member_id)
            ).all()
        )
        open_holds = conn.execute(
            select(holds.c.member_id, holds.c.amount_nano, holds.c.accounts).where(
                holds.c.organization_id == org_id, holds.c.status == "open", holds.c.period == period
            )
        ).all()
        purchased = conn.execute(
            select(func.sum(credit_purchases.c.amount_nano)).where(credit_purchases.c.organization_id == org_id)
        ).scalar_one()
        all_usage = conn.execute(
            select(func.coalesce(func.sum(usage_events.c.cost_nano), 0)).where(usage_events.c.organization_id == org_id)
        ).scalar_one()
    held: dict[str, int] = {}
    for member_id, amount, _accounts in open_holds:
        held[member_id] = held.get(member_id, 0) + amount
    held_credits = sum(amount for _m, amount, accounts in open_holds if "credits" in accounts.split(","))
    spent = {m: int(v) for m, v in spent.items()}
    default = None if plan["default_cap"] is None else plan["default_cap"] * NANO_PER_CENT
    own = {m: c for m, c in zip(ids, plan["own_caps"], strict=False) if c != ABSENT}
    listed, cap_list = [], []
    for member_id, email, name, _created in sorted(people, key=lambda p: (p.created_at, p.id)):
        s, h = spent.get(member_id, 0), held.get(member_id, 0)
        entry = None
        if member_id in own or default is not None:
            limit = (
                (None if own[member_id] is None else own[member_id] * NANO_PER_CENT) if member_id in own else default
            )
            entry = {"member_id": member_id, "source": "member" if member_id in own else "default"}
            entry.update(_cap_entry(limit, s, h))
            cap_list.append(entry)
        listed.append(
            {
                "member_id": member_id,
                "email": email,
                "name": name,
                "spend": _text(s),
                "held": _text(h),
                "cap": None if entry is None else entry["limit"],
                "cap_status": "ok" if entry is None else entry["status"],
            }
        )
    total, total_held = sum(spent.values()), sum(held.values())
    balance = int(purchased) - int(all_usage)
    org_cap = None if plan["org_cap"] is None else plan["org_cap"] * NANO_PER_CENT
    return {
        "total": _text(total),
        "credits": {"balance": _text(balance), "held": _text(held_credits), "available": _text(balance - held_credits)},
        "caps": {
            "organization": _cap_entry(org_cap, total, total_held),
            "member_default": {"limit": None if default is None else _text(default)},
            "members": cap_list,
        },
        "members": listed,
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=scenario)
def test_the_summary_equals_a_recomputation_from_events_holds_and_caps(app: App, plan: dict[str, Any]) -> None:
    org_id, owner, ids = _play(app, plan)
    summary = usage.usage_summary(app, owner, org_id)
    period = summary["period"]
    expected = _recompute(app, org_id, period, plan, ids)
    for key in ("total", "credits", "members"):
        assert summary[key] == expected[key], key
    for key in ("organization", "member_default", "members"):
        assert summary["caps"][key] == expected["caps"][key], key
    assert summary["caps"]["period"] == period
    assert caps.list_caps(app.uow(), owner, org_id, app.clock.now()) == summary["caps"]
    assert usage.usage_summary(app, OPERATOR, org_id) == summary

    for member_id in ids:
        member = Principal(
            PrincipalKind.MEMBER, org_id, member_id, "primary_owner" if member_id == ids[0] else "member"
        )
        if member.is_owner:
            continue
        mine = usage.usage_summary(app, member, org_id)
        assert mine["members"] == [m for m in summary["members"] if m["member_id"] == member_id]
        assert mine["caps"]["members"] == [c for c in summary["caps"]["members"] if c["member_id"] == member_id]
        assert {k: v for k, v in mine.items() if k not in ("members", "caps")} == {
            k: v for k, v in summary.items() if k not in ("members", "caps")
        }
        assert caps.list_caps(app.uow(), member, org_id, app.clock.now()) == mine["caps"]
