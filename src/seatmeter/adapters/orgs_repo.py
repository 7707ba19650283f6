"""Reading organizations and members."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, Row, select

from seatmeter.adapters.raw import Rows, Statement
from seatmeter.adapters.tables import members, organizations
from seatmeter.domain.errors import NotFound
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization

__all__ = [
    "MemberSeat",
    "get_member",
    "get_organization",
    "organization_and_member",
    "organization_and_members",
    "organization_from_row",
]


def organization_from_row(row: Any) -> Organization:
    prices = {k: Money.parse(v) for k, v in json.loads(row.seat_prices).items()}
    return Organization(
        row.id, row.name, row.timezone, row.plan, row.channel, row.term_start, row.billing_anchor_day, prices
    )


def get_organization(conn: Connection, org_id: str, *, for_update: bool = False) -> Organization:
    stmt = select(organizations).where(organizations.c.id == org_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).one_or_none()
    if row is None:
        raise NotFound(f"organization {org_id!r} does not exist")
    return organization_from_row(row)


def get_member(conn: Connection, org_id: str, member_id: str) -> Row[Any]:
    row = conn.execute(
        select(members).where(members.c.organization_id == org_id, members.c.id == member_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"member {member_id!r} is not in organization {org_id!r}")
    return row


_ORGANIZATION_AND_MEMBER = Statement(
    "SELECT o.id, o.name, o.timezone, o.plan, o.channel, o.term_start, o.billing_anchor_day, o.seat_prices, "
    "m.id AS member_id, m.seat_type FROM organizations o "
    "LEFT JOIN members m ON m.organization_id = o.id AND m.id = :member WHERE o.id = :org"
)


@dataclass(frozen=True, slots=True)
class MemberSeat:
    id: str
    seat_type: str | None


def organization_and_member(conn: Connection, org_id: str, member_id: str) -> tuple[Organization, MemberSeat]:
    """Both in one statement: the hot path of authorize needs the organization's rules and the member's seat."""
    row = _ORGANIZATION_AND_MEMBER.run(conn, {"org": org_id, "member": member_id}).first()
    if row is None:
        raise NotFound(f"organization {org_id!r} does not exist")
    if row.member_id is None:
        raise NotFound(f"member {member_id!r} is not in organization {org_id!r}")
    return _organization(row), MemberSeat(row.member_id, row.seat_type)


def _organization(row: Any) -> Organization:
    term_start = row.term_start if isinstance(row.term_start, date) else date.fromisoformat(row.term_start)
    return Organization(row.id, row.name, row.timezone, row.plan, row.channel, term_start, row.billing_anchor_day,
                        dict(_seat_prices(row.seat_prices)))  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _seat_prices(document: str) -> Mapping[str, Money]:
    """The seat prices of a stored JSON document. Memoized on the document itself, never on the organization:
    a price changed by any connection is a different document, parsed afresh."""
    return {k: Money.parse(v) for k, v in json.loads(document).items()}


@functools.cache
def _organization_and_members(n: int) -> Statement:
    wanted = ", ".join(f":m{i}" for i in range(n))
    return Statement(
        "SELECT o.id, o.name, o.timezone, o.plan, o.channel, o.term_start, o.billing_anchor_day, o.seat_prices, "
        "m.id AS member_id, m.seat_type FROM organizations o "
        f"LEFT JOIN members m ON m.organization_id = o.id AND m.id IN ({wanted}) WHERE o.id = :org"
    )


# PostgreSQL's text takes the members as one array: one text for any number of members, which psycopg prepares
# once per connection (with one text per number of members, many runs were parsed and planned anew).
_ORGANIZATION_AND_MEMBERS_POSTGRES = Statement(
    "SELECT o.id, o.name, o.timezone, o.plan, o.channel, o.term_start, o.billing_anchor_day, o.seat_prices, "
    "m.id AS member_id, m.seat_type FROM organizations o "
    "LEFT JOIN members m ON m.organization_id = o.id AND m.id = ANY(CAST(:members AS text[])) WHERE o.id = :org"
)


def organization_and_members(
    conn: Connection, org_id: str, member_ids: Sequence[str]
) -> tuple[Organization, dict[str, MemberSeat]]:
    """The organization and those of `member_ids` that are its members, in one statement (group commit)."""
    statement, params = organization_and_members_call(org_id, member_ids, postgres=conn.dialect.name == "postgresql")
    return organization_and_members_of(org_id, statement.run(conn, params))


def organization_and_members_call(
    org_id: str, member_ids: Sequence[str], *, postgres: bool
) -> tuple[Statement, dict[str, Any]]:
    """The statement of `organization_and_members`, for `raw.run_together`."""
    wanted = sorted(set(member_ids))
    if postgres:
        return _ORGANIZATION_AND_MEMBERS_POSTGRES, {"org": org_id, "members": wanted}
    return _organization_and_members(len(wanted)), {"org": org_id, **{f"m{i}": m for i, m in enumerate(wanted)}}


def organization_and_members_of(org_id: str, answer: Rows | None) -> tuple[Organization, dict[str, MemberSeat]]:
    """The answer of `organization_and_members_call`, read."""
    rows = answer.fetchall() if answer is not None else []
    if not rows:
        raise NotFound(f"organization {org_id!r} does not exist")
    found = {r.member_id: MemberSeat(r.member_id, r.seat_type) for r in rows if r.member_id is not None}
    return _organization(rows[0]), found
