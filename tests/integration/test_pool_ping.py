"""PostgreSQL pooled connections: pinged only after sitting idle, and a connection the server dropped is replaced."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from seatmeter.adapters import db
from seatmeter.adapters.db import create_db_engine

pytestmark = pytest.mark.postgres


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pg_url: str, pid: int) -> None:
    admin = create_db_engine(pg_url, pool_size=1)
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    admin.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_any_statement(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(pg_url, pool_size=1)
    pid = _backend_pid(engine)
    _terminate(pg_url, pid)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", -1.0)  # every pooled connection counts as idle
    assert _backend_pid(engine) != pid  # no error: the ping found it dead and the pool opened another
    engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged_and_a_drop_fails_once_then_recovers(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(pg_url, pool_size=1)
    pid = _backend_pid(engine)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
    _terminate(pg_url, pid)
    # Not pinged (a ping would have replaced it silently): its first statement meets the closed connection.
    with pytest.raises(OperationalError):
        _backend_pid(engine)
    assert _backend_pid(engine) != pid  # the disconnect invalidated the pool: the next checkout is fresh
    engine.dispose()
