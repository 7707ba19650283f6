"""Hand-written SQL for the hot path (authorize, settle, void), run straight on the driver.

SQLAlchemy Core builds, keys and compiles a statement on every call; on the hot path that costs more than the
database's own work. These statements are written once, in the `:name` parameter style, and turned into each
driver's style at import. They touch only columns whose types need no conversion, except times: SQLite keeps
UTC text in the format SQLAlchemy writes, PostgreSQL aware timestamps.
"""

from __future__ import annotations

import functools
import re
from collections import namedtuple
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

__all__ = ["Rows", "Statement", "from_db_time", "to_db_time"]

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


class Statement:
    def __init__(self, sql: str, *, postgres_suffix: str = "") -> None:
        self.sqlite = " ".join(sql.split())
        self.postgres = _NAMED.sub(r"%(\1)s", self.sqlite + (" " + postgres_suffix if postgres_suffix else ""))

    def run(self, conn: Connection, params: Mapping[str, Any]) -> Rows:
        """Execute on the connection's own DBAPI cursor, inside the transaction the unit of work began.

        Driver errors are raised as SQLAlchemy's (IntegrityError, OperationalError...), as Core would raise them,
        so the callers' handling of replays and of a lost database is the same on both paths.
        """
        is_postgres = conn.dialect.name == "postgresql"
        sql = self.postgres if is_postgres else self.sqlite
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection is None:
            raise RuntimeError("the connection is closed")
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, dict(params))
        except conn.dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise DBAPIError.instance(sql, dict(params), exc, conn.dialect.loaded_dbapi.Error) from exc
        return Rows(cursor)


class Rows:
    """The answer of a statement: its row count, and its rows as named tuples."""

    def __init__(self, cursor: Any) -> None:
        self.rowcount: int = cursor.rowcount
        self._cursor = cursor

    def fetchall(self) -> list[Any]:
        cursor = self._cursor
        try:
            if cursor.description is None:
                return []
            row_type = _row_type(tuple(d[0] for d in cursor.description))
            rows = [row_type._make(r) for r in cursor.fetchall()]
        finally:
            cursor.close()
        if rows and self.rowcount < 0:
            self.rowcount = len(rows)
        return rows

    def tuples(self) -> list[Any]:
        """The rows as the driver's own tuples: for reads of thousands of rows, where a named tuple each costs."""
        cursor = self._cursor
        try:
            return [] if cursor.description is None else list(cursor.fetchall())
        finally:
            cursor.close()

    def first(self) -> Any:
        rows = self.fetchall()
        return rows[0] if rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


@functools.cache
def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("Row", names)  # noqa: PYI024


def to_db_time(conn: Connection, at: datetime) -> Any:
    if conn.dialect.name == "postgresql":
        return at
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")  # what SQLAlchemy writes


def from_db_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
