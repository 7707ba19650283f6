"""Reading organizations and members."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, Row, select

from seatmeter.adapters.raw import Statement
from seatmeter.adapters.tables import members, organizations
from seatmeter.domain.errors import NotFound
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization

__all__ = ["MemberSeat", "get_member", "get_organization", "organization_and_member", "organization_from_row"]


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
    term_start = row.term_start if isinstance(row.term_start, date) else date.fromisoformat(row.term_start)
    org = Organization(row.id, row.name, row.timezone, row.plan, row.channel, term_start, row.billing_anchor_day,
                       dict(_seat_prices(row.seat_prices)))  # fmt: skip
    return org, MemberSeat(row.member_id, row.seat_type)


@functools.lru_cache(maxsize=1024)
def _seat_prices(document: str) -> Mapping[str, Money]:
    """The seat prices of a stored JSON document. Memoized on the document itself, never on the organization:
    a price changed by any connection is a different document, parsed afresh."""
    return {k: Money.parse(v) for k, v in json.loads(document).items()}
