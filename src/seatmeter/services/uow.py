"""The unit of work: one transaction per use case. Commit explicitly; anything else rolls back."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from seatmeter.adapters.db import READ_ONLY
from seatmeter.adapters.thread_connections import ThreadConnections
from seatmeter.domain.errors import ServiceUnavailable

__all__ = ["UnitOfWork"]


class UnitOfWork:
    """`read_only=True` is for use cases that only read (summaries, the dashboard): on SQLite their transaction
    begins deferred, a snapshot that does not take the write lock, so a long read never makes holds wait. They
    must not write: on SQLite a write in a deferred transaction may be refused as busy at once.

    With `connections` (SQLite), the connection is the thread's kept one when it is free
    (adapters/thread_connections.py) instead of a checkout from the pool."""

    conn: Connection

    def __init__(
        self, engine: Engine, *, read_only: bool = False, connections: ThreadConnections | None = None
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._connections = connections
        self._kept = False

    def __enter__(self) -> UnitOfWork:
        try:
            if self._connections is None:
                self.conn = self._engine.connect()
            else:
                self.conn, self._kept = self._connections.acquire()
        except OperationalError as exc:
            raise _unavailable(exc) from exc
        try:
            if self._read_only:
                self.conn.connection.info[READ_ONLY] = True
                try:
                    self._tx = self.conn.begin()
                finally:
                    self.conn.connection.info.pop(READ_ONLY, None)
            else:
                self._tx = self.conn.begin()
        except BaseException as exc:
            self._release(broken=True)
            if isinstance(exc, OperationalError):
                raise _unavailable(exc) from exc
            raise
        return self

    def commit(self) -> None:
        try:
            self._tx.commit()
        except OperationalError as exc:
            raise _unavailable(exc) from exc

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A failed commit is raised as ServiceUnavailable, its driver error as the cause.
        broken = isinstance(exc, DBAPIError) or isinstance(getattr(exc, "__cause__", None), DBAPIError)
        try:
            # After a failed commit the transaction is no longer active but still the connection's: roll it back,
            # or the connection's next begin() is refused.
            if self._tx.is_active or self.conn.in_transaction():
                self._tx.rollback()
        except DBAPIError:
            broken = True  # the connection is gone; the database has rolled back for us
        finally:
            self._release(broken=broken)
        if isinstance(exc, OperationalError) and exc.connection_invalidated is not None:
            raise _unavailable(exc) from exc

    def _release(self, *, broken: bool) -> None:
        if self._connections is None:
            self.conn.close()
        else:
            self._connections.release(self.conn, self._kept, broken=broken)


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        "the database cannot be reached right now; nothing was written",
        resume="Retry shortly with the same idempotency key.",
    )
