"""Invoices in the database: numbered per organization in sequence, written finalized, never edited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, update

from seatmeter.adapters.sql import bulk_insert
from seatmeter.adapters.tables import invoice_lines, invoices, organizations
from seatmeter.domain.ids import new_id
from seatmeter.domain.money import Money

__all__ = ["Line", "issue_invoice"]


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
        bulk_insert(
            conn,
            invoice_lines,
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
