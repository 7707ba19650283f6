"""One SQLite connection per thread, kept checked out between that thread's units of work.

Checking a connection out of SQLAlchemy's pool and back in (the `Connection`, the pool's proxy and record, the
reset on return) cost about as much as the SQLite work of a short transaction: with an authorize + settle pair
running two transactions, it was a tenth of the pair. A thread that runs transactions one after another (the
group-commit thread, a request thread, a benchmark loop) now keeps its connection and only begins and commits.
SQLite only: there a connection is a file handle, and one writer at a time holds the database lock anyway; on
PostgreSQL a connection is a server process that threads must share.

A thread keeps at most one connection; a unit of work opened while the thread's own is in use (a nested one)
takes a pooled connection as before. At most `limit` threads keep one, so the pool always has connections
left for everyone else. A connection is given back to the pool when its thread ends, when a database error
made it suspect, or when the engine is disposed.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import Connection, Engine, event

__all__ = ["ThreadConnections"]


class _Kept:
    """A thread's kept connection. Dropped with the thread's local storage, it goes back to the pool."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.busy = False
        self.discard = False  # the engine was disposed while a unit of work used it: close it when done

    def usable(self) -> bool:
        return not (self.discard or self.conn.closed or self.conn.invalidated)

    def close(self) -> None:
        """Back to the pool: the connection is sound."""
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001, S110 - at thread exit or interpreter shutdown the pool may be gone
            pass

    def drop(self) -> None:
        """Closed for good: it may be broken, or its engine was disposed (its pool is no longer the engine's)."""
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
        event.listen(engine, "engine_disposed", self._engine_disposed)

    def acquire(self) -> tuple[Connection, bool]:
        """A connection for one unit of work, and whether it is this thread's kept one (give it to `release`)."""
        kept: _Kept | None = getattr(self._local, "kept", None)
        if kept is not None:
            with self._lock:  # against _engine_disposed, from another thread
                free = not kept.busy and kept.usable()
                if free:
                    kept.busy = True
            if free:
                return kept.conn, True
            if kept.busy:  # a nested unit of work: the thread's own connection is in use
                return self._engine.connect(), False
            self._forget(kept)
        conn = self._engine.connect()
        with self._lock:  # the count and the add in one step, or two threads could both take the last place
            if len(self._kept) >= self._limit:
                return conn, False
            kept = _Kept(conn)
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
        with self._lock:
            kept.busy = False
            drop = broken or not kept.usable()
        if drop:
            self._forget(kept)

    def _forget(self, kept: _Kept) -> None:
        self._local.kept = None
        with self._lock:
            self._kept.discard(kept)
        kept.drop()

    def _engine_disposed(self, _engine: Any) -> None:
        """`Engine.dispose()` closes only the pool's idle connections: close the idle kept ones too, and have
        the busy ones closed when their unit of work ends."""
        with self._lock:
            idle = []
            for kept in self._kept:
                kept.discard = True
                if not kept.busy:
                    idle.append(kept)
            self._kept.clear()
        for kept in idle:
            kept.drop()
