"""usage events: keyed by (organization, idempotency key), with no index on the event id

Revision ID: 0006
Revises: 0005

The primary key was (organization_id, id) beside a unique (organization_id, idempotency_key): two indexes of
the same rows where one is read. Every write checks the idempotency key and nothing reads an event by its id
(a settled hold's event is found by its key, 'hold:<hold id>'), so the key becomes the primary key and the id's
index goes. SQLite did ~23% fewer instructions per inserted event (callgrind, 70,000 events).
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On SQLite the batch copies the table into a new one with the new keys; on PostgreSQL it alters in place.
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_constraint("uq_usage_events_org_key", type_="unique")
        batch.drop_constraint("pk_usage_events", type_="primary")
        batch.create_primary_key("pk_usage_events", ["organization_id", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_constraint("pk_usage_events", type_="primary")
        batch.create_primary_key("pk_usage_events", ["organization_id", "id"])
        batch.create_unique_constraint("uq_usage_events_org_key", ["organization_id", "idempotency_key"])
