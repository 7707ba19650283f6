"""The schema, in SQLAlchemy Core. Every table is keyed by `organization_id` first (except global reference
tables: API keys, which are looked up by hash, and the price book), so that a deployment can distribute by
organization. Money columns end in `_nano` and hold integer nano-USD.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("seatmeter stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TS = UTCDateTime()

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("plan", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("term_start", Date, nullable=False),
    Column("billing_anchor_day", Integer, nullable=False, server_default="1"),
    Column("seat_prices", Text, nullable=False, server_default="{}"),  # JSON: seat type -> USD per seat per month
    Column("next_invoice_number", Integer, nullable=False, server_default="1"),
    Column("created_at", TS, nullable=False),
    CheckConstraint("plan IN ('usage_based', 'usage_based_legacy', 'seat_based')", name="plan"),
    CheckConstraint("channel IN ('self_serve', 'sales_assisted')", name="channel"),
    CheckConstraint("billing_anchor_day BETWEEN 1 AND 31", name="anchor_day"),
)

members = Table(
    "members",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("seat_type", String(32)),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "id"),
    UniqueConstraint("organization_id", "email", name="uq_members_org_email"),
    ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
    CheckConstraint("role IN ('primary_owner', 'owner', 'member')", name="role"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_hash", String(64), primary_key=True),  # sha256 of the key; the key itself is never stored
    Column("organization_id", String(40), nullable=False),
    Column("member_id", String(40)),
    Column("kind", String(16), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    CheckConstraint("kind IN ('member', 'service')", name="kind"),
    CheckConstraint("(kind = 'member') = (member_id IS NOT NULL)", name="member_key_has_member"),
)

price_book_versions = Table(
    "price_book_versions",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("effective_from", TS, nullable=False),
    Column("document", Text, nullable=False),  # the version's JSON, as PriceVersion.to_json writes it
    Column("created_at", TS, nullable=False),
)

# One row per limit: the organization's credit balance (period ''), and for each billing period the
# organization's spend and every member's spend. `limit_nano` NULL means unlimited (still billed).
# For credits, limit_nano is the total ever purchased, so available = limit - posted - held.
limit_accounts = Table(
    "limit_accounts",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("account", String(64), nullable=False),  # 'credits' | 'organization' | 'member:<id>'
    Column("period", String(7), nullable=False),  # 'YYYY-MM', or '' for credits
    Column("limit_nano", BigInteger),
    Column("posted_nano", BigInteger, nullable=False, server_default="0"),
    Column("held_nano", BigInteger, nullable=False, server_default="0"),
    # How far spend that could not be refused (usage recorded after the fact, a settle above its hold, a cap
    # lowered below spend) has ever taken posted + held past the limit. Holds never add to it, so the CHECK
    # below is the database's own guarantee that no hold took a limit past its ceiling.
    Column("overdraft_nano", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("organization_id", "account", "period"),
    CheckConstraint("held_nano >= 0", name="held_not_negative"),
    CheckConstraint("posted_nano >= 0", name="posted_not_negative"),
    CheckConstraint("limit_nano IS NULL OR limit_nano >= 0", name="limit_not_negative"),
    CheckConstraint("overdraft_nano >= 0", name="overdraft_not_negative"),
    CheckConstraint(
        "limit_nano IS NULL OR posted_nano + held_nano <= limit_nano + overdraft_nano", name="within_limit"
    ),
)

caps = Table(
    "caps",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("scope", String(16), nullable=False),  # 'organization' | 'member_default' | 'member'
    Column("member_id", String(40), nullable=False, server_default=""),
    Column("limit_nano", BigInteger),  # NULL: unlimited
    Column("updated_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "scope", "member_id"),
    CheckConstraint("scope IN ('organization', 'member_default', 'member')", name="scope"),
    CheckConstraint("limit_nano IS NULL OR limit_nano >= 0", name="limit_not_negative"),
)

holds = Table(
    "holds",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("member_id", String(40), nullable=False),
    Column("model", String(100), nullable=False),
    Column("surface", String(16), nullable=False),
    Column("amount_nano", BigInteger, nullable=False),
    Column("max_output_tokens", Integer),
    Column("accounts", String(200), nullable=False),  # the limit accounts it reserves against, comma-separated
    Column("period", String(7), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("closed_at", TS),
    Column("event_id", String(40)),
    PrimaryKeyConstraint("organization_id", "id"),
    UniqueConstraint("organization_id", "idempotency_key", name="uq_holds_org_key"),
    CheckConstraint("amount_nano > 0", name="amount_positive"),
    CheckConstraint("status IN ('open', 'settled', 'voided', 'expired')", name="status"),
    Index("ix_holds_open_expiry", "status", "expires_at"),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("member_id", String(40), nullable=False),
    Column("model", String(100), nullable=False),  # the price-book model the id resolved to
    Column("surface", String(16), nullable=False),
    Column("service_tier", String(16), nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("period", String(7), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_write_5m_tokens", BigInteger, nullable=False),
    Column("cache_write_1h_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cost_nano", BigInteger, nullable=False),
    Column("price_version", String(80), nullable=False),
    Column("hold_id", String(40)),
    Column("exceeded_hold", Boolean, nullable=False, server_default="0"),
    Column("recorded_at", TS, nullable=False),
    # Keyed by the idempotency key, the one key every write must check; the event's `id` (time-ordered, random,
    # made by domain/ids.py) has no index of its own: nothing reads an event by it, and a fourth b-tree per event
    # was nearly a quarter of SQLite's work of an insert (migration 0006).
    PrimaryKeyConstraint("organization_id", "idempotency_key"),
    CheckConstraint("cost_nano >= 0", name="cost_not_negative"),
    Index("ix_usage_events_org_period_member", "organization_id", "period", "member_id"),
)

credit_purchases = Table(
    "credit_purchases",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("amount_nano", BigInteger, nullable=False),
    Column("member_id", String(40)),
    Column("invoice_id", String(40), nullable=False),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "id"),
    UniqueConstraint("organization_id", "idempotency_key", name="uq_credit_purchases_org_key"),
    CheckConstraint("amount_nano > 0", name="amount_positive"),
)

# Double-entry: every movement of money debits one account and credits another by the same amount.
# Accounts are named '<kind>' within the organization: 'credits', 'revenue', 'receivable', 'payments'.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("debit_account", String(32), nullable=False),
    Column("credit_account", String(32), nullable=False),
    Column("amount_nano", BigInteger, nullable=False),
    Column("reference", String(40), nullable=False),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("organization_id", "id"),
    CheckConstraint("amount_nano > 0", name="amount_positive"),
    CheckConstraint("debit_account <> credit_account", name="two_sides"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("number", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("period", String(7)),
    Column("status", String(16), nullable=False),
    Column("issued_at", TS, nullable=False),
    Column("total_nano", BigInteger, nullable=False),
    Column("corrects_invoice_id", String(40)),
    PrimaryKeyConstraint("organization_id", "id"),
    UniqueConstraint("organization_id", "number", name="uq_invoices_org_number"),
    CheckConstraint("kind IN ('seats', 'credits', 'usage', 'statement', 'credit_note')", name="kind"),
    CheckConstraint("status IN ('draft', 'finalized')", name="status"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("organization_id", String(40), nullable=False),
    Column("invoice_id", String(40), nullable=False),
    Column("position", Integer, nullable=False),
    Column("description", String(500), nullable=False),
    Column("member_id", String(40)),
    Column("model", String(100)),
    Column("quantity", BigInteger),
    Column("amount_nano", BigInteger, nullable=False),
    PrimaryKeyConstraint("organization_id", "invoice_id", "position"),
)
