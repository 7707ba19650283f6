"""Alembic environment: one set of migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from seatmeter.adapters import (
    tables_billing,  # noqa: F401  (registers the billing tables on metadata)
    tables_notify,  # noqa: F401  (registers the notification tables)
)
from seatmeter.adapters.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""
if url.startswith("postgresql://"):
    url = "postgresql+psycopg://" + url.removeprefix("postgresql://")


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
