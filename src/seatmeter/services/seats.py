"""Seat use cases: buy seats (prorated for the rest of the term), reduce or schedule a reduction, assign, list.

Each runs in one transaction that starts by locking the organization row, so seat changes of one
organization, its invoice numbers and its renewals happen one at a time.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select, update

from seatmeter.adapters import billing_repo, orgs_repo
from seatmeter.adapters.tables import members
from seatmeter.adapters.tables_billing import scheduled_reductions, seat_changes
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import Forbidden, InvalidRequest
from seatmeter.domain.ids import new_id
from seatmeter.domain.invoices import InvoiceLine
from seatmeter.domain.organization import Organization
from seatmeter.domain.proration import Term, local_date, prorate
from seatmeter.domain.seats import (
    SEAT_TYPES,
    check_assignable,
    check_mid_term_change,
    check_reduction,
    check_seat_type,
    is_annual,
)

__all__ = ["add_seats", "assign_seat", "current_term", "list_seats", "reduce_seats"]

MAX_SEATS_PER_CHANGE = 100_000


def current_term(org: Organization) -> Term:
    """`organizations.term_start` is the start of the current term; a renewal moves it."""
    return Term.starting(org.term_start)


def _quantity(raw: Any) -> int:
    if type(raw) is not int or not 1 <= raw <= MAX_SEATS_PER_CHANGE:
        raise InvalidRequest(
            f"quantity must be a whole number of seats from 1 to {MAX_SEATS_PER_CHANGE:,}, got {raw!r}"
        )
    return raw


def _seat_type(org: Organization, raw: Any) -> str:
    if not isinstance(raw, str):
        raise InvalidRequest(f"seat_type must be one of {', '.join(SEAT_TYPES[org.plan])}")
    check_seat_type(org.plan, raw)
    return raw


def _date(raw: Any, field: str) -> date:
    try:
        return date.fromisoformat(raw) if isinstance(raw, str) else date.fromisoformat("x")
    except ValueError:
        raise InvalidRequest(f"{field} must be a date, YYYY-MM-DD, got {raw!r}") from None


def _body(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return raw


def _actor(principal: Principal) -> str:
    return "operator" if principal.is_operator else str(principal.member_id)


def add_seats(app: App, principal: Principal, org_id: str, raw: Any) -> dict[str, Any]:
    """Buy seats. On annual plans the rest of the term is charged at once, on an invoice of its own."""
    principal.require_owner(org_id)
    body = _body(raw)
    now = app.clock.now()
    with app.uow() as uow:
        conn = uow.conn
        org = orgs_repo.get_organization(conn, org_id, for_update=True)
        seat_type = _seat_type(org, body.get("seat_type"))
        quantity = _quantity(body.get("quantity"))
        today = local_date(now, org.timezone)
        effective = today if body.get("effective_date") is None else _date(body["effective_date"], "effective_date")
        if effective != today and not principal.is_operator:
            raise Forbidden(
                "only the operator can buy seats with an effective_date other than today",
                resume="Leave effective_date out, or ask your account manager.",
            )
        term = current_term(org)
        if effective != term.start:
            check_mid_term_change(org.channel, by_operator=principal.is_operator)
        if seat_type not in org.seat_prices:
            raise InvalidRequest(
                f"the organization has no price for the {seat_type} seat",
                resume=f"The operator sets seat_prices.{seat_type} first.",
            )
        invoice = None
        invoice_id = None
        if is_annual(org.plan):
            charge = prorate(org.seat_prices[seat_type], quantity, term, effective)
            span = "the whole term" if charge.is_whole_term else f"{charge.days_remaining}/{charge.days_in_term} days"
            line = InvoiceLine(
                f"{quantity} × {seat_type} seats at ${org.seat_prices[seat_type]}/month from {effective} to "
                f"{term.end} ({span})",
                charge.amount,
                quantity=quantity,
            )
            invoice_id = billing_repo.issue(conn, org_id, "seats", [line], now)
        else:
            term.days_remaining(effective)  # refuses dates outside the term
        billing_repo.add_purchased(conn, org_id, seat_type, quantity)
        conn.execute(
            seat_changes.insert().values(
                organization_id=org_id,
                id=new_id("sc"),
                kind="purchase",
                seat_type=seat_type,
                quantity=quantity,
                effective_date=effective,
                term_start=term.start,
                invoice_id=invoice_id,
                actor=_actor(principal),
                created_at=now,
            )
        )
        if invoice_id is not None:
            invoice = billing_repo.load_invoice(conn, org_id, invoice_id).to_json()
        seats = _seats_view(conn, org)
        uow.commit()
    return {"seats": seats, "invoice": invoice}


def reduce_seats(app: App, principal: Principal, org_id: str, raw: Any) -> dict[str, Any]:
    """Remove seats now (operator only, never below the seats held) or schedule a reduction for the renewal."""
    principal.require_owner(org_id)
    body = _body(raw)
    at = body.get("at", "now")
    if at not in ("now", "renewal"):
        raise InvalidRequest('at must be "now" or "renewal"')
    now = app.clock.now()
    with app.uow() as uow:
        conn = uow.conn
        org = orgs_repo.get_organization(conn, org_id, for_update=True)
        seat_type = _seat_type(org, body.get("seat_type"))
        quantity = _quantity(body.get("quantity"))
        check_reduction(org.channel, by_operator=principal.is_operator, at_renewal=at == "renewal")
        term = current_term(org)
        purchased, assigned = billing_repo.seat_rows(conn, org_id).get(seat_type, (0, 0))
        if quantity > purchased:
            raise InvalidRequest(f"the organization has {purchased} {seat_type} seats, fewer than {quantity}")
        result: dict[str, Any] = {}
        if at == "renewal":
            reduction_id = new_id("sr")
            conn.execute(
                scheduled_reductions.insert().values(
                    organization_id=org_id,
                    id=reduction_id,
                    seat_type=seat_type,
                    quantity=quantity,
                    term_end=term.end,
                    status="scheduled",
                    actor=_actor(principal),
                    created_at=now,
                )
            )
            result["scheduled"] = {
                "id": reduction_id,
                "seat_type": seat_type,
                "quantity": quantity,
                "at": term.end.isoformat(),
            }
        else:
            if not billing_repo.remove_purchased(conn, org_id, seat_type, quantity):
                raise InvalidRequest(
                    f"{assigned} members hold {seat_type} seats, so at most {purchased - assigned} can be removed",
                    resume="Take seats back from members first, or schedule the reduction for the renewal.",
                )
            today = local_date(now, org.timezone)
            invoice_id = None
            if is_annual(org.plan):
                refund = prorate(org.seat_prices[seat_type], quantity, term, today)
                line = InvoiceLine(
                    f"{quantity} × {seat_type} seats removed from {today} to {term.end} "
                    f"({refund.days_remaining}/{refund.days_in_term} days)",
                    -refund.amount,
                    quantity=quantity,
                )
                invoice_id = billing_repo.issue(conn, org_id, "credit_note", [line], now)
                result["credit_note"] = billing_repo.load_invoice(conn, org_id, invoice_id).to_json()
            conn.execute(
                seat_changes.insert().values(
                    organization_id=org_id,
                    id=new_id("sc"),
                    kind="reduction",
                    seat_type=seat_type,
                    quantity=-quantity,
                    effective_date=today,
                    term_start=term.start,
                    invoice_id=invoice_id,
                    actor=_actor(principal),
                    created_at=now,
                )
            )
        result["seats"] = _seats_view(conn, org)
        uow.commit()
    return result


def assign_seat(app: App, principal: Principal, org_id: str, member_id: str, raw: Any) -> dict[str, Any]:
    """Give a member a seat of a type (moving them off their old one), or take it back with `null`."""
    principal.require_owner(org_id)
    body = _body(raw)
    with app.uow() as uow:
        conn = uow.conn
        org = orgs_repo.get_organization(conn, org_id, for_update=True)
        wanted = None if body.get("seat_type") is None else _seat_type(org, body.get("seat_type"))
        member = orgs_repo.get_member(conn, org_id, member_id)
        if member.seat_type == wanted:
            return {"member_id": member_id, "seat_type": wanted}
        if member.seat_type is not None:
            billing_repo.release_seat(conn, org_id, member.seat_type)
        if wanted is not None and not billing_repo.take_seat(conn, org_id, wanted):
            purchased, assigned = billing_repo.seat_rows(conn, org_id).get(wanted, (0, 0))
            check_assignable(wanted, purchased, assigned + 1)
        conn.execute(
            update(members)
            .where(members.c.organization_id == org_id, members.c.id == member_id)
            .values(seat_type=wanted)
        )
        uow.commit()
    return {"member_id": member_id, "seat_type": wanted}


def list_seats(app: App, principal: Principal, org_id: str) -> dict[str, Any]:
    principal.require_member_of(org_id)
    with app.uow() as uow:
        org = orgs_repo.get_organization(uow.conn, org_id)
        return {"plan": org.plan, "channel": org.channel, **_seats_view(uow.conn, org)}


def _seats_view(conn: Any, org: Organization) -> dict[str, Any]:
    counts = billing_repo.seat_rows(conn, org.id)
    term = current_term(org)
    pending = conn.execute(
        select(scheduled_reductions)
        .where(scheduled_reductions.c.organization_id == org.id, scheduled_reductions.c.status == "scheduled")
        .order_by(scheduled_reductions.c.created_at)
    ).all()
    return {
        "term": {"start": term.start.isoformat(), "end": term.end.isoformat()},
        "data": [
            {
                "seat_type": t,
                "purchased": counts.get(t, (0, 0))[0],
                "assigned": counts.get(t, (0, 0))[1],
                "available": counts.get(t, (0, 0))[0] - counts.get(t, (0, 0))[1],
                "price_per_month": str(org.seat_prices[t]) if t in org.seat_prices else None,
            }
            for t in SEAT_TYPES[org.plan]
        ],
        "scheduled_reductions": [
            {"id": r.id, "seat_type": r.seat_type, "quantity": r.quantity, "at": r.term_end.isoformat()}
            for r in pending
        ],
    }
