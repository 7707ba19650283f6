"""The worker: closes ended periods, renews ended terms and expires stale holds. Run it as often as you like,
from as many processes as you like: every step is one transaction that is either done once or not at all, so
stopping it at any point loses nothing, and two workers never issue the same document twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from seatmeter.adapters import orgs_repo
from seatmeter.adapters.tables import organizations
from seatmeter.adapters.tables_billing import period_closes
from seatmeter.bootstrap import App
from seatmeter.domain.errors import SeatmeterError
from seatmeter.domain.periods import parse_period_key, period_containing
from seatmeter.domain.proration import local_date
from seatmeter.services import holds, notifications
from seatmeter.services.billing import Busy, close_period_now
from seatmeter.services.renewals import renew_now
from seatmeter.services.seats import current_term

__all__ = ["WorkerReport", "run_worker_once"]

MAX_CLOSES_PER_ORG = 24  # a long-stopped worker catches up over several runs


@dataclass
class WorkerReport:
    closed: list[tuple[str, str]] = field(default_factory=list)  # (organization, period)
    renewed: list[str] = field(default_factory=list)
    expired_holds: int = 0
    skipped_busy: int = 0
    errors: list[str] = field(default_factory=list)  # one organization's problem never stops the others
    notifications: dict[str, int] = field(default_factory=dict)  # delivered / retrying / failed this pass

    def to_json(self) -> dict[str, object]:
        return {
            "closed": [f"{o} {p}" for o, p in self.closed],
            "renewed": self.renewed,
            "expired_holds": self.expired_holds,
            "skipped_busy": self.skipped_busy,
            "errors": self.errors,
            "notifications": self.notifications,
        }


def run_worker_once(app: App) -> WorkerReport:
    report = WorkerReport()
    report.expired_holds = holds.expire_holds(app.uow(), app.clock.now())
    with app.uow() as uow:
        orgs = uow.conn.execute(
            select(
                organizations.c.id,
                organizations.c.timezone,
                organizations.c.billing_anchor_day,
                organizations.c.created_at,
            ).order_by(organizations.c.id)
        ).all()
        last_closed = dict(
            uow.conn.execute(
                select(period_closes.c.organization_id, func.max(period_closes.c.period)).group_by(
                    period_closes.c.organization_id
                )
            ).all()
        )
    for org in orgs:
        now = app.clock.now()
        try:
            for key in _due_periods(org, last_closed.get(org.id), now):
                close_period_now(app, org.id, key, skip_locked=True)
                report.closed.append((org.id, key))
            if _renewal_due(app, org.id, now) and renew_now(app, org.id, only_if_due=True) is not None:
                report.renewed.append(org.id)
        except Busy:
            report.skipped_busy += 1
        except SeatmeterError as exc:
            report.errors.append(f"{org.id}: {exc.code}: {exc.message}")
    report.notifications = notifications.deliver_once(app).to_json()
    return report


def _due_periods(org: Any, last_closed: str | None, now: datetime) -> list[str]:
    """Ended periods not yet closed, oldest first, from the period the organization was created in."""
    timezone, anchor = org.timezone, org.billing_anchor_day
    if last_closed is None:
        period = period_containing(org.created_at, timezone, anchor)
    else:
        period = parse_period_key(last_closed, timezone, anchor).next()
    due: list[str] = []
    while period.end <= now and len(due) < MAX_CLOSES_PER_ORG:
        due.append(period.key)
        period = period.next()
    return due


def _renewal_due(app: App, org_id: str, now: datetime) -> bool:
    with app.uow() as uow:
        org = orgs_repo.get_organization(uow.conn, org_id)
    return current_term(org).end <= local_date(now, org.timezone)
