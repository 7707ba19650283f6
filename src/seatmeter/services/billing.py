"""Period close and invoices: usage in arrears (sales-assisted), statements (self-serve), seat fees and extra
usage (seat-based); reading invoices as JSON, CSV and a printable page; seat-based allowance settings.

A close takes the organization's row lock, then looks for the period's close row: a second close, sequential
or concurrent, finds the first one's document and returns it. The primary key of `period_closes` backs this
up should two closes ever get past the lock together. It then takes the fence against usage writers
(adapters/close_fence.py) before it reads any event, so every event is billed on exactly one document.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from seatmeter.adapters import billing_repo, close_fence, orgs_repo
from seatmeter.adapters.sql import upsert
from seatmeter.adapters.tables import organizations
from seatmeter.adapters.tables_billing import billing_settings, credited_lines, period_closes, seat_allowances
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.invoices import (
    Invoice,
    InvoiceLine,
    credit_note,
    render_csv,
    render_html,
    seat_line,
    usage_line,
)
from seatmeter.domain.money import NANO_PER_CENT, Money
from seatmeter.domain.organization import Organization
from seatmeter.domain.periods import Period, parse_period_key
from seatmeter.domain.seats import SEAT_TYPES, check_seat_type, extra_usage

__all__ = [
    "close_period",
    "close_period_now",
    "get_invoice",
    "invoice_csv",
    "invoice_html",
    "issue_credit_note",
    "list_invoices",
    "set_allowances",
    "set_extra_usage",
]


def close_period(app: App, principal: Principal, org_id: str, period_key: str) -> dict[str, Any]:
    """The operator closes a period: its invoice or statement, issued once."""
    principal.require_operator()
    return close_period_now(app, org_id, period_key).to_json()


def close_period_now(app: App, org_id: str, period_key: str, *, skip_locked: bool = False) -> Invoice:
    """Close one period in one transaction and return its document; an already closed period returns the first.

    With `skip_locked` (the worker, on PostgreSQL) an organization being closed by someone else raises
    `Busy` instead of waiting.
    """
    now = app.clock.now()
    try:
        return _close(app, org_id, period_key, now, skip_locked)
    except IntegrityError:
        # Another close of the same period committed between our lock and our insert: it is the document.
        with app.uow() as uow:
            return _existing(uow.conn, org_id, period_key) or _raise_missing(period_key)


class Busy(Exception):
    """Another worker holds this organization's lock right now."""


def _raise_missing(period_key: str) -> Invoice:
    raise InvalidRequest(f"period {period_key} could not be closed; retry")


def _existing(conn: Connection, org_id: str, period_key: str) -> Invoice | None:
    invoice_id = conn.execute(
        select(period_closes.c.invoice_id).where(
            period_closes.c.organization_id == org_id, period_closes.c.period == period_key
        )
    ).scalar_one_or_none()
    return None if invoice_id is None else billing_repo.load_invoice(conn, org_id, invoice_id)


