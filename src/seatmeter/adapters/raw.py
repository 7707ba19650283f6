"""Hand-written SQL for the hot path (authorize, settle, void), run straight on the driver.

SQLAlchemy Core builds, keys and compiles a statement on every call; on the hot path that costs more than the
database's own work. These statements are written once, in the `:name` parameter style, and turned into each
driver's style at import. They touch only columns whose types need no conversion, except times: SQLite keeps
UTC text in the format SQLAlchemy writes, PostgreSQL aware timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, CursorResult

__all__ = ["Statement", "from_db_time", "to_db_time"]

_NAMED = re.compile(r"(?<![:\w]):(\w+)")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DateTime writes, so text comparisons hold


class Statement:
    def __init__(self, sql: str, *, postgres_suffix: str = "") -> None:
        self.sqlite = " ".join(sql.split())
        self.postgres = _NAMED.sub(r"%(\1)s", self.sqlite + (" " + postgres_suffix if postgres_suffix else ""))

    def run(self, conn: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        sql = self.postgres if conn.dialect.name == "postgresql" else self.sqlite
        return conn.exec_driver_sql(sql, dict(params))


def to_db_time(conn: Connection, at: datetime) -> Any:
    if conn.dialect.name == "postgresql":
        return at
    return at.astimezone(UTC).strftime(_SQLITE_TIME)


def from_db_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
