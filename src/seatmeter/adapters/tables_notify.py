"""Tables of spend notifications: per-organization settings, the arming generation of each limit, the outbox
of notifications and the deliveries (one per channel and target) with a log of every attempt.

The outbox's unique key (organization, account, period, kind, threshold, generation) is what makes each
notification exist once: it is inserted in the transaction that moved spend across the threshold, with
ON CONFLICT DO NOTHING, so a retry or a race can never create a second one.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from seatmeter.adapters.tables import TS, metadata

__all__ = [
    "notification_arming",
    "notification_attempts",
    "notification_deliveries",
    "notification_settings",
    "notifications",
]

notification_settings = Table(
    "notification_settings",
    metadata,
    Column("organization_id", String(40), primary_key=True),
    Column("thresholds_percent", String(64), nullable=False),  # JSON list of whole percentages, sorted
    Column("low_balance_nano", BigInteger),  # absolute credit-balance threshold, NULL: none
    Column("webhook_url", String(2000)),
    Column("webhook_secret", String(100)),  # whsec_...; signs every webhook
    Column("emails", Text, nullable=False, server_default="[]"),  # JSON list of addresses
    Column("updated_at", TS, nullable=False),
    CheckConstraint("low_balance_nano IS NULL OR low_balance_nano > 0", name="low_balance_positive"),
)

# The arming generation of one limit account in one period. It grows when the limit is changed (a cap
# raised, credits bought), which re-arms every threshold of that limit and ends a `usage_stopped` episode.
notification_arming = Table(
    "notification_arming",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("account", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("generation", Integer, nullable=False, server_default="0"),
    Column("stopped", Boolean, nullable=False, server_default="0"),  # a usage_stopped fired in this generation
    PrimaryKeyConstraint("organization_id", "account", "period"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("account", String(64), nullable=False),  # 'credits' | 'organization' | 'member:<id>'
    Column("period", String(7), nullable=False),
    Column("threshold", Integer, nullable=False),  # percent; 0 for events without a threshold
    Column("generation", Integer, nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body that webhooks carry
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "id"),
    UniqueConstraint(
        "organization_id", "account", "period", "kind", "threshold", "generation", name="uq_notifications_once"
    ),
    CheckConstraint("kind IN ('threshold_crossed', 'low_balance', 'usage_stopped', 'usage_resumed')", name="kind"),
    Index("ix_notifications_org_created", "organization_id", "created_at"),
)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("notification_id", String(40), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", String(2000), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", TS, nullable=False),
    Column("last_error", String(500), nullable=False, server_default=""),
    Column("delivered_at", TS),
    PrimaryKeyConstraint("organization_id", "notification_id", "channel", "target"),
    CheckConstraint("channel IN ('webhook', 'email')", name="channel"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
)

notification_attempts = Table(
    "notification_attempts",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("notification_id", String(40), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", String(2000), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", TS, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer),
    Column("error", String(500), nullable=False, server_default=""),
    PrimaryKeyConstraint("organization_id", "notification_id", "channel", "target", "attempt"),
)
