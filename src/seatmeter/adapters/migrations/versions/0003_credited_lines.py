"""credited lines: which invoice lines a credit note reversed, each at most once

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credited_lines",
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("credit_note_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "invoice_id", "position", name=op.f("pk_credited_lines")),
    )


def downgrade() -> None:
    op.drop_table("credited_lines")
