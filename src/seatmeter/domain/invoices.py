"""Invoices, statements and credit notes: immutable documents whose total is exactly the sum of their lines.

Each line is rounded once, half-up, to cents when it is built (`usage_line`, `seat_line`); the total is a
plain sum of the rounded lines and is never rounded again. A finalized document never changes: a correction
is a credit note, a new document whose lines negate what they correct.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import NANO_PER_CENT, Money
from seatmeter.domain.pricing import TOKEN_KINDS

__all__ = [
    "KINDS",
    "Invoice",
    "InvoiceLine",
    "credit_note",
    "format_number",
    "render_csv",
    "render_html",
    "seat_line",
    "usage_line",
]

KINDS = ("seats", "credits", "usage", "statement", "credit_note")
CSV_COLUMNS = (
    "invoice_number",
    "kind",
    "period",
    "position",
    "description",
    "member_id",
    "member_email",
    "model",
    "late_period",
    *(f"{k}_tokens" for k in TOKEN_KINDS),
    "quantity",
    "amount",
)


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    description: str
    amount: Money
    member_id: str | None = None
    model: str | None = None
    quantity: int | None = None
    tokens: Mapping[str, int] = field(default_factory=dict)  # by token kind, for usage lines
    late_period: str | None = None  # usage of an earlier, already closed period

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "description": self.description,
            "member_id": self.member_id,
            "model": self.model,
            "quantity": self.quantity,
            "amount": str(self.amount),
        }
        if self.tokens:
            out["tokens"] = {kind: self.tokens.get(kind, 0) for kind in TOKEN_KINDS}
        if self.late_period:
            out["late_period"] = self.late_period
        return out


def usage_line(
    member_label: str,
    member_id: str,
    model: str,
    tokens: Mapping[str, int],
    cost_nano: int,
    late_period: str | None = None,
) -> InvoiceLine:
    """One member's usage of one model in a period: exact cost summed over events, rounded once to cents."""
    counts = {kind: int(tokens.get(kind, 0)) for kind in TOKEN_KINDS}
    detail = ", ".join(f"{counts[k]:,} {k.replace('_', ' ')}" for k in TOKEN_KINDS if counts[k])
    label = f"{member_label} · {model} · {detail or 'no'} tokens"
    if late_period:
        label = f"Late usage for {late_period}: {label}"
    return InvoiceLine(
        description=label,
        amount=Money.from_ratio(cost_nano, unit_nano=NANO_PER_CENT),
        member_id=member_id,
        model=model,
        quantity=sum(counts.values()),
        tokens=counts,
        late_period=late_period,
    )


def seat_line(description: str, quantity: int, exact_nano: int) -> InvoiceLine:
    """A seat charge whose exact amount is rounded once to cents."""
    return InvoiceLine(description, Money.from_ratio(exact_nano, unit_nano=NANO_PER_CENT), quantity=quantity)


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    organization_id: str
    number: int
    kind: str
    status: str
    issued_at: datetime
    lines: tuple[InvoiceLine, ...]
    period: str | None = None
    corrects_invoice_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidRequest(f"invoice kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.number <= 0:
            raise InvalidRequest("invoice numbers start at 1")

    @property
    def total(self) -> Money:
        return sum((line.amount for line in self.lines), Money.zero())

    @property
    def display_number(self) -> str:
        return format_number(self.number)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "organization_id": self.organization_id,
            "number": self.number,
            "display_number": self.display_number,
            "kind": self.kind,
            "period": self.period,
            "status": self.status,
            "issued_at": self.issued_at.isoformat(),
            "total": str(self.total),
            "lines": [line.to_json() for line in self.lines],
        }
        if self.corrects_invoice_id:
            out["corrects_invoice_id"] = self.corrects_invoice_id
        return out


def format_number(number: int) -> str:
    return f"INV-{number:06d}"


def credit_note(
    original: Invoice, *, id: str, number: int, issued_at: datetime, lines: Iterable[InvoiceLine] | None = None
) -> Invoice:
    """A new document that reverses `lines` of `original` (all of them by default). The original is untouched."""
    if original.kind == "credit_note":
        raise InvalidRequest("a credit note cannot itself be corrected by a credit note; issue a new invoice")
    reversed_lines = tuple(
        InvoiceLine(
            description=f"Correction of {original.display_number}: {line.description}",
            amount=-line.amount,
            member_id=line.member_id,
            model=line.model,
            quantity=line.quantity,
            tokens=line.tokens,
            late_period=line.late_period,
        )
        for line in (original.lines if lines is None else lines)
    )
    if not reversed_lines:
        raise InvalidRequest("a credit note needs at least one line to reverse")
    return Invoice(
        id,
        original.organization_id,
        number,
        "credit_note",
        "finalized",
        issued_at,
        reversed_lines,
        original.period,
        original.id,
    )


