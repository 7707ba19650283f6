"""One SQLite connection per thread, kept checked out between that thread's units of work.

Checking a connection out of SQLAlchemy's pool and back in (the `Connection`, the pool's proxy and record, the
reset on return) cost about as much as the SQLite work of a short transaction: with an authorize + settle pair
running two transactions, it was a tenth of the pair. A thread that runs transactions one after another (the
group-commit thread, a request thread, a benchmark loop) now keeps its connection and only begins and commits.
SQLite only: there a connection is a file handle, and one writer at a time holds the database lock anyway; on
PostgreSQL a connection is a server process that threads must share.

A thread keeps at most one connection; a unit of work opened while the thread's own is in use (a nested one)
takes a pooled connection as before. At most `limit` threads keep one, so the pool always has connections
left for everyone else. A connection is given back to the pool when its thread ends, and closed for good
when a database error made it suspect or when the engine is disposed: at once if idle (through the pool's
`on_dispose` hooks, adapters/db.py), else when its unit of work ends.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import Connection, Engine

__all__ = ["ThreadConnections"]


class _Kept:
    """A thread's kept connection. Dropped with the thread's local storage, it goes back to the pool."""

    def __init__(self, conn: Connection, pool: Any) -> None:
        self.conn = conn
        self.pool = pool  # the engine's pool when the connection was taken; Engine.dispose() replaces it
        self.busy = False
        self.dropped = False

    def usable(self, pool: Any) -> bool:
        return not self.dropped and pool is self.pool and not (self.conn.closed or self.conn.invalidated)

    def close(self) -> None:
        """Back to the pool: the connection is sound."""
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001, S110 - at thread exit or interpreter shutdown the pool may be gone
            pass

    def drop(self) -> None:
        """Closed for good: it may be broken, or its engine was disposed."""
        try:
            self.conn.invalidate()
        except Exception:  # noqa: BLE001, S110 - already closed or invalidated
            pass
        self.close()

    def __del__(self) -> None:
        self.close()


class ThreadConnections:
    def __init__(self, engine: Engine, limit: int) -> None:
        self._engine = engine
        self._limit = limit
        self._local = threading.local()
        self._kept: weakref.WeakSet[_Kept] = weakref.WeakSet()
        self._lock = threading.Lock()
        hooks = getattr(engine.pool, "on_dispose", None)
        if hooks is not None:
            hooks.append(self._close_idle)

    def acquire(self) -> tuple[Connection, bool]:
        """A connection for one unit of work, and whether it is this thread's kept one (give it to `release`)."""
        kept: _Kept | None = getattr(self._local, "kept", None)
        if kept is not None:
            if kept.busy:  # a nested unit of work: the thread's own connection is in use
                return self._engine.connect(), False
            with self._lock:  # against _close_idle, from the thread that disposes the engine
                free = kept.usable(self._engine.pool)
                kept.busy = free
            if free:
                return kept.conn, True
            self._forget(kept)
        pool = self._engine.pool
        conn = self._engine.connect()
        with self._lock:  # the count and the add in one step, or two threads could both take the last place
            if len(self._kept) >= self._limit:
                return conn, False
            kept = _Kept(conn, pool)
            kept.busy = True
            self._kept.add(kept)
        self._local.kept = kept
        return conn, True

    def release(self, conn: Connection, kept_by_thread: bool, *, broken: bool = False) -> None:
        """Done with `conn`: keep the thread's own for its next unit of work unless `broken` (a database
        error: the connection may be invalid) or the engine was disposed meanwhile; close any other."""
        kept: _Kept | None = getattr(self._local, "kept", None)
        if not kept_by_thread or kept is None or kept.conn is not conn:
            conn.close()
            return
        kept.busy = False
        if broken or not kept.usable(self._engine.pool):
            self._forget(kept)

    def _forget(self, kept: _Kept) -> None:
        self._local.kept = None
        with self._lock:
            self._kept.discard(kept)
        kept.drop()

    def _close_idle(self) -> None:
        """The engine is being disposed: close the idle kept connections now; a busy one is closed when its unit
        of work ends (its pool is no longer the engine's by then)."""
        with self._lock:
            idle = [kept for kept in self._kept if not kept.busy]
            for kept in idle:
                kept.dropped = True
                self._kept.discard(kept)
        for kept in idle:
            kept.drop()
