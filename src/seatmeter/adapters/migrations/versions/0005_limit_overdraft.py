"""limit accounts: overdraft, and the CHECK that holds never take a limit past its ceiling

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("limit_accounts", sa.Column("overdraft_nano", sa.BigInteger(), nullable=False, server_default="0"))
    # Rows already past their limit (usage recorded after the fact, caps lowered) start with that excess.
    op.execute(
        "UPDATE limit_accounts SET overdraft_nano = posted_nano + held_nano - limit_nano "
        "WHERE limit_nano IS NOT NULL AND posted_nano + held_nano > limit_nano"
    )
    with op.batch_alter_table("limit_accounts") as batch:
        batch.create_check_constraint(op.f("ck_limit_accounts_overdraft_not_negative"), "overdraft_nano >= 0")
        batch.create_check_constraint(
            op.f("ck_limit_accounts_within_limit"),
            "limit_nano IS NULL OR posted_nano + held_nano <= limit_nano + overdraft_nano",
        )


def downgrade() -> None:
    with op.batch_alter_table("limit_accounts") as batch:
        batch.drop_constraint("ck_limit_accounts_within_limit", type_="check")
        batch.drop_constraint("ck_limit_accounts_overdraft_not_negative", type_="check")
        batch.drop_column("overdraft_nano")
