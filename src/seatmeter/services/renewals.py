"""Renewal: roll the term, apply scheduled reductions, migrate legacy plans, charge the new year; or a dry run.

One `renewals` row per organization and new term makes a renewal happen once, however often it is asked for.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from seatmeter.adapters import billing_repo, orgs_repo
from seatmeter.adapters.tables import members, organizations
from seatmeter.adapters.tables_billing import period_closes, renewals, scheduled_reductions, seat_changes, seat_counts
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.ids import new_id
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization, validate_seat_prices
from seatmeter.domain.periods import parse_period_key, period_containing, zone
from seatmeter.domain.proration import local_date
from seatmeter.domain.renewal import Renewal, compare_costs, plan_renewal, target_plan
from seatmeter.domain.seats import SEAT_TYPES, SeatAllowance
from seatmeter.services.seats import current_term

__all__ = ["DRY_RUN_MONTHS", "renew", "renew_now"]

DRY_RUN_MONTHS = 3


def renew(app: App, principal: Principal, org_id: str, raw: Any) -> dict[str, Any]:
    """The operator renews an organization (or migrates it early with `effective_date`), or asks for a dry run."""
    principal.require_operator()
    if not isinstance(raw, dict):
        raise InvalidRequest("the request body must be a JSON object")
    dry_run = raw.get("dry_run", False)
    if type(dry_run) is not bool:
        raise InvalidRequest("dry_run must be true or false")
    effective = None
    if raw.get("effective_date") is not None:
        try:
            effective = date.fromisoformat(str(raw["effective_date"]))
        except ValueError:
            raise InvalidRequest("effective_date must be a date, YYYY-MM-DD") from None
    result = renew_now(app, org_id, effective=effective, dry_run=dry_run, seat_prices_raw=raw.get("seat_prices"))
    if result is None:  # only the worker's only_if_due call can get here
        raise InvalidRequest("the organization's term has not ended; nothing to renew")
    return result


def _require_ended_periods_closed(conn: Connection, org: Organization, now: datetime) -> None:
    """A seat-based period is billed as seat fees plus extra usage beyond the allowance: it must be closed
    under that plan, before the organization moves to usage-based pricing (the worker closes before it renews)."""
    last = conn.execute(
        select(func.max(period_closes.c.period)).where(period_closes.c.organization_id == org.id)
    ).scalar_one_or_none()
    if last is None:
        created = conn.execute(select(organizations.c.created_at).where(organizations.c.id == org.id)).scalar_one()
        period = period_containing(created, org.timezone, org.billing_anchor_day)
    else:
        period = parse_period_key(last, org.timezone, org.billing_anchor_day).next()
    pending = []
    while period.end <= now:
        pending.append(period.key)
        period = period.next()
    if pending:
        raise InvalidRequest(
            f"billing periods {', '.join(pending)} have ended but are not closed; they are billed under the "
            f"seat-based plan, so close them before the organization moves to usage-based pricing",
            resume="Close them (POST .../periods/{YYYY-MM}/close or `seatmeter billing close`), or let "
            "`seatmeter worker` close them, then renew again.",
        )


def _inputs(conn: Connection, org: Organization) -> tuple[dict[str, int], dict[str, int], dict[str, str | None]]:
    quantities = {t: p for t, (p, _) in billing_repo.seat_rows(conn, org.id).items()}
    reductions: dict[str, int] = {}
    for row in conn.execute(
        select(scheduled_reductions).where(
            scheduled_reductions.c.organization_id == org.id, scheduled_reductions.c.status == "scheduled"
        )
    ):
        reductions[row.seat_type] = reductions.get(row.seat_type, 0) + row.quantity
    seats = {
        r.id: r.seat_type
        for r in conn.execute(select(members.c.id, members.c.seat_type).where(members.c.organization_id == org.id))
    }
    return quantities, reductions, seats


def renew_now(
    app: App,
    org_id: str,
    *,
    effective: date | None = None,
    dry_run: bool = False,
    seat_prices_raw: Any = None,
    only_if_due: bool = False,
) -> dict[str, Any] | None:
    """Renew in one transaction. With `only_if_due` (the worker) a term that has not ended yet is left alone,
    which is what a second worker finds once the first has renewed."""
    now = app.clock.now()
    with app.uow() as uow:
        conn = uow.conn
        org = orgs_repo.get_organization(conn, org_id, for_update=True)
        term = current_term(org)
        today = local_date(now, org.timezone)
        if only_if_due and term.end > today:
            return None
        prices = dict(org.seat_prices)
        if seat_prices_raw is not None:
            prices.update(validate_seat_prices(target_plan(org.plan), seat_prices_raw))
        quantities, reductions, seats = _inputs(conn, org)
        renewal = plan_renewal(
            plan=org.plan,
            term=term,
            quantities=quantities,
            reductions=reductions,
            member_seats=seats,
            seat_prices=prices,
            effective=effective,
        )
        if dry_run:
            return _dry_run(conn, org, renewal, quantities, seats, prices, min(effective or term.end, today))
        if renewal.term.start > today:
            raise InvalidRequest(
                f"the term runs until {term.end}; it renews then",
                resume="Give an effective_date on or before today to migrate early.",
            )
        done = conn.execute(
            select(renewals).where(renewals.c.organization_id == org_id, renewals.c.term_start == renewal.term.start)
        ).one_or_none()
        if done is None and org.plan == "seat_based":
            _require_ended_periods_closed(conn, org, now)
        if done is not None:  # the same early migration asked for again: it happened once
            return _view(conn, org_id, renewal, done.invoice_id, done.credit_note_id)
        invoice_id = credit_note_id = None
        if renewal.refund_lines:
            credit_note_id = billing_repo.issue(conn, org_id, "credit_note", renewal.refund_lines, now)
        if renewal.charge_lines:
            invoice_id = billing_repo.issue(conn, org_id, "seats", renewal.charge_lines, now)
        _apply(conn, org, renewal, seats, prices, now)
        conn.execute(
            renewals.insert().values(
                organization_id=org_id,
                term_start=renewal.term.start,
                from_plan=org.plan,
                plan=renewal.plan,
                invoice_id=invoice_id,
                credit_note_id=credit_note_id,
                created_at=now,
            )
        )
        view = _view(conn, org_id, renewal, invoice_id, credit_note_id)
        uow.commit()
    return view


def _apply(
    conn: Connection,
    org: Organization,
    renewal: Renewal,
    old_seats: dict[str, str | None],
    prices: dict[str, Money],
    now: Any,
) -> None:
    conn.execute(
        update(organizations)
        .where(organizations.c.id == org.id)
        .values(
            plan=renewal.plan,
            term_start=renewal.term.start,
            seat_prices=json.dumps({t: str(p) for t, p in prices.items() if t in _types(renewal)}),
        )
    )
    assigned: dict[str, int] = {}
    for seat in renewal.member_seats.values():
        if seat is not None:
            assigned[seat] = assigned.get(seat, 0) + 1
    conn.execute(delete(seat_counts).where(seat_counts.c.organization_id == org.id))
    rows = [
        {"organization_id": org.id, "seat_type": t, "purchased": q, "assigned": assigned.get(t, 0)}
        for t, q in renewal.quantities.items()
    ]
    if rows:
        conn.execute(seat_counts.insert(), rows)
    if renewal.plan != renewal.from_plan:
        for member_id, seat in renewal.member_seats.items():
            if seat != old_seats.get(member_id):
                conn.execute(
                    update(members)
                    .where(members.c.organization_id == org.id, members.c.id == member_id)
                    .values(seat_type=seat)
                )
    conn.execute(
        update(scheduled_reductions)
        .where(scheduled_reductions.c.organization_id == org.id, scheduled_reductions.c.status == "scheduled")
        .values(status="applied")
    )
    kind = "renewal" if renewal.plan == renewal.from_plan else "migration"
    changes = [
        {
            "organization_id": org.id,
            "id": new_id("sc"),
            "kind": kind,
            "seat_type": t,
            "quantity": q,
            "effective_date": renewal.term.start,
            "term_start": renewal.term.start,
            "invoice_id": None,
            "actor": "operator",
            "created_at": now,
        }
        for t, q in renewal.quantities.items()
        if q
    ]
    if changes:
        conn.execute(seat_changes.insert(), changes)


def _types(renewal: Renewal) -> set[str]:
    return set(SEAT_TYPES[renewal.plan])


def _view(
    conn: Connection, org_id: str, renewal: Renewal, invoice_id: str | None, credit_note_id: str | None
) -> dict[str, Any]:
    return {
        "dry_run": False,
        "from_plan": renewal.from_plan,
        "plan": renewal.plan,
        "term": {"start": renewal.term.start.isoformat(), "end": renewal.term.end.isoformat()},
        "seats": dict(renewal.quantities),
        "notes": list(renewal.notes),
        "invoice": billing_repo.load_invoice(conn, org_id, invoice_id).to_json() if invoice_id else None,
        "credit_note": billing_repo.load_invoice(conn, org_id, credit_note_id).to_json() if credit_note_id else None,
    }


def _dry_run(
    conn: Connection,
    org: Organization,
    renewal: Renewal,
    quantities: dict[str, int],
    seats: dict[str, str | None],
    prices: dict[str, Money],
    until: date,
) -> dict[str, Any]:
    """The last three whole periods before `until` (the renewal, or today if sooner), priced under the current
    plan and under the new one."""
    at = datetime.combine(until, time(0), tzinfo=zone(org.timezone))
    period = period_containing(at, org.timezone, org.billing_anchor_day)
    keys = []
    for _ in range(DRY_RUN_MONTHS):
        period = period.previous()
        keys.append(period.key)
    keys.reverse()
    spend = billing_repo.spend_by_member(conn, org.id, keys)
    monthly = [(k, {m: Money(v) for (p, m), v in spend.items() if p == k}) for k in keys]
    allowances = {
        t: SeatAllowance(t, prices.get(t, Money.zero()), included)
        for t, included in billing_repo.included_usage(conn, org.id).items()
    }
    for t in quantities:
        allowances.setdefault(t, SeatAllowance(t, prices.get(t, Money.zero()), Money.zero()))
    comparison = compare_costs(
        plan=org.plan,
        quantities=quantities,
        member_seats=seats,
        seat_prices=prices,
        allowances=allowances,
        monthly_spend=monthly,
    )
    return {
        "dry_run": True,
        "from_plan": org.plan,
        "plan": renewal.plan,
        "term": {"start": renewal.term.start.isoformat(), "end": renewal.term.end.isoformat()},
        "seats": dict(renewal.quantities),
        "notes": list(renewal.notes),
        "annual_seat_charge": str(sum((ln.amount for ln in renewal.charge_lines), Money.zero())),
        "comparison": {
            "months": [{"period": m.period, "current": str(m.current), "new": str(m.new)} for m in comparison.months],
            "current_total": str(comparison.current_total),
            "new_total": str(comparison.new_total),
        },
    }