def _lock_org(conn: Connection, org_id: str, skip_locked: bool) -> Organization:
    if skip_locked and conn.dialect.name == "postgresql":
        got = conn.execute(
            select(organizations.c.id).where(organizations.c.id == org_id).with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if got is None:
            raise Busy(org_id)
        org = orgs_repo.get_organization(conn, org_id)
    else:
        org = orgs_repo.get_organization(conn, org_id, for_update=True)
    # Even the worker waits here rather than skip: usage transactions are short, and an organization with one
    # always in flight would otherwise never be closed. New ones wait behind the close.
    close_fence.lock_for_close(conn, org_id)
    return org


def _close(app: App, org_id: str, period_key: str, now: datetime, skip_locked: bool) -> Invoice:
    with app.uow() as uow:
        conn = uow.conn
        org = _lock_org(conn, org_id, skip_locked)
        period = parse_period_key(period_key, org.timezone, org.billing_anchor_day)
        existing = _existing(conn, org_id, period.key)
        if existing is not None:
            return existing
        if period.end > now:
            raise InvalidRequest(
                f"period {period.key} runs until {period.end.isoformat()}; it can be closed after",
                resume="Close it once the period has ended.",
            )
        latest = conn.execute(
            select(func.max(period_closes.c.period), func.max(period_closes.c.cutoff_at)).where(
                period_closes.c.organization_id == org_id
            )
        ).one()
        if latest[0] is not None and latest[0] > period.key:
            raise InvalidRequest(
                f"{latest[0]} is already closed; periods close in order",
                resume="Earlier usage recorded late goes on the next open period's document.",
            )
        if latest[0] is not None and parse_period_key(latest[0], org.timezone).next().key != period.key:
            raise InvalidRequest(
                f"the last closed period is {latest[0]}; close "
                f"{parse_period_key(latest[0], org.timezone).next().key} first"
            )
        # No grace: a writer still in flight has made the fence wait, and one that commits after this close
        # stamps its events at this cutoff or later (close_fence). Cutoffs never go down, even if clocks do.
        cutoff = now if latest[1] is None or latest[1] <= now else latest[1]
        lines = _lines(conn, org, period, cutoff, latest[1])
        kind = "usage" if org.channel == "sales_assisted" or org.plan == "seat_based" else "statement"
        invoice_id = billing_repo.issue(conn, org_id, kind, lines, now, period=period.key)
        conn.execute(
            period_closes.insert().values(
                organization_id=org_id, period=period.key, invoice_id=invoice_id, cutoff_at=cutoff, closed_at=now
            )
        )
        invoice = billing_repo.load_invoice(conn, org_id, invoice_id)
        uow.commit()
    return invoice


def _lines(
    conn: Connection, org: Organization, period: Period, cutoff: datetime, late_since: datetime | None
) -> list[InvoiceLine]:
    labels = billing_repo.member_labels(conn, org.id)
    totals = billing_repo.usage_totals(conn, org.id, period.key, cutoff, late_since)

    def label(member_id: str) -> str:
        return labels.get(member_id, ("", member_id))[1]

    if org.plan != "seat_based":
        return [
            usage_line(
                label(t.member_id),
                t.member_id,
                t.model,
                t.tokens,
                t.cost_nano,
                late_period=None if t.period == period.key else t.period,
            )
            for t in totals
        ]
    return _seat_based_lines(conn, org, period, totals, label, late_since)


def _seat_based_lines(
    conn: Connection,
    org: Organization,
    period: Period,
    totals: list[billing_repo.UsageTotal],
    label: Any,
    late_since: datetime | None,
) -> list[InvoiceLine]:
    """Monthly seat fees, then each member's usage beyond their seat's allowance, at API rates."""
    lines = []
    for seat_type, (purchased, _) in sorted(billing_repo.seat_rows(conn, org.id).items()):
        fee = org.seat_prices.get(seat_type, Money.zero())
        if purchased:
            lines.append(
                seat_line(
                    f"{purchased} × {seat_type} seats at ${fee}/month, {period.key}", purchased, fee.nano * purchased
                )
            )
    allowances = billing_repo.included_usage(conn, org.id)
    seats = billing_repo.member_seats(conn, org.id)
    spend: dict[tuple[str, str], int] = defaultdict(int)
    for t in totals:
        spend[(t.period, t.member_id)] += t.cost_nano
    # Late usage only adds what goes past the allowance on top of what was already billed for that period.
    late_periods = sorted({p for p, _ in spend if p != period.key})
    before = (
        billing_repo.spend_by_member(conn, org.id, late_periods, late_since)
        if late_periods and late_since is not None
        else {}
    )
    for (period_key, member_id), cost_nano in sorted(spend.items()):
        allowance = allowances.get(seats.get(member_id) or "", Money.zero())
        already = before.get((period_key, member_id), 0) if period_key != period.key else 0
        extra = extra_usage(Money(already + cost_nano), allowance) - extra_usage(Money(already), allowance)
        if extra:
            late = f"Late usage for {period_key}: " if period_key != period.key else ""
            lines.append(
                InvoiceLine(
                    f"{late}{label(member_id)} · extra usage beyond the ${allowance} allowance",
                    Money.from_ratio(extra.nano, unit_nano=NANO_PER_CENT),
                    member_id=member_id,
                    late_period=period_key if late else None,
                )
            )
    return lines


def list_invoices(app: App, principal: Principal, org_id: str) -> dict[str, Any]:
    principal.require_owner(org_id)
    with app.uow() as uow:
        orgs_repo.get_organization(uow.conn, org_id)
        return {
            "data": [
                billing_repo.load_invoice(uow.conn, org_id, i).to_json()
                for i in billing_repo.list_invoice_ids(uow.conn, org_id)
            ]
        }


def get_invoice(app: App, principal: Principal, org_id: str, invoice_id: str) -> Invoice:
    principal.require_owner(org_id)
    with app.uow() as uow:
        return billing_repo.load_invoice(uow.conn, org_id, invoice_id)


def invoice_csv(app: App, principal: Principal, org_id: str, invoice_id: str) -> str:
    principal.require_owner(org_id)
    with app.uow() as uow:
        invoice = billing_repo.load_invoice(uow.conn, org_id, invoice_id)
        labels = billing_repo.member_labels(uow.conn, org_id)
    return render_csv(invoice, {m: email for m, (_, email) in labels.items()})


def invoice_html(app: App, principal: Principal, org_id: str, invoice_id: str) -> str:
    principal.require_owner(org_id)
    with app.uow() as uow:
        org = orgs_repo.get_organization(uow.conn, org_id)
        invoice = billing_repo.load_invoice(uow.conn, org_id, invoice_id)
        labels = billing_repo.member_labels(uow.conn, org_id)
    return render_html(invoice, org.name, labels)


def issue_credit_note(app: App, principal: Principal, org_id: str, invoice_id: str, raw: Any) -> dict[str, Any]:
    """The operator corrects a finalized invoice with a credit note reversing all its lines, or some of them.

    `positions` (1-based) picks lines; each line of an invoice can be credited once.
    """
    principal.require_operator()
    if not isinstance(raw, dict):
        raise InvalidRequest("the request body must be a JSON object")
    positions = raw.get("positions")
    if positions is not None and (
        not isinstance(positions, list) or not positions or any(type(p) is not int for p in positions)
    ):
        raise InvalidRequest("positions must be a non-empty list of line numbers (1 is the first line)")
    now = app.clock.now()
    with app.uow() as uow:
        conn = uow.conn
        orgs_repo.get_organization(conn, org_id, for_update=True)
        original = billing_repo.load_invoice(conn, org_id, invoice_id)
        chosen = sorted(set(positions)) if positions else list(range(1, len(original.lines) + 1))
        if any(not 1 <= p <= len(original.lines) for p in chosen):
            raise InvalidRequest(f"{original.display_number} has lines 1 to {len(original.lines)}")
        done = set(
            conn.execute(
                select(credited_lines.c.position).where(
                    credited_lines.c.organization_id == org_id, credited_lines.c.invoice_id == invoice_id
                )
            ).scalars()
        )
        if done & set(chosen):
            raise InvalidRequest(
                f"lines {', '.join(map(str, sorted(done & set(chosen))))} of {original.display_number} "
                "were already credited",
                resume="Credit only the lines not yet corrected.",
            )
        # Builds and checks the document (a credit note cannot be credited); the number comes from the core.
        note = credit_note(
            original, id="pending", number=1, issued_at=now, lines=[original.lines[p - 1] for p in chosen]
        )
        note_id = billing_repo.issue(
            conn, org_id, "credit_note", note.lines, now, period=original.period, corrects=original.id
        )
        conn.execute(
            credited_lines.insert(),
            [
                {"organization_id": org_id, "invoice_id": invoice_id, "position": p, "credit_note_id": note_id}
                for p in chosen
            ],
        )
        result = billing_repo.load_invoice(conn, org_id, note_id).to_json()
        uow.commit()
    return result


def set_allowances(app: App, principal: Principal, org_id: str, raw: Any) -> dict[str, Any]:
    """The operator sets the usage each seat type includes per member per period (seat-based plans)."""
    principal.require_operator()
    if not isinstance(raw, dict) or not isinstance(raw.get("included_usage"), dict):
        raise InvalidRequest('send {"included_usage": {"standard": "20.00", "premium": "100.00"}}')
    with app.uow() as uow:
        org = orgs_repo.get_organization(uow.conn, org_id, for_update=True)
        if org.plan != "seat_based":
            raise InvalidRequest("included usage allowances exist on the seat_based plan only")
        for seat_type, amount_raw in raw["included_usage"].items():
            check_seat_type(org.plan, seat_type)
            amount = Money.parse(amount_raw, field=f"included_usage.{seat_type}")
            if amount.nano < 0:
                raise InvalidRequest(f"included_usage.{seat_type} cannot be negative")
            uow.conn.execute(
                upsert(
                    uow.conn, seat_allowances, ["organization_id", "seat_type"], {"included_usage_nano": amount.nano}
                ).values(organization_id=org_id, seat_type=seat_type, included_usage_nano=amount.nano)
            )
        result = {t: str(a) for t, a in billing_repo.included_usage(uow.conn, org_id).items()}
        uow.commit()
    return {"included_usage": {t: result.get(t, "0.00") for t in SEAT_TYPES[org.plan]}}


def set_extra_usage(app: App, principal: Principal, org_id: str, raw: Any) -> dict[str, Any]:
    """An owner enables (or disables) extra usage beyond the seat allowances, billed at API rates."""
    principal.require_owner(org_id)
    if not isinstance(raw, dict) or type(raw.get("enabled")) is not bool:
        raise InvalidRequest('send {"enabled": true} or {"enabled": false}')
    now = app.clock.now()
    actor = "operator" if principal.is_operator else str(principal.member_id)
    with app.uow() as uow:
        org = orgs_repo.get_organization(uow.conn, org_id, for_update=True)
        if org.plan != "seat_based":
            raise InvalidRequest("extra usage exists on the seat_based plan only; usage-based plans bill all usage")
        uow.conn.execute(
            upsert(
                uow.conn,
                billing_settings,
                ["organization_id"],
                {"extra_usage_enabled": raw["enabled"], "updated_by": actor, "updated_at": now},
            ).values(organization_id=org_id, extra_usage_enabled=raw["enabled"], updated_by=actor, updated_at=now)
        )
        uow.commit()
    return {"extra_usage_enabled": raw["enabled"]}


def extra_usage_enabled(conn: Connection, org_id: str) -> bool:
    value = conn.execute(
        select(billing_settings.c.extra_usage_enabled).where(billing_settings.c.organization_id == org_id)
    ).scalar_one_or_none()
    return bool(value)
