"""spend notifications: settings, arming generations, outbox, deliveries and attempts

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_settings",
        sa.Column("organization_id", sa.String(40), nullable=False),
        sa.Column("thresholds_percent", sa.String(64), nullable=False),
        sa.Column("low_balance_nano", sa.BigInteger(), nullable=True),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        sa.Column("webhook_secret", sa.String(100), nullable=True),
        sa.Column("emails", sa.Text(), server_default="[]", nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "low_balance_nano IS NULL OR low_balance_nano > 0",
            name=op.f("ck_notification_settings_low_balance_positive"),
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_notification_settings")),
    )
    op.create_table(
        "notification_arming",
        sa.Column("organization_id", sa.String(40), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("generation", sa.Integer(), server_default="0", nullable=False),
        sa.Column("stopped", sa.Boolean(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "account", "period", name=op.f("pk_notification_arming")),
    )
    op.create_table(
        "notifications",
        sa.Column("organization_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "kind IN ('threshold_crossed', 'low_balance', 'usage_stopped', 'usage_resumed')",
            name=op.f("ck_notifications_kind"),
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "organization_id", "account", "period", "kind", "threshold", "generation", name="uq_notifications_once"
        ),
    )
    op.create_index("ix_notifications_org_created", "notifications", ["organization_id", "created_at"])
    op.create_table(
        "notification_deliveries",
        sa.Column("organization_id", sa.String(40), nullable=False),
        sa.Column("notification_id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.String(500), server_default="", nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.CheckConstraint("channel IN ('webhook', 'email')", name=op.f("ck_notification_deliveries_channel")),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name=op.f("ck_notification_deliveries_status")
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "notification_id", "channel", "target", name=op.f("pk_notification_deliveries")
        ),
    )
    op.create_index("ix_notification_deliveries_due", "notification_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "notification_attempts",
        sa.Column("organization_id", sa.String(40), nullable=False),
        sa.Column("notification_id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", TS, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), server_default="", nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id", "notification_id", "channel", "target", "attempt", name=op.f("pk_notification_attempts")
        ),
    )


def downgrade() -> None:
    op.drop_table("notification_attempts")
    op.drop_index("ix_notification_deliveries_due", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    op.drop_index("ix_notifications_org_created", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("notification_arming")
    op.drop_table("notification_settings")
