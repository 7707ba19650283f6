"""The fence between the writers of usage events and a period close: every event is billed exactly once.

A close bills the events it can see with `recorded_at < cutoff` (plus, as late usage, earlier periods' events
with `recorded_at >=` the previous close's cutoff). Two rules make that exact, whatever a writer's commit delay
or clock:

- Order. On PostgreSQL a transaction that inserts usage events first takes the organization's advisory lock
  shared, and a close takes it exclusive before it reads any event: the close waits for the writers in flight
  (and sees their events), and a writer that starts during the close waits for it. On SQLite every writing
  transaction begins `BEGIN IMMEDIATE`, so writers and closes already run one at a time.
- Clamp. A writer stamps `recorded_at` no earlier than the organization's last cutoff, read after the lock: an
  event committed after a close is then never below that close's cutoff, so it lands on the next document
  instead of on none. Cutoffs never go down (a close's cutoff is at least the previous one), so the windows
  `[previous cutoff, cutoff)` of successive closes never overlap.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from seatmeter.adapters.raw import Statement
from seatmeter.adapters.tables_billing import period_closes

__all__ = [
    "LAST_CUTOFF_PG",
    "LAST_CUTOFF_SQLITE",
    "LOCK_SHARED_PG",
    "clamp_recorded_at",
    "last_cutoff",
    "lock_for_close",
    "lock_for_writer",
]

# Two-key advisory locks (class, organization), apart from any single-key lock. A hash collision between two
# organizations only makes one wait for the other's close.
_LOCK_CLASS = 60_111
LOCK_SHARED_PG = f"pg_advisory_xact_lock_shared({_LOCK_CLASS}, hashtext(:org))"
_LOCK_SHARED = Statement(f"SELECT {LOCK_SHARED_PG}")
_LOCK_EXCLUSIVE = Statement(f"SELECT pg_advisory_xact_lock({_LOCK_CLASS}, hashtext(:org))")

# SQL expressions for `recorded_at` in a writer's INSERT, given `:now` and `:org`: the later of now and the last
# cutoff. On SQLite both are UTC text in the one format SQLAlchemy writes, which sorts as the instants do.
# (The cast: `:org` is also the varchar value of the INSERT, and PostgreSQL wants one type per parameter.)
LAST_CUTOFF_PG = (
    "GREATEST(:now, (SELECT max(cutoff_at) FROM period_closes WHERE organization_id = CAST(:org AS varchar)))"
)
LAST_CUTOFF_SQLITE = (
    "max(:now, coalesce((SELECT max(cutoff_at) FROM period_closes WHERE organization_id = :org), :now))"
)


def lock_for_writer(conn: Connection, org_id: str) -> None:
    """Before a transaction inserts usage events, and before it reads the last cutoff (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        _LOCK_SHARED.run(conn, {"org": org_id}).tuples()


def lock_for_close(conn: Connection, org_id: str) -> None:
    """Before a close reads any event (PostgreSQL only): waits for the writers in flight; new ones wait for it."""
    if conn.dialect.name == "postgresql":
        _LOCK_EXCLUSIVE.run(conn, {"org": org_id}).tuples()


def last_cutoff(conn: Connection, org_id: str) -> datetime | None:
    cutoff: datetime | None = conn.execute(
        select(func.max(period_closes.c.cutoff_at)).where(period_closes.c.organization_id == org_id)
    ).scalar_one()
    return cutoff


def clamp_recorded_at(conn: Connection, org_id: str, now: datetime) -> datetime:
    """The `recorded_at` of events written now: never below the last cutoff. Call after `lock_for_writer`."""
    cutoff = last_cutoff(conn, org_id)
    return now if cutoff is None or cutoff <= now else cutoff
