"""Reading organizations and members."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, select

from seatmeter.adapters.tables import members, organizations
from seatmeter.domain.errors import NotFound
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization

__all__ = ["get_member", "get_organization", "organization_from_row"]


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
