"""Reading and writing the billing cycle's rows: seat counts, invoices with their token detail, usage totals."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from seatmeter.adapters import invoices_repo
from seatmeter.adapters.sql import bulk_insert, upsert
from seatmeter.adapters.tables import invoice_lines, invoices, members, usage_events
from seatmeter.adapters.tables_billing import invoice_line_tokens, seat_allowances, seat_counts
from seatmeter.domain.errors import NotFound
from seatmeter.domain.invoices import Invoice, InvoiceLine
from seatmeter.domain.money import Money
from seatmeter.domain.pricing import TOKEN_KINDS

__all__ = [
    "UsageTotal",
    "add_purchased",
    "included_usage",
    "issue",
    "list_invoice_ids",
    "load_invoice",
    "member_labels",
    "member_seats",
    "release_seat",
    "seat_rows",
    "take_seat",
    "usage_totals",
]

_TOKEN_COLUMNS = {kind: f"{kind}_tokens" for kind in TOKEN_KINDS}


def seat_rows(conn: Connection, org_id: str) -> dict[str, tuple[int, int]]:
    """Seat type -> (purchased, assigned)."""
    rows = conn.execute(select(seat_counts).where(seat_counts.c.organization_id == org_id)).all()
    return {r.seat_type: (r.purchased, r.assigned) for r in rows}


def add_purchased(conn: Connection, org_id: str, seat_type: str, quantity: int) -> None:
    conn.execute(
        upsert(
            conn,
            seat_counts,
            ["organization_id", "seat_type"],
            {"purchased": lambda excluded: seat_counts.c.purchased + excluded.purchased},
        ).values(organization_id=org_id, seat_type=seat_type, purchased=quantity, assigned=0)
    )


def remove_purchased(conn: Connection, org_id: str, seat_type: str, quantity: int) -> bool:
    """Remove seats unless that would leave fewer seats than members holding one. One guarded statement."""
    result = conn.execute(
        update(seat_counts)
        .where(
            seat_counts.c.organization_id == org_id,
            seat_counts.c.seat_type == seat_type,
            seat_counts.c.purchased - quantity >= seat_counts.c.assigned,
        )
        .values(purchased=seat_counts.c.purchased - quantity)
    )
    return result.rowcount == 1


def take_seat(conn: Connection, org_id: str, seat_type: str) -> bool:
    """Assign one seat if one is free: the guard in the statement makes the last seat go to one member only."""
    result = conn.execute(
        update(seat_counts)
        .where(
            seat_counts.c.organization_id == org_id,
            seat_counts.c.seat_type == seat_type,
            seat_counts.c.assigned + 1 <= seat_counts.c.purchased,
        )
        .values(assigned=seat_counts.c.assigned + 1)
    )
    return result.rowcount == 1


def release_seat(conn: Connection, org_id: str, seat_type: str) -> None:
    conn.execute(
        update(seat_counts)
        .where(
            seat_counts.c.organization_id == org_id,
            seat_counts.c.seat_type == seat_type,
            seat_counts.c.assigned > 0,
        )
        .values(assigned=seat_counts.c.assigned - 1)
    )


def issue(
    conn: Connection,
    org_id: str,
    kind: str,
    lines: Sequence[InvoiceLine],
    now: datetime,
    *,
    period: str | None = None,
    corrects: str | None = None,
) -> str:
    """Issue a finalized document through the core's numbering, and keep each usage line's tokens by kind."""
    invoice_id = invoices_repo.issue_invoice(
        conn,
        org_id,
        kind,
        [invoices_repo.Line(ln.description, ln.amount, ln.member_id, ln.model, ln.quantity) for ln in lines],
        now,
        period=period,
        corrects=corrects,
    )
    detail = [
        {
            "organization_id": org_id,
            "invoice_id": invoice_id,
            "position": position,
            "late_period": line.late_period,
            **{column: int(line.tokens.get(kind, 0)) for kind, column in _TOKEN_COLUMNS.items()},
        }
        for position, line in enumerate(lines, start=1)
        if line.tokens
    ]
    bulk_insert(conn, invoice_line_tokens, detail)
    return invoice_id


def load_invoice(conn: Connection, org_id: str, invoice_id: str) -> Invoice:
    row = conn.execute(
        select(invoices).where(invoices.c.organization_id == org_id, invoices.c.id == invoice_id)
    ).one_or_none()
    if row is None:
        raise NotFound(
            f"invoice {invoice_id!r} does not exist in this organization",
            resume="List the organization's invoices with GET /v1/organizations/{org}/invoices.",
        )
    # Two reads by primary-key prefix, merged here, rather than a join: right after a close has written tens of
    # thousands of lines, PostgreSQL has no statistics for them yet and may plan the join as a nested loop over
    # both tables (quadratic: 85 s for 30,000 lines, against well under a second this way).
    lines = conn.execute(
        select(invoice_lines)
        .where(invoice_lines.c.organization_id == org_id, invoice_lines.c.invoice_id == invoice_id)
        .order_by(invoice_lines.c.position)
    ).all()
    detail = {
        r.position: r
        for r in conn.execute(
            select(invoice_line_tokens).where(
                invoice_line_tokens.c.organization_id == org_id, invoice_line_tokens.c.invoice_id == invoice_id
            )
        )
    }

    def tokens(position: int) -> dict[str, int]:
        found = detail.get(position)
        return {kind: getattr(found, column) for kind, column in _TOKEN_COLUMNS.items()} if found else {}

    return Invoice(
        row.id,
        org_id,
        row.number,
        row.kind,
        row.status,
        row.issued_at,
        tuple(
            InvoiceLine(
                ln.description,
                Money(ln.amount_nano),
                ln.member_id,
                ln.model,
                ln.quantity,
                tokens(ln.position),
                detail[ln.position].late_period if ln.position in detail else None,
            )
            for ln in lines
        ),
        row.period,
        row.corrects_invoice_id,
    )


def list_invoice_ids(conn: Connection, org_id: str) -> list[str]:
    return list(
        conn.execute(
            select(invoices.c.id).where(invoices.c.organization_id == org_id).order_by(invoices.c.number)
        ).scalars()
    )


def member_labels(conn: Connection, org_id: str) -> dict[str, tuple[str, str]]:
    """Member id -> (name, email)."""
    rows = conn.execute(
        select(members.c.id, members.c.name, members.c.email).where(members.c.organization_id == org_id)
    ).all()
    return {r.id: (r.name, r.email) for r in rows}


@dataclass(frozen=True, slots=True)
class UsageTotal:
    member_id: str
    model: str
    period: str
    tokens: dict[str, int]
    cost_nano: int


def usage_totals(
    conn: Connection, org_id: str, period: str, cutoff: datetime, late_since: datetime | None
) -> list[UsageTotal]:
    """Usage to bill at a period's close, summed per member, model and period.

    On time: events of `period` recorded before `cutoff`. Late: events of earlier periods recorded since the
    previous close (`late_since`) and before `cutoff`; with no previous close, every unbilled earlier event.
    """
    with hashed_aggregates(conn):
        rows = sorted(
            conn.execute(totals_statement(org_id, period, cutoff, late_since)),
            key=lambda r: (r.period, r.member_id, r.model),
        )
    return [
        UsageTotal(
            r.member_id,
            r.model,
            r.period,
            {kind: int(getattr(r, column)) for kind, column in _TOKEN_COLUMNS.items()},
            int(r.cost_nano),
        )
        for r in rows
    ]


def totals_statement(org_id: str, period: str, cutoff: datetime, late_since: datetime | None) -> Any:
    """`usage_totals`' aggregate, with no ORDER BY: its groups are sorted in Python (see hashed_aggregates)."""
    ue = usage_events.c
    late = and_(ue.period < period, ue.recorded_at >= late_since) if late_since is not None else ue.period < period
    return (
        select(
            ue.member_id,
            ue.model,
            ue.period,
            *(func.sum(ue[column]).label(column) for column in _TOKEN_COLUMNS.values()),
            func.sum(ue.cost_nano).label("cost_nano"),
        )
        .where(ue.organization_id == org_id, ue.recorded_at < cutoff, or_(ue.period == period, late))
        .group_by(ue.member_id, ue.model, ue.period)
    )


