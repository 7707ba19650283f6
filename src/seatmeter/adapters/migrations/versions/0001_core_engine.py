"""core engine

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind = 'member') = (member_id IS NOT NULL)", name=op.f("ck_api_keys_member_key_has_member")
        ),
        sa.CheckConstraint("kind IN ('member', 'service')", name=op.f("ck_api_keys_kind")),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "caps",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.String(length=40), server_default="", nullable=False),
        sa.Column("limit_nano", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("scope IN ('organization', 'member_default', 'member')", name=op.f("ck_caps_scope")),
        sa.CheckConstraint("limit_nano IS NULL OR limit_nano >= 0", name=op.f("ck_caps_limit_not_negative")),
        sa.PrimaryKeyConstraint("organization_id", "scope", "member_id", name=op.f("pk_caps")),
    )
    op.create_table(
        "credit_purchases",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=True),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_nano > 0", name=op.f("ck_credit_purchases_amount_positive")),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_credit_purchases")),
        sa.UniqueConstraint("organization_id", "idempotency_key", name="uq_credit_purchases_org_key"),
    )
    op.create_table(
        "holds",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("surface", sa.String(length=16), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("max_output_tokens", sa.Integer(), nullable=True),
        sa.Column("accounts", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.CheckConstraint("status IN ('open', 'settled', 'voided', 'expired')", name=op.f("ck_holds_status")),
        sa.CheckConstraint("amount_nano > 0", name=op.f("ck_holds_amount_positive")),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_holds")),
        sa.UniqueConstraint("organization_id", "idempotency_key", name="uq_holds_org_key"),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index("ix_holds_open_expiry", ["status", "expires_at"], unique=False)

    op.create_table(
        "invoice_lines",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "invoice_id", "position", name=op.f("pk_invoice_lines")),
    )
    op.create_table(
        "invoices",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_nano", sa.BigInteger(), nullable=False),
        sa.Column("corrects_invoice_id", sa.String(length=40), nullable=True),
        sa.CheckConstraint(
            "kind IN ('seats', 'credits', 'usage', 'statement', 'credit_note')", name=op.f("ck_invoices_kind")
        ),
        sa.CheckConstraint("status IN ('draft', 'finalized')", name=op.f("ck_invoices_status")),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("organization_id", "number", name="uq_invoices_org_number"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("debit_account", sa.String(length=32), nullable=False),
        sa.Column("credit_account", sa.String(length=32), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_nano > 0", name=op.f("ck_ledger_entries_amount_positive")),
        sa.CheckConstraint("debit_account <> credit_account", name=op.f("ck_ledger_entries_two_sides")),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_ledger_entries")),
    )
    op.create_table(
        "limit_accounts",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("limit_nano", sa.BigInteger(), nullable=True),
        sa.Column("posted_nano", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held_nano", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("held_nano >= 0", name=op.f("ck_limit_accounts_held_not_negative")),
        sa.CheckConstraint("limit_nano IS NULL OR limit_nano >= 0", name=op.f("ck_limit_accounts_limit_not_negative")),
        sa.CheckConstraint("posted_nano >= 0", name=op.f("ck_limit_accounts_posted_not_negative")),
        sa.PrimaryKeyConstraint("organization_id", "account", "period", name=op.f("pk_limit_accounts")),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("billing_anchor_day", sa.Integer(), server_default="1", nullable=False),
        sa.Column("seat_prices", sa.Text(), server_default="{}", nullable=False),
        sa.Column("next_invoice_number", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('self_serve', 'sales_assisted')", name=op.f("ck_organizations_channel")),
        sa.CheckConstraint(
            "plan IN ('usage_based', 'usage_based_legacy', 'seat_based')", name=op.f("ck_organizations_plan")
        ),
        sa.CheckConstraint("billing_anchor_day BETWEEN 1 AND 31", name=op.f("ck_organizations_anchor_day")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "price_book_versions",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_book_versions")),
    )
    op.create_table(
        "usage_events",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("surface", sa.String(length=16), nullable=False),
        sa.Column("service_tier", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_5m_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_1h_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nano", sa.BigInteger(), nullable=False),
        sa.Column("price_version", sa.String(length=80), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=True),
        sa.Column("exceeded_hold", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("cost_nano >= 0", name=op.f("ck_usage_events_cost_not_negative")),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_usage_events")),
        sa.UniqueConstraint("organization_id", "idempotency_key", name="uq_usage_events_org_key"),
    )
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_events_org_period_member", ["organization_id", "period", "member_id"], unique=False
        )

    op.create_table(
        "members",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("seat_type", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('primary_owner', 'owner', 'member')", name=op.f("ck_members_role")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_members_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_members")),
        sa.UniqueConstraint("organization_id", "email", name="uq_members_org_email"),
    )


def downgrade() -> None:

    op.drop_table("members")
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_org_period_member")

    op.drop_table("usage_events")
    op.drop_table("price_book_versions")
    op.drop_table("organizations")
    op.drop_table("limit_accounts")
    op.drop_table("ledger_entries")
    op.drop_table("invoices")
    op.drop_table("invoice_lines")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_open_expiry")

    op.drop_table("holds")
    op.drop_table("credit_purchases")
    op.drop_table("caps")
    op.drop_table("api_keys")
