"""What the Usage page shows: read-only queries shaped for it, paginated in the database so that an
organization of 10,000 members costs one page of rows, not 10,000.

Owners see everyone; a member sees their own row and their own chart, and nothing of anyone else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, literal, or_, select

from seatmeter.adapters import orgs_repo
from seatmeter.adapters.tables import TS, caps, invoices, limit_accounts, members, usage_events
from seatmeter.domain.auth import Principal
from seatmeter.domain.limits import CREDITS, ORGANIZATION
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization
from seatmeter.domain.periods import Period, period_containing, zone
from seatmeter.domain.thresholds import CapStatus, cap_status

__all__ = [
    "SORTS",
    "CapView",
    "ChartData",
    "CreditsView",
    "MemberPage",
    "MemberRow",
    "chart",
    "credits_view",
    "default_member_cap",
    "member_page",
    "organization_cap",
    "project",
    "recent_invoices",
]

SORTS = ("name", "email", "spend", "cap")
PAGE_SIZES = (25, 50, 100)
BURN_WINDOW = timedelta(days=7)
TOP_SERIES = 7  # the chart shows the biggest spenders (or models) and puts the rest in "Others"


def project(spent: Money, period: Period, now: datetime) -> Money:
    """Month-end spend at the period's burn rate so far: spent × period length ÷ time elapsed."""
    elapsed = int((min(max(now, period.start), period.end) - period.start).total_seconds())
    if elapsed <= 0:
        return spent
    length = int((period.end - period.start).total_seconds())
    return Money.from_ratio(spent.nano * length, elapsed)


@dataclass(frozen=True, slots=True)
class CreditsView:
    balance: Money
    held: Money
    available: Money
    burn_per_day: Money
    runs_out_on: date | None  # None: no recent usage, the balance lasts


@dataclass(frozen=True, slots=True)
class CapView:
    limit: Money | None
    spent: Money
    held: Money
    status: CapStatus
    percent: int  # of the limit, 0-100, for the progress bar (integer arithmetic)
    projected: Money


@dataclass(frozen=True, slots=True)
class MemberRow:
    id: str
    email: str
    name: str
    role: str
    spent: Money
    held: Money
    cap: Money | None
    cap_source: str  # "member" | "default" | "none"
    status: CapStatus
    projected: Money


@dataclass(frozen=True, slots=True)
class MemberPage:
    rows: list[MemberRow]
    total: int
    page: int
    pages: int
    size: int
    sort: str
    descending: bool
    search: str


@dataclass(frozen=True, slots=True)
class ChartData:
    days: list[date]
    series: list[tuple[str, dict[int, int]]] = field(default_factory=list)  # label, day index -> nano-USD


