"""The unit of work: one transaction per use case. Commit explicitly; anything else rolls back."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from seatmeter.adapters.db import READ_ONLY
from seatmeter.domain.errors import ServiceUnavailable

__all__ = ["UnitOfWork"]


class UnitOfWork:
    """`read_only=True` is for use cases that only read (summaries, the dashboard): on SQLite their transaction
    begins deferred, a snapshot that does not take the write lock, so a long read never makes holds wait. They
    must not write: on SQLite a write in a deferred transaction may be refused as busy at once."""

    conn: Connection

    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        self._engine = engine
        self._read_only = read_only

    def __enter__(self) -> UnitOfWork:
        try:
            self.conn = self._engine.connect()
            if self._read_only:
                self.conn.connection.info[READ_ONLY] = True
                try:
                    self._tx = self.conn.begin()
                finally:
                    self.conn.connection.info.pop(READ_ONLY, None)
            else:
                self._tx = self.conn.begin()
        except OperationalError as exc:
            raise _unavailable(exc) from exc
        return self

    def commit(self) -> None:
        try:
            self._tx.commit()
        except OperationalError as exc:
            raise _unavailable(exc) from exc

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._tx.is_active:
                self._tx.rollback()
        except DBAPIError:
            pass  # the connection is gone; the database has rolled back for us
        finally:
            self.conn.close()
        if isinstance(exc, OperationalError) and exc.connection_invalidated is not None:
            raise _unavailable(exc) from exc


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        "the database cannot be reached right now; nothing was written",
        resume="Retry shortly with the same idempotency key.",
    )
