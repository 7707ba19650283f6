"""Seat rules that gate authorization, called from the core's authorize (services/holds.py).

The allowance check runs after the core has locked the member's limit row for the period, so the spend it
reads cannot move until the hold is written: two requests cannot both fit in the last of an allowance.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from seatmeter.adapters.tables import limit_accounts, members
from seatmeter.adapters.tables_billing import billing_settings, seat_allowances
from seatmeter.domain.limits import member_account
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization
from seatmeter.domain.seats import check_allowance

__all__ = ["check_hold_allowance"]


def check_hold_allowance(
    conn: Connection, org: Organization, member_id: str, period: str, amount_nano: int, pending_nano: int = 0
) -> None:
    """Seat-based plans: refuse with `allowance_exhausted` a hold that would pass the seat's included usage.

    `pending_nano`: what this transaction has granted the member but not yet written (a group commit's
    earlier holds), counted as spent.
    """
    if org.plan != "seat_based":
        return
    enabled = conn.execute(
        select(billing_settings.c.extra_usage_enabled).where(billing_settings.c.organization_id == org.id)
    ).scalar_one_or_none()
    if enabled:
        return
    seat_type = conn.execute(
        select(members.c.seat_type).where(members.c.organization_id == org.id, members.c.id == member_id)
    ).scalar_one_or_none()
    included = conn.execute(
        select(seat_allowances.c.included_usage_nano).where(
            seat_allowances.c.organization_id == org.id, seat_allowances.c.seat_type == seat_type
        )
    ).scalar_one_or_none()
    spent = conn.execute(
        select(limit_accounts.c.posted_nano + limit_accounts.c.held_nano).where(
            limit_accounts.c.organization_id == org.id,
            limit_accounts.c.account == member_account(member_id),
            limit_accounts.c.period == period,
        )
    ).scalar_one_or_none()
    spent_nano = (spent or 0) + pending_nano
    check_allowance(Money(included or 0), Money(spent_nano), Money(amount_nano), extra_usage_enabled=False)
