"""Small SQL helpers shared by the repositories: dialect-aware upserts and chunked IN lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["chunks", "insert_ignore", "upsert"]

T = TypeVar("T")


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def insert_ignore(conn: Connection, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, for rows that may already exist."""
    return _insert(conn, table).on_conflict_do_nothing()


def upsert(conn: Connection, table: Table, keys: Sequence[str], set_: dict[str, Any]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET ...; `set_` may refer to `stmt.excluded` through a callable."""
    stmt = _insert(conn, table)
    values = {name: (value(stmt.excluded) if callable(value) else value) for name, value in set_.items()}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=values)


def chunks(items: Sequence[T], size: int = 1000) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
