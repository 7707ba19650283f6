"""Invoices in the database: numbered per organization in sequence, written finalized, never edited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from seatmeter.adapters.tables import invoice_lines, invoices, organizations
from seatmeter.domain.errors import NotFound
from seatmeter.domain.ids import new_id
from seatmeter.domain.money import Money

__all__ = ["Line", "get_invoice", "issue_invoice", "list_invoices"]


@dataclass(frozen=True, slots=True)
class Line:
    description: str
    amount: Money
    member_id: str | None = None
    model: str | None = None
    quantity: int | None = None


def issue_invoice(
    conn: Connection,
    org_id: str,
    kind: str,
    lines: Sequence[Line],
    now: datetime,
    *,
    period: str | None = None,
    corrects: str | None = None,
) -> str:
    """Write a finalized invoice whose total is exactly the sum of its lines. Returns its id.

    The number comes from a counter on the organization row, taken under its row lock, so numbers are
    sequential with no gaps per organization.
    """
    number = (
        conn.execute(
            update(organizations)
            .where(organizations.c.id == org_id)
            .values(next_invoice_number=organizations.c.next_invoice_number + 1)
            .returning(organizations.c.next_invoice_number)
        ).scalar_one()
        - 1
    )
    invoice_id = new_id("inv")
    total = sum((line.amount for line in lines), Money.zero())
    conn.execute(
        invoices.insert().values(
            organization_id=org_id,
            id=invoice_id,
            number=number,
            kind=kind,
            period=period,
            status="finalized",
            issued_at=now,
            total_nano=total.nano,
            corrects_invoice_id=corrects,
        )
    )
    if lines:
        conn.execute(
            invoice_lines.insert(),
            [
                {
                    "organization_id": org_id,
                    "invoice_id": invoice_id,
                    "position": i,
                    "description": line.description,
                    "member_id": line.member_id,
                    "model": line.model,
                    "quantity": line.quantity,
                    "amount_nano": line.amount.nano,
                }
                for i, line in enumerate(lines, start=1)
            ],
        )
    return invoice_id


def _as_json(row: Any, lines: list[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "kind": row.kind,
        "period": row.period,
        "status": row.status,
        "issued_at": row.issued_at.isoformat(),
        "total": str(Money(row.total_nano)),
        "corrects_invoice_id": row.corrects_invoice_id,
        "lines": [
            {
                "description": ln.description,
                "member_id": ln.member_id,
                "model": ln.model,
                "quantity": ln.quantity,
                "amount": str(Money(ln.amount_nano)),
            }
            for ln in lines
        ],
    }


def get_invoice(conn: Connection, org_id: str, invoice_id: str) -> dict[str, Any]:
    row = conn.execute(
        select(invoices).where(invoices.c.organization_id == org_id, invoices.c.id == invoice_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"invoice {invoice_id!r} does not exist in this organization")
    lines = conn.execute(
        select(invoice_lines)
        .where(invoice_lines.c.organization_id == org_id, invoice_lines.c.invoice_id == invoice_id)
        .order_by(invoice_lines.c.position)
    ).all()
    return _as_json(row, list(lines))


def list_invoices(conn: Connection, org_id: str) -> list[dict[str, Any]]:
    ids = (
        conn.execute(select(invoices.c.id).where(invoices.c.organization_id == org_id).order_by(invoices.c.number))
        .scalars()
        .all()
    )
    return [get_invoice(conn, org_id, i) for i in ids]
