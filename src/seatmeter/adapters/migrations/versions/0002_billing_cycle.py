"""billing cycle: seats, scheduled reductions, period closes, renewals, seat-based allowances

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_settings",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("extra_usage_enabled", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_billing_settings")),
    )
    op.create_table(
        "invoice_line_tokens",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_5m_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_1h_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("late_period", sa.String(length=7), nullable=True),
        sa.PrimaryKeyConstraint("organization_id", "invoice_id", "position", name=op.f("pk_invoice_line_tokens")),
    )
    op.create_table(
        "period_closes",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("cutoff_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "period", name=op.f("pk_period_closes")),
    )
    op.create_table(
        "renewals",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("from_plan", sa.String(length=32), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("credit_note_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "term_start", name=op.f("pk_renewals")),
    )
    op.create_table(
        "scheduled_reductions",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seat_type", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("term_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('scheduled', 'applied')", name=op.f("ck_scheduled_reductions_status")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_scheduled_reductions_quantity_positive")),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_scheduled_reductions")),
    )
    op.create_table(
        "seat_allowances",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("seat_type", sa.String(length=32), nullable=False),
        sa.Column("included_usage_nano", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("included_usage_nano >= 0", name=op.f("ck_seat_allowances_included_not_negative")),
        sa.PrimaryKeyConstraint("organization_id", "seat_type", name=op.f("pk_seat_allowances")),
    )
    op.create_table(
        "seat_changes",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seat_type", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('purchase', 'reduction', 'renewal', 'migration')", name=op.f("ck_seat_changes_kind")
        ),
        sa.CheckConstraint("quantity <> 0", name=op.f("ck_seat_changes_quantity_not_zero")),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_seat_changes")),
    )
    op.create_table(
        "seat_counts",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("seat_type", sa.String(length=32), nullable=False),
        sa.Column("purchased", sa.Integer(), server_default="0", nullable=False),
        sa.Column("assigned", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("assigned <= purchased", name=op.f("ck_seat_counts_assigned_within_purchased")),
        sa.CheckConstraint("assigned >= 0", name=op.f("ck_seat_counts_assigned_not_negative")),
        sa.PrimaryKeyConstraint("organization_id", "seat_type", name=op.f("pk_seat_counts")),
    )


def downgrade() -> None:
    op.drop_table("seat_counts")
    op.drop_table("seat_changes")
    op.drop_table("seat_allowances")
    op.drop_table("scheduled_reductions")
    op.drop_table("renewals")
    op.drop_table("period_closes")
    op.drop_table("invoice_line_tokens")
    op.drop_table("billing_settings")