@contextmanager
def hashed_aggregates(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, a close's aggregate hashed in memory, whatever the planner believes of the period's size.

    A close sums a whole period of one organization: millions of rows into one group per member, model and
    period. The planner estimates the period from statistics that are always behind for it (the newest period is
    the one written since the last analyze), takes it for a few rows and sorts them instead: 2,000,000 events
    sorted on disk took 5.4-6.1 s, hashed 1.4 s (analyzed) to 2.2 s (not). So sorting is priced out for this
    statement (its groups are sorted in Python), and the hash table gets 64 MB: in the default 4 MB it spills
    30,000 groups to disk (1.7-1.8 s against 1.2-1.5 s). Both settings end with the statement.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    conn.exec_driver_sql("SET LOCAL enable_sort = off")
    yield
    conn.exec_driver_sql("SET LOCAL enable_sort TO DEFAULT")
    conn.exec_driver_sql("SET LOCAL work_mem TO DEFAULT")


def spend_by_member(
    conn: Connection, org_id: str, periods: Sequence[str], recorded_before: datetime | None = None
) -> dict[tuple[str, str], int]:
    """(period, member id) -> cost in nano-USD, for the given periods."""
    ue = usage_events.c
    stmt: Any = (
        select(ue.period, ue.member_id, func.sum(ue.cost_nano))
        .where(ue.organization_id == org_id, ue.period.in_(list(periods)))
        .group_by(ue.period, ue.member_id)
    )
    if recorded_before is not None:
        stmt = stmt.where(ue.recorded_at < recorded_before)
    return {(p, m): int(total) for p, m, total in conn.execute(stmt)}


def included_usage(conn: Connection, org_id: str) -> dict[str, Money]:
    """Seat-based plans: seat type -> usage included per member per period."""
    rows = conn.execute(select(seat_allowances).where(seat_allowances.c.organization_id == org_id)).all()
    return {r.seat_type: Money(r.included_usage_nano) for r in rows}


def member_seats(conn: Connection, org_id: str) -> dict[str, str | None]:
    """Member id -> the seat type they hold, or None."""
    rows = conn.execute(select(members.c.id, members.c.seat_type).where(members.c.organization_id == org_id))
    return {r.id: r.seat_type for r in rows}
