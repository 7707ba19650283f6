"""The unit of work: one transaction per use case. Commit explicitly; anything else rolls back."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from seatmeter.domain.errors import ServiceUnavailable

__all__ = ["UnitOfWork"]


class UnitOfWork:
    conn: Connection

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> UnitOfWork:
        try:
            self.conn = self._engine.connect()
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
