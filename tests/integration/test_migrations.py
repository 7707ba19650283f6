"""The migrations build the schema that adapters/tables.py describes, and 0006 keeps every usage event."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from seatmeter.adapters import tables_billing, tables_notify
from seatmeter.adapters.db import alembic_config
from seatmeter.adapters.tables import metadata

# Every table on `metadata`, as the migrations' env.py has them, whatever else this test session imported.
assert tables_billing and tables_notify

EVENT = (
    "INSERT INTO usage_events (organization_id, id, idempotency_key, fingerprint, member_id, model, surface, "
    "service_tier, occurred_at, period, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
    "cache_read_tokens, cost_nano, price_version, hold_id, exceeded_hold, recorded_at) VALUES (:org, :id, :key, "
    "'fp', 'mem_1', 'claude-sonnet-4-5', 'api', 'standard', '2026-11-02 10:00:00', '2026-11', 10, 20, 0, 0, 0, "
    ":cost, 'v1', NULL, false, '2026-11-02 10:00:01')"
)


def _events(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    text("SELECT organization_id, id, idempotency_key, cost_nano FROM usage_events ORDER BY id")
                )
            ]
    finally:
        engine.dispose()


def _keys(url: str) -> tuple[list[str], list[list[str]]]:
    """usage_events' primary key columns and unique constraints; its key's name and CHECK are required too."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        primary = found.get_pk_constraint("usage_events")
        assert primary["name"] == "pk_usage_events"  # what a later migration drops it by
        checks = {c["name"] for c in found.get_check_constraints("usage_events")}
        assert "ck_usage_events_cost_not_negative" in checks  # compare_metadata does not compare CHECKs
        return primary["constrained_columns"], [u["column_names"] for u in found.get_unique_constraints("usage_events")]
    finally:
        engine.dispose()


def test_the_migrated_schema_is_the_one_the_code_describes(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert differences == []
    # Autogenerate compares neither primary keys nor CHECKs: _keys checks usage_events' own.
    assert _keys(database_url) == (["organization_id", "idempotency_key"], [])


def test_0006_rekeys_usage_events_by_idempotency_key_and_keeps_every_event(database_url: str) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "0005")
    try:
        assert _keys(database_url) == (["organization_id", "id"], [["organization_id", "idempotency_key"]])
        engine = create_engine(database_url)
        try:
            with engine.begin() as conn:
                for org, event_id, key, cost in [
                    ("org_a", "evt_1", "k1", 5),
                    ("org_a", "evt_2", "k2", 7),
                    ("org_b", "evt_3", "k1", 11),
                ]:
                    conn.execute(text(EVENT), {"org": org, "id": event_id, "key": key, "cost": cost})
        finally:
            engine.dispose()
        before = _events(database_url)
        command.upgrade(config, "0006")
        assert _events(database_url) == before
        assert _keys(database_url) == (["organization_id", "idempotency_key"], [])
        engine = create_engine(database_url)
        try:
            with pytest.raises(IntegrityError), engine.begin() as conn:  # a key is still used once per organization
                conn.execute(text(EVENT), {"org": "org_a", "id": "evt_4", "key": "k2", "cost": 1})
        finally:
            engine.dispose()
        command.downgrade(config, "0005")
        assert _events(database_url) == before
        assert _keys(database_url) == (["organization_id", "id"], [["organization_id", "idempotency_key"]])
    finally:
        command.upgrade(config, "head")
