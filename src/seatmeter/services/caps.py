"""Spend caps: the organization's, each member's, and the default for members without their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete

from seatmeter.adapters import limits_repo, orgs_repo, summary_repo
from seatmeter.adapters.sql import upsert
from seatmeter.adapters.summary_repo import SummaryRows
from seatmeter.adapters.tables import caps
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.limits import ORGANIZATION, LimitState, member_account
from seatmeter.domain.money import Money, usd_text
from seatmeter.domain.organization import Organization
from seatmeter.domain.periods import Period, parse_period_key, period_containing
from seatmeter.services import notifications
from seatmeter.services.uow import UnitOfWork

__all__ = [
    "MoneyText",
    "cap_json",
    "caps_snapshot",
    "caps_view",
    "clear_member_cap",
    "current_period",
    "list_caps",
    "parse_limit",
    "period_of",
    "set_cap",
]

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
    return cap_fields(limit_nano, posted, held, usd_text)


def cap_fields(limit_nano: int | None, posted: int, held: int, text: Callable[[int], str]) -> dict[str, Any]:
    """`cap_json`'s fields from the row's figures, each amount written by `text` (a cache, for a summary)."""
    if limit_nano is None:
        remaining, status = None, "ok"
    else:
        room = max(0, limit_nano - posted - held)
        remaining, status = text(room), ("reached" if room == 0 else "ok")
    return {
        "limit": None if limit_nano is None else text(limit_nano),
        "spent": text(posted),
        "held": text(held),
        "remaining": remaining,
        "status": status,
    }


def current_period(conn: Any, org_id: str, now: datetime, key: str | None = None) -> Period:
    return period_of(orgs_repo.get_organization(conn, org_id), now, key)


def period_of(org: Organization, now: datetime, key: str | None = None) -> Period:
    """The period `key` names (YYYY-MM), or the one containing `now`, in the organization's calendar."""
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
    rows = summary_repo.read(conn, org_id, period.key, None if _sees_everyone(principal) else principal.member_id)
    return caps_view(period, rows, MoneyText())[0]


def _sees_everyone(principal: Principal) -> bool:
    return principal.is_operator or principal.is_owner


class MoneyText(dict[int, str]):
    """Amounts as text, formatted once per distinct amount: a summary prints the same caps and zeros 10,000 times."""

    def __missing__(self, nano: int) -> str:
        text = self[nano] = usd_text(nano)
        return text


def caps_view(period: Period, rows: SummaryRows, text: MoneyText) -> tuple[dict[str, Any], list[dict[str, Any] | None]]:
    """The caps of the period as `cap_json` shows them, for the members read (the caller read only those the
    principal may see); and for each member read, in the same order, their entry or None if they have no cap.

    A member is listed when they have a cap of their own (even unlimited) or there is a default member cap. A
    period row keeps the ceiling it had, so a past period shows the cap as it stood then.
    """
    config, limits = rows.caps, rows.limits
    default = config.get(("member_default", ""))
    own_caps = {member: limit for (scope, member), limit in config.items() if scope == "member"}
    # A member's (limit, spent, held) -> their cap fields, made once: most members of a large organization share
    # them (no spend yet, the default cap), and each is otherwise four amounts looked up and a dict built per member.
    fields_of: dict[tuple[int | None, int, int], dict[str, Any]] = {}
    listed: list[dict[str, Any]] = []
    by_member: list[dict[str, Any] | None] = []
    for mid, _email, _name in rows.members:
        own = mid in own_caps
        if not own and default is None:
            by_member.append(None)
            continue
        state = limits.get(member_account(mid)) or (own_caps[mid] if own else default, 0, 0)
        fields = fields_of.get(state)
        if fields is None:
            fields = fields_of[state] = cap_fields(*state, text.__getitem__)
        entry = {"member_id": mid, "source": "member" if own else "default", **fields}
        listed.append(entry)
        by_member.append(entry)
    org = limits.get(ORGANIZATION)
    org_state = None if org is None else LimitState(ORGANIZATION, *org)
    org_limit = org_state.limit_nano if org_state is not None else config.get(("organization", ""))
    view = {
        "period": period.key,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "organization": cap_json(org_state, org_limit),
        "member_default": {"limit": None if default is None else text[default]},
        "members": listed,
    }
    return view, by_member
