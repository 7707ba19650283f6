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
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg.pq import ExecStatus
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

__all__ = ["Rows", "Statement", "from_db_time", "run_together", "to_db_time"]

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


class Statement:
    def __init__(self, sql: str, *, postgres_suffix: str = "", postgres: str | None = None) -> None:
        """`sql` for both databases, `postgres_suffix` appended on PostgreSQL only, or `postgres` as PostgreSQL's
        own text of the statement (same named parameters) where the two must differ."""
        self.sqlite = " ".join(sql.split())
        pg = self.sqlite if postgres is None else " ".join(postgres.split())
        self.postgres = _NAMED.sub(r"%(\1)s", pg + (" " + postgres_suffix if postgres_suffix else ""))
        # The row type of each dialect's answer, made on the first answer: the columns are the statement's own.
        self._row_types: dict[str, Any] = {}

    def run(self, conn: Connection, params: Mapping[str, Any]) -> Rows:
        """Execute on the connection's own DBAPI cursor, inside the transaction the unit of work began.

        Driver errors are raised as SQLAlchemy's (IntegrityError, OperationalError...), as Core would raise them,
        so the callers' handling of replays and of a lost database is the same on both paths.
        """
        dialect = conn.dialect
        sql = self.postgres if dialect.name == "postgresql" else self.sqlite
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection is None:
            raise RuntimeError("the connection is closed")
        # Both drivers take named parameters from a dict only; the callers build one per call, so no copy.
        values = params if type(params) is dict else dict(params)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, values)
        except dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise DBAPIError.instance(sql, dict(params), exc, dialect.loaded_dbapi.Error) from exc
        return Rows(cursor, self._row_types, dialect.name)

    def run_many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set, in one call to the driver (psycopg pipelines them)."""
        is_postgres = conn.dialect.name == "postgresql"
        sql = self.postgres if is_postgres else self.sqlite
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection is None:
            raise RuntimeError("the connection is closed")
        cursor = dbapi_connection.cursor()
        rows = [dict(p) for p in params]
        try:
            cursor.executemany(sql, rows)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, rows, exc, conn.dialect.loaded_dbapi.Error) from exc
        finally:
            cursor.close()


Call = tuple["Statement", "Mapping[str, Any] | list[dict[str, Any]]"]


def run_together(conn: Connection, calls: Sequence[Call]) -> list[Rows | None]:
    """Run statements that do not need each other's answers in one round trip to PostgreSQL (psycopg's pipeline
    mode), in order; one after another on SQLite, where there is no round trip to save. A call whose parameters
    are a list runs once per item, like `Statement.run_many`, and answers None. Answers are read after the
    last statement ran, so a caller checks row counts then, before it commits.
    """
    if conn.dialect.name != "postgresql":
        answers: list[Rows | None] = []
        for statement, params in calls:
            if isinstance(params, list):
                statement.run_many(conn, params)
                answers.append(None)
            else:
                answers.append(statement.run(conn, params))
        return answers
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is None:
        raise RuntimeError("the connection is closed")
    cursors = [dbapi_connection.cursor() for _ in calls]
    try:
        with dbapi_connection.pipeline():
            for cursor, (statement, params) in zip(cursors, calls, strict=True):
                if isinstance(params, list):
                    cursor.executemany(statement.postgres, [dict(p) for p in params])
                else:
                    cursor.execute(statement.postgres, params if type(params) is dict else dict(params))
    except conn.dialect.loaded_dbapi.Error as exc:
        for cursor in cursors:
            cursor.close()
        # The error comes at the pipeline's end, from whichever statement failed: name them all.
        sql = "; ".join(statement.postgres for statement, _ in calls)
        raise DBAPIError.instance(sql, {}, exc, conn.dialect.loaded_dbapi.Error) from exc
    answers = []
    for cursor, (statement, params) in zip(cursors, calls, strict=True):
        if isinstance(params, list):
            cursor.close()
            answers.append(None)
        else:
            answers.append(Rows(cursor, statement._row_types, "postgresql"))
    return answers


class Rows:
    """The answer of a statement: its row count, and its rows as named tuples."""

    def __init__(self, cursor: Any, row_types: dict[str, Any] | None = None, dialect_name: str = "") -> None:
        self.rowcount: int = cursor.rowcount
        self._cursor = cursor
        self._row_types = {} if row_types is None else row_types
        self._dialect_name = dialect_name

    def fetchall(self) -> list[Any]:
        cursor = self._cursor
        try:
            if not _returns_rows(cursor):
                return []
            make = self._row_type()._make
            rows = [make(r) for r in cursor.fetchall()]
        finally:
            cursor.close()
        if rows and self.rowcount < 0:
            self.rowcount = len(rows)
        return rows

    def tuples(self) -> list[Any]:
        """The rows as the driver's own tuples: for reads of thousands of rows, where a named tuple each costs."""
        cursor = self._cursor
        try:
            return list(cursor.fetchall()) if _returns_rows(cursor) else []
        finally:
            cursor.close()

    def first(self) -> Any:
        """The first row, or None; the rest is not read (the statements that use it match one row at most)."""
        cursor = self._cursor
        try:
            if not _returns_rows(cursor):
                return None
            row = cursor.fetchone()
            if row is None:
                return None
            return self._row_type()._make(row)
        finally:
            cursor.close()

    def _row_type(self) -> Any:
        row_type = self._row_types.get(self._dialect_name)
        if row_type is None:
            row_type = _row_type(tuple(d[0] for d in self._cursor.description))
            self._row_types[self._dialect_name] = row_type
        return row_type

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


_TUPLES = frozenset({ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK})
_NOT_PSYCOPG = object()


def _returns_rows(cursor: Any) -> bool:
    """`cursor.description is not None`, without the description: psycopg builds a Column object for every
    column each time it is asked (30 per batch of holds, a tenth of the batch's Python)."""
    result: Any = getattr(cursor, "pgresult", _NOT_PSYCOPG)
    if result is _NOT_PSYCOPG:
        return cursor.description is not None  # sqlite3: a tuple it already has
    return result is not None and (result.nfields > 0 or result.status in _TUPLES)


@functools.cache
def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("Row", names)  # noqa: PYI024


def to_db_time(conn: Connection, at: datetime) -> Any:
    if conn.dialect.name == "postgresql":
        return at
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    # What SQLAlchemy writes: the UTC time without its offset ("+00:00", the last six characters).
    return at.isoformat(" ", "microseconds")[:-6]


def from_db_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if type(value) is str and value[-6:-5] not in ("+", "-"):
        return datetime.fromisoformat(value + "+00:00")  # SQLite's UTC text, read as the aware time it is
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
