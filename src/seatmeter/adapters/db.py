"""Engines for SQLite (embedded default, WAL) and PostgreSQL, and the migrations that build their schema."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool

__all__ = ["READ_ONLY", "SQLitePool", "create_db_engine", "is_postgres", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
# Set in a pooled connection's info for the next begin only: a read-only unit of work (services/uow.py).
READ_ONLY = "seatmeter_read_only"
# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out (see _ping_when_idle).
PING_AFTER_IDLE_S = 1.0


def create_db_engine(url: str, *, pool_size: int = 20) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, pool_size)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # READ COMMITTED plus row locks taken in one fixed order is how limits are enforced (see services/holds.py).
        isolation_level="READ COMMITTED",
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle for more than PING_AFTER_IDLE_S.

    SQLAlchemy's pool_pre_ping pings on every checkout: one round trip more per transaction, about a tenth of a
    hold. A connection in steady use was just seen working; one that sat idle may have been closed by a database
    restart, a failover or a firewall, and is replaced here before any statement runs on it. A connection that
    dies between two transactions less than a second apart fails its first statement instead: SQLAlchemy sees
    the disconnect, discards every pooled connection opened before it, and the request gets the documented 503.
    """

    @event.listens_for(engine.pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_S:
            return
        try:
            dbapi_connection.execute("SELECT 1")
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"a pooled connection idle since a while failed its ping: {exc}") from exc


class SQLiteImmediate(SQLiteDialect_pysqlite):
    """pysqlite, with every transaction begun by `BEGIN IMMEDIATE`, straight on the driver.

    Take the write lock at the start: a transaction that reads a limit and then writes it must not find the
    database taken by another writer in between (SQLite has no row locks). A dialect method rather than a
    "begin" event listener: any engine-level listener makes every connection join the engine's event dispatch
    and fire it on begin and commit, which cost more than the statement itself on the hot path. A failure (busy
    past the timeout, a read-only file) is raised by SQLAlchemy's begin() as its OperationalError, as before.
    A read-only unit of work begins deferred instead: in WAL mode a snapshot that never blocks a writer.
    """

    supports_statement_cache = True

    def do_begin(self, dbapi_connection: Any) -> None:
        # SQLAlchemy hands the pool's proxy of the connection: its `info` carries the read-only flag.
        info = getattr(dbapi_connection, "info", None)
        dbapi_connection.execute("BEGIN" if info and info.get(READ_ONLY) else "BEGIN IMMEDIATE")


registry.register("sqlite.seatmeter_immediate", __name__, "SQLiteImmediate")


class SQLitePool(QueuePool):
    """A QueuePool that calls its `on_dispose` hooks when `Engine.dispose()` disposes it, and hands them to the
    pool that replaces it. Through the pool, not an engine event: any engine-level listener makes every
    connection dispatch events on begin and commit (see SQLiteImmediate). Threads' kept connections
    (adapters/thread_connections.py) are closed this way, so a disposed engine leaves no file open."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_dispose: list[Callable[[], None]] = []

    def dispose(self) -> None:
        super().dispose()
        for hook in list(self.on_dispose):
            hook()

    def recreate(self) -> QueuePool:
        pool = super().recreate()
        if isinstance(pool, SQLitePool):
            pool.on_dispose = self.on_dispose
        return pool


def _sqlite_engine(url: str, pool_size: int = 20) -> Engine:
    is_memory = url in ("sqlite://", "sqlite:///:memory:")
    # Pooled connections: closing the last connection to a WAL database checkpoints it, and a fresh
    # connection re-runs the PRAGMAs; with NullPool every transaction paid both (about 5 ms).
    pool: dict[str, Any] = {}
    if not is_memory:
        pool = {"poolclass": SQLitePool, "pool_size": pool_size, "max_overflow": pool_size}
    engine = create_engine(
        make_url(url).set(drivername="sqlite+seatmeter_immediate"),
        connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        **pool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not is_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the database to the latest schema. Safe to run on every start."""
    command.upgrade(alembic_config(url), "head")
