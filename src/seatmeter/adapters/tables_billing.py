"""The billing cycle's tables: seats, scheduled reductions, period closes, renewals, seat-based allowances.

Every table is keyed by `organization_id` first. Uniqueness does the work that locks would otherwise do:
one `period_closes` row per organization and period means closing twice yields one document, and one
`renewals` row per organization and term means renewing twice charges once.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from seatmeter.adapters.tables import TS, metadata

__all__ = [
    "billing_settings",
    "credited_lines",
    "invoice_line_tokens",
    "period_closes",
    "renewals",
    "scheduled_reductions",
    "seat_allowances",
    "seat_changes",
    "seat_counts",
]

# Seats purchased and assigned per seat type. `assigned <= purchased` is enforced by a guarded UPDATE and
# backed by the CHECK constraint, so two owners assigning the last seat at once cannot both succeed.
seat_counts = Table(
    "seat_counts",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("seat_type", String(32), nullable=False),
    Column("purchased", Integer, nullable=False, server_default="0"),
    Column("assigned", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("organization_id", "seat_type"),
    CheckConstraint("assigned >= 0", name="assigned_not_negative"),
    CheckConstraint("assigned <= purchased", name="assigned_within_purchased"),
)

# Every change of purchased seats, as it happened: purchases, operator reductions, renewals, migrations.
seat_changes = Table(
    "seat_changes",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("seat_type", String(32), nullable=False),
    Column("quantity", Integer, nullable=False),  # signed: + added, - removed
    Column("effective_date", Date, nullable=False),
    Column("term_start", Date, nullable=False),
    Column("invoice_id", String(40)),
    Column("actor", String(40), nullable=False),  # member id, or 'operator'
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "id"),
    CheckConstraint("kind IN ('purchase', 'reduction', 'renewal', 'migration')", name="kind"),
    CheckConstraint("quantity <> 0", name="quantity_not_zero"),
)

scheduled_reductions = Table(
    "scheduled_reductions",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("seat_type", String(32), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("term_end", Date, nullable=False),  # the renewal it applies at
    Column("status", String(16), nullable=False),
    Column("actor", String(40), nullable=False),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "id"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("status IN ('scheduled', 'applied')", name="status"),
)

# One row per closed period: the primary key is what makes a second close return the first document.
# `cutoff_at`: usage recorded before it is on this document; usage of this period recorded later is late usage.
period_closes = Table(
    "period_closes",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("period", String(7), nullable=False),
    Column("invoice_id", String(40), nullable=False),
    Column("cutoff_at", TS, nullable=False),
    Column("closed_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "period"),
)

renewals = Table(
    "renewals",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("term_start", Date, nullable=False),  # the new term
    Column("from_plan", String(32), nullable=False),
    Column("plan", String(32), nullable=False),
    Column("invoice_id", String(40)),
    Column("credit_note_id", String(40)),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "term_start"),
)

# Seat-based plans: the usage a seat type includes per member per period. The seat's monthly fee is the
# organization's seat price (organizations.seat_prices).
seat_allowances = Table(
    "seat_allowances",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("seat_type", String(32), nullable=False),
    Column("included_usage_nano", BigInteger, nullable=False),
    PrimaryKeyConstraint("organization_id", "seat_type"),
    CheckConstraint("included_usage_nano >= 0", name="included_not_negative"),
)

billing_settings = Table(
    "billing_settings",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("extra_usage_enabled", Boolean, nullable=False, server_default="0"),
    Column("updated_by", String(40), nullable=False),
    Column("updated_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id"),
)

# Token counts by kind of each usage line, beside the lead's invoice_lines row of the same position.
invoice_line_tokens = Table(
    "invoice_line_tokens",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("invoice_id", String(40), nullable=False),
    Column("position", Integer, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_write_5m_tokens", BigInteger, nullable=False),
    Column("cache_write_1h_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("late_period", String(7)),
    PrimaryKeyConstraint("organization_id", "invoice_id", "position"),
)

# Which lines of an invoice a credit note reversed: the primary key makes crediting a line twice impossible.
credited_lines = Table(
    "credited_lines",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("invoice_id", String(40), nullable=False),
    Column("position", Integer, nullable=False),
    Column("credit_note_id", String(40), nullable=False),
    PrimaryKeyConstraint("organization_id", "invoice_id", "position"),
)