def _percent(used: int, limit: int | None) -> int:
    if not limit:
        return 100 if limit == 0 and used > 0 else 0
    return min(100, used * 100 // limit)


def credits_view(conn: Connection, org: Organization, now: datetime) -> CreditsView | None:
    row = conn.execute(
        select(limit_accounts).where(limit_accounts.c.organization_id == org.id, limit_accounts.c.account == CREDITS)
    ).one_or_none()
    if row is None:
        return None
    balance = Money((row.limit_nano or 0) - row.posted_nano)
    held = Money(row.held_nano)
    available = balance - held
    burned = conn.execute(
        select(func.coalesce(func.sum(usage_events.c.cost_nano), 0)).where(
            usage_events.c.organization_id == org.id,
            usage_events.c.occurred_at >= now - BURN_WINDOW,
            usage_events.c.occurred_at <= now,
        )
    ).scalar_one()
    window_s = int(BURN_WINDOW.total_seconds())
    per_day = Money.from_ratio(int(burned) * 86_400, window_s)
    runs_out_on = None
    if burned > 0:
        seconds_left = max(available.nano, 0) * window_s // int(burned)
        runs_out_on = (now + timedelta(seconds=seconds_left)).astimezone(zone(org.timezone)).date()
    return CreditsView(balance, held, available, per_day, runs_out_on)


def organization_cap(conn: Connection, org: Organization, period: Period, now: datetime) -> CapView:
    row = conn.execute(
        select(limit_accounts).where(
            limit_accounts.c.organization_id == org.id,
            limit_accounts.c.account == ORGANIZATION,
            limit_accounts.c.period == period.key,
        )
    ).one_or_none()
    if row is not None:
        limit_nano, spent, held = row.limit_nano, row.posted_nano, row.held_nano
    else:
        limit_nano = conn.execute(
            select(caps.c.limit_nano).where(caps.c.organization_id == org.id, caps.c.scope == "organization")
        ).scalar_one_or_none()
        spent = held = 0
    limit = None if limit_nano is None else Money(limit_nano)
    return CapView(
        limit,
        Money(spent),
        Money(held),
        cap_status(limit, Money(spent), Money(held)),
        _percent(spent + held, limit_nano),
        project(Money(spent), period, now),
    )


def member_page(
    conn: Connection,
    principal: Principal,
    org: Organization,
    period: Period,
    now: datetime,
    *,
    search: str = "",
    sort: str = "spend",
    descending: bool = True,
    page: int = 1,
    size: int = 50,
) -> MemberPage:
    """One page of members with their spend, cap and status in `period`. Members get their own row only."""
    sort = sort if sort in SORTS else "spend"
    size = size if size in PAGE_SIZES else 50
    la = limit_accounts.alias("la")
    own = caps.alias("own")
    default = caps.alias("dflt")
    joined = members.outerjoin(
        own,
        and_(
            own.c.organization_id == members.c.organization_id, own.c.scope == "member", own.c.member_id == members.c.id
        ),
    ).outerjoin(
        default,
        and_(
            default.c.organization_id == members.c.organization_id,
            default.c.scope == "member_default",
            default.c.member_id == "",
        ),
    )
    # The member's period row, read by primary key for each member (correlated subqueries): an outer join on
    # 'member:' || id can make the planner scan limit_accounts once per member when statistics are stale.
    row_of_member = and_(
        la.c.organization_id == members.c.organization_id,
        la.c.account == literal("member:") + members.c.id,
        la.c.period == period.key,
    )

    def period_row(column: Any) -> Any:
        return select(column).where(row_of_member).scalar_subquery()

    # A period row keeps the ceiling it was given; without one, the member's own cap, else the default.
    cap = case(
        (exists().where(row_of_member), period_row(la.c.limit_nano)),
        (own.c.scope.is_not(None), own.c.limit_nano),
        else_=default.c.limit_nano,
    )
    spent = func.coalesce(period_row(la.c.posted_nano), 0)
    held = func.coalesce(period_row(la.c.held_nano), 0)
    where = [members.c.organization_id == org.id]
    if not principal.is_owner and not principal.is_operator:
        where.append(members.c.id == (principal.member_id or ""))
    text = search.strip()[:100]
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            or_(
                func.lower(members.c.email).like(pattern, escape="\\"),
                func.lower(members.c.name).like(pattern, escape="\\"),
            )
        )
    total = int(conn.execute(select(func.count()).select_from(members).where(*where)).scalar_one())
    pages = max(1, -(-total // size))
    page = min(max(page, 1), pages)
    key = {"name": func.lower(members.c.name), "email": func.lower(members.c.email), "spend": spent, "cap": cap}[sort]
    order = [key.desc().nulls_first() if descending else key.asc().nulls_last(), members.c.id]
    rows = conn.execute(
        select(
            members.c.id,
            members.c.email,
            members.c.name,
            members.c.role,
            spent.label("spent"),
            held.label("held"),
            cap.label("cap"),
            own.c.scope.label("own_scope"),
            default.c.limit_nano.label("default_limit"),
        )
        .select_from(joined)
        .where(*where)
        .order_by(*order)
        .limit(size)
        .offset((page - 1) * size)
    ).all()
    listed = []
    for r in rows:
        limit = None if r.cap is None else Money(r.cap)
        source = "member" if r.own_scope is not None else ("default" if r.default_limit is not None else "none")
        listed.append(
            MemberRow(
                r.id,
                r.email,
                r.name,
                r.role,
                Money(r.spent),
                Money(r.held),
                limit,
                source,
                cap_status(limit, Money(r.spent), Money(r.held)),
                project(Money(r.spent), period, now),
            )
        )
    return MemberPage(listed, total, page, pages, size, sort, descending, text)


def _day_bounds(period: Period) -> tuple[list[date], list[datetime]]:
    days = [period.start_date + timedelta(days=i) for i in range(period.days())]
    zone = period.start.tzinfo
    ends = [datetime(d.year, d.month, d.day, tzinfo=zone) + timedelta(days=1) for d in days]
    return days, ends


def chart(conn: Connection, principal: Principal, org: Organization, period: Period, by: str) -> ChartData:
    """Daily spend in `period`, one series per member (the biggest spenders, then "Others") or per model.
    A member sees only their own spend, by model."""
    days, ends = _day_bounds(period)
    where = [usage_events.c.organization_id == org.id, usage_events.c.period == period.key]
    is_owner = principal.is_owner or principal.is_operator
    if not is_owner:
        where.append(usage_events.c.member_id == (principal.member_id or ""))
        by = "model"
    # The local day of each event: its index among the period's day ends, in the organization's zone.
    day = case(
        *[(usage_events.c.occurred_at < literal(end, TS), index) for index, end in enumerate(ends)], else_=len(days) - 1
    )
    if by == "model":
        series_key: Any = usage_events.c.model
        labels: dict[str, str] = {}
    else:
        top = (
            conn.execute(
                select(limit_accounts.c.account)
                .where(
                    limit_accounts.c.organization_id == org.id,
                    limit_accounts.c.period == period.key,
                    limit_accounts.c.account.like("member:%"),
                    limit_accounts.c.posted_nano > 0,
                )
                .order_by(limit_accounts.c.posted_nano.desc())
                .limit(TOP_SERIES)
            )
            .scalars()
            .all()
        )
        ids = [account.removeprefix("member:") for account in top]
        labels = dict(
            conn.execute(
                select(members.c.id, members.c.email).where(members.c.organization_id == org.id, members.c.id.in_(ids))
            ).all()
        )
        series_key = case(
            (usage_events.c.member_id.in_(list(labels) or [""]), usage_events.c.member_id), else_=literal("~others")
        )
    rows = conn.execute(
        select(day.label("day"), series_key.label("series"), func.sum(usage_events.c.cost_nano).label("cost"))
        .where(*where)
        .group_by(day, series_key)
    ).all()
    by_series: dict[str, dict[int, int]] = {}
    for r in rows:
        by_series.setdefault(r.series, {})[int(r.day)] = int(r.cost)
    ordered = sorted(by_series.items(), key=lambda item: (item[0] == "~others", -sum(item[1].values())))
    named = [(("Others" if k == "~others" else labels.get(k, k)), v) for k, v in ordered]
    return ChartData(days, named[: TOP_SERIES + 1])


def default_member_cap(conn: Connection, org_id: str) -> Money | None:
    limit = conn.execute(
        select(caps.c.limit_nano).where(caps.c.organization_id == org_id, caps.c.scope == "member_default")
    ).scalar_one_or_none()
    return None if limit is None else Money(limit)


def recent_invoices(conn: Connection, org_id: str, limit: int = 24) -> Sequence[Any]:
    return conn.execute(
        select(invoices).where(invoices.c.organization_id == org_id).order_by(invoices.c.number.desc()).limit(limit)
    ).all()


def current_period(conn: Connection, org_id: str, now: datetime) -> tuple[Organization, Period]:
    org = orgs_repo.get_organization(conn, org_id)
    return org, period_containing(now, org.timezone, org.billing_anchor_day)
