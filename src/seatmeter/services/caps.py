"""Spend caps: the organization's, each member's, and the default for members without their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from seatmeter.adapters import limits_repo, orgs_repo
from seatmeter.adapters.sql import upsert
from seatmeter.adapters.tables import caps, limit_accounts, members
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.limits import ORGANIZATION, LimitState, member_account
from seatmeter.domain.money import Money
from seatmeter.domain.periods import Period, parse_period_key, period_containing
from seatmeter.services import notifications
from seatmeter.services.uow import UnitOfWork

__all__ = ["cap_json", "caps_snapshot", "clear_member_cap", "current_period", "list_caps", "parse_limit", "set_cap"]

MAX_CAP = Money.parse("1000000000")


def parse_limit(raw: Any) -> Money | None:
    """A cap is money (a decimal string) or null for unlimited. Unlimited usage is still billed."""
    if raw is None:
        return None
    limit = Money.parse(raw, field="limit")
    if limit.nano < 0 or limit > MAX_CAP:
        raise InvalidRequest(f"limit must be between 0.00 and {MAX_CAP} USD, or null for unlimited")
    return limit


def set_cap(
    uow: UnitOfWork,
    principal: Principal,
    org_id: str,
    scope: str,
    limit_raw: Any,
    now: datetime,
    member_id: str | None = None,
) -> dict[str, Any]:
    """Set (or clear, with null) a cap. It applies to the current billing period at once and to later ones.

    `scope` is 'organization', 'member_default' or 'member'. Raising a reached cap resumes usage immediately.
    """
    principal.require_owner(org_id)
    limit = parse_limit(limit_raw)
    limit_nano = None if limit is None else limit.nano
    with uow:
        conn = uow.conn
        org = orgs_repo.get_organization(conn, org_id)
        if scope == "member":
            if member_id is None:
                raise InvalidRequest("a member cap needs the member's id")
            orgs_repo.get_member(conn, org_id, member_id)
        period = period_containing(now, org.timezone, org.billing_anchor_day).key
        conn.execute(
            upsert(
                conn, caps, ["organization_id", "scope", "member_id"], {"limit_nano": limit_nano, "updated_at": now}
            ),
            {
                "organization_id": org_id,
                "scope": scope,
                "member_id": member_id or "",
                "limit_nano": limit_nano,
                "updated_at": now,
            },
        )
        if scope == "organization":
            limits_repo.set_ceiling(conn, org_id, period, limit_nano, account=ORGANIZATION)
        elif member_id is not None:
            limits_repo.set_ceiling(conn, org_id, period, limit_nano, account=member_account(member_id))
        else:
            limits_repo.set_ceiling(conn, org_id, period, limit_nano, default_members=True)
        notifications.cap_changed(conn, org_id, period, scope, member_id, now)
        uow.commit()
    return {"scope": scope, "member_id": member_id, "limit": None if limit is None else str(limit)}


def clear_member_cap(uow: UnitOfWork, principal: Principal, org_id: str, member_id: str, now: datetime) -> None:
    """Remove a member's own cap, so the default member cap (if any) applies to them again."""
    principal.require_owner(org_id)
    with uow:
        conn = uow.conn
        org = orgs_repo.get_organization(conn, org_id)
        orgs_repo.get_member(conn, org_id, member_id)
        conn.execute(
            delete(caps).where(
                caps.c.organization_id == org_id, caps.c.scope == "member", caps.c.member_id == member_id
            )
        )
        period = period_containing(now, org.timezone, org.billing_anchor_day).key
        ceiling = limits_repo.caps_for(conn, org_id, [member_account(member_id)])[member_account(member_id)]
        limits_repo.set_ceiling(conn, org_id, period, ceiling, account=member_account(member_id))
        notifications.cap_changed(conn, org_id, period, "member", member_id, now)
        uow.commit()


def cap_json(state: LimitState | None, limit_nano: int | None) -> dict[str, Any]:
    """limit, spent, held, remaining, status (ok | reached) of one cap in one period."""
    posted = state.posted_nano if state else 0
    held = state.held_nano if state else 0
    if limit_nano is None:
        remaining, status = None, "ok"
    else:
        room = max(0, limit_nano - posted - held)
        remaining, status = str(Money(room)), ("reached" if room == 0 else "ok")
    return {
        "limit": None if limit_nano is None else str(Money(limit_nano)),
        "spent": str(Money(posted)),
        "held": str(Money(held)),
        "remaining": remaining,
        "status": status,
    }


def current_period(conn: Any, org_id: str, now: datetime, key: str | None = None) -> Period:
    org = orgs_repo.get_organization(conn, org_id)
    if key is None:
        return period_containing(now, org.timezone, org.billing_anchor_day)
    return parse_period_key(key, org.timezone, org.billing_anchor_day)


def list_caps(
    uow: UnitOfWork, principal: Principal, org_id: str, now: datetime, period_key: str | None = None
) -> dict[str, Any]:
    """Every cap with its status in the period. Members see the organization cap and their own only."""
    principal.require_member_of(org_id)
    with uow:
        conn = uow.conn
        period = current_period(conn, org_id, now, period_key)
        return caps_snapshot(conn, principal, org_id, period)


def caps_snapshot(conn: Any, principal: Principal, org_id: str, period: Period) -> dict[str, Any]:
    config = {
        (r.scope, r.member_id): r.limit_nano for r in conn.execute(select(caps).where(caps.c.organization_id == org_id))
    }
    states = {
        r.account: LimitState(r.account, r.limit_nano, r.posted_nano, r.held_nano)
        for r in conn.execute(
            select(limit_accounts).where(
                limit_accounts.c.organization_id == org_id, limit_accounts.c.period == period.key
            )
        )
    }
    default = config.get(("member_default", ""))
    member_rows = (
        conn.execute(
            select(members.c.id).where(members.c.organization_id == org_id).order_by(members.c.created_at, members.c.id)
        )
        .scalars()
        .all()
    )
    listed = []
    for mid in member_rows:
        if not principal.can_see_member(org_id, mid):
            continue
        own = ("member", mid) in config
        limit = config[("member", mid)] if own else default
        if limit is None and not own:
            continue
        state = states.get(member_account(mid))
        # A period row keeps the ceiling it had; a past period shows the cap as it stood then.
        shown = state.limit_nano if state is not None else limit
        listed.append({"member_id": mid, "source": "member" if own else "default", **cap_json(state, shown)})
    org_state = states.get(ORGANIZATION)
    org_limit = org_state.limit_nano if org_state is not None else config.get(("organization", ""))
    return {
        "period": period.key,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "organization": cap_json(org_state, org_limit),
        "member_default": {"limit": None if default is None else str(Money(default))},
        "members": listed,
    }