def render_csv(invoice: Invoice, emails: Mapping[str, str] | None = None) -> str:
    """One row per line, tokens by kind in columns, and a last row with the total."""
    emails = emails or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for position, line in enumerate(invoice.lines, start=1):
        writer.writerow(
            [
                invoice.display_number,
                invoice.kind,
                invoice.period or "",
                position,
                line.description,
                line.member_id or "",
                emails.get(line.member_id or "", ""),
                line.model or "",
                line.late_period or "",
                *(line.tokens.get(kind, "") if line.tokens else "" for kind in TOKEN_KINDS),
                "" if line.quantity is None else line.quantity,
                str(line.amount),
            ]
        )
    writer.writerow(
        [
            invoice.display_number,
            invoice.kind,
            invoice.period or "",
            "",
            "Total",
            "",
            "",
            "",
            "",
            *("" for _ in TOKEN_KINDS),
            "",
            str(invoice.total),
        ]
    )
    return buffer.getvalue()


_TITLES = {
    "seats": "Invoice: seats",
    "credits": "Receipt: credits",
    "usage": "Invoice: usage in arrears",
    "statement": "Statement of usage paid by credits",
    "credit_note": "Credit note",
}


def render_html(invoice: Invoice, organization_name: str, members: Mapping[str, tuple[str, str]] | None = None) -> str:
    """A self-contained, print-ready page (A4, no external assets) with per-member detail and subtotals.

    `members` maps member id to (name, email).
    """
    members = members or {}
    rows = []
    for line in invoice.lines:
        who = members.get(line.member_id or "", ("", ""))
        tokens = "".join(
            f"<td class=n>{line.tokens.get(k, 0):,}</td>" if line.tokens else "<td></td>" for k in TOKEN_KINDS
        )
        rows.append(
            f"<tr><td>{escape(line.description)}</td><td>{escape(who[0] or line.member_id or '')}</td>"
            f"<td>{escape(line.model or '')}</td>{tokens}<td class=n>${escape(str(line.amount))}</td></tr>"
        )
    subtotals: dict[str, Money] = {}
    for line in invoice.lines:
        if line.member_id:
            subtotals[line.member_id] = subtotals.get(line.member_id, Money.zero()) + line.amount
    member_rows = "".join(
        f"<tr><td>{escape(members.get(m, (m, ''))[0])}</td><td>{escape(members.get(m, ('', ''))[1])}</td>"
        f"<td class=n>${escape(str(amount))}</td></tr>"
        for m, amount in sorted(subtotals.items(), key=lambda item: members.get(item[0], (item[0], ""))[0])
    )
    member_table = (
        f"<h2>Per member</h2><table><thead><tr><th>Member</th><th>Email</th><th class=n>Amount</th></tr></thead>"
        f"<tbody>{member_rows}</tbody></table>"
        if member_rows
        else ""
    )
    kind_heads = "".join(f"<th class=n>{escape(k.replace('_', ' '))}</th>" for k in TOKEN_KINDS)
    title = _TITLES[invoice.kind]
    period = f"<p>Period: {escape(invoice.period)}</p>" if invoice.period else ""
    corrects = f"<p>Corrects invoice {escape(invoice.corrects_invoice_id)}</p>" if invoice.corrects_invoice_id else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(invoice.display_number)} · {escape(organization_name)}</title>
<style>
@page {{ size: A4; margin: 15mm; }}
body {{ font: 11pt/1.4 system-ui, sans-serif; color: #111; }}
table {{ border-collapse: collapse; width: 100%; margin: 1em 0; }}
th, td {{ border-bottom: 1px solid #ccc; padding: 4px 6px; text-align: left; vertical-align: top; }}
.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
tfoot td {{ font-weight: bold; border-top: 2px solid #111; }}
</style></head><body>
<h1>{escape(title)} {escape(invoice.display_number)}</h1>
<p>{escape(organization_name)} · issued {escape(invoice.issued_at.date().isoformat())} · {escape(invoice.status)}</p>
{period}{corrects}
<table><thead><tr><th>Description</th><th>Member</th><th>Model</th>{kind_heads}<th class=n>Amount</th></tr></thead>
<tbody>{"".join(rows)}</tbody>
<tfoot><tr><td colspan="{3 + len(TOKEN_KINDS)}">Total (USD)</td>
<td class=n>${escape(str(invoice.total))}</td></tr></tfoot></table>
{member_table}
</body></html>
"""
