"""A thread keeps its SQLite connection between units of work (adapters/thread_connections.py), within bounds."""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from seatmeter.adapters.db import create_db_engine
from seatmeter.adapters.thread_connections import ThreadConnections
from seatmeter.bootstrap import App
from seatmeter.domain.errors import ServiceUnavailable
from seatmeter.services.uow import UnitOfWork


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'kept.db'}", pool_size=4)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def _driver(uow: UnitOfWork) -> Any:
    return uow.conn.connection.dbapi_connection


def _in_thread(fn: Any) -> Any:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def test_a_thread_runs_its_units_of_work_on_one_connection_and_other_threads_on_their_own(engine: Engine) -> None:
    kept = ThreadConnections(engine, limit=2)

    def two_in_a_row() -> tuple[Any, Any]:
        with UnitOfWork(engine, connections=kept) as first:
            first.conn.execute(text("INSERT INTO t VALUES (1)"))
            first.commit()
            a = _driver(first)
        with UnitOfWork(engine, connections=kept, read_only=True) as second:
            assert second.conn.execute(text("SELECT count(*) FROM t")).scalar_one() >= 1
            b = _driver(second)
        return a, b

    here = two_in_a_row()
    assert here[0] is here[1]
    there = _in_thread(two_in_a_row)
    assert there[0] is there[1]
    assert there[0] is not here[0]


def test_a_nested_unit_of_work_takes_a_pooled_connection_and_both_work(engine: Engine) -> None:
    kept = ThreadConnections(engine, limit=2)
    with UnitOfWork(engine, connections=kept) as outer:
        outer.conn.execute(text("INSERT INTO t VALUES (1)"))
        with UnitOfWork(engine, connections=kept, read_only=True) as inner:
            assert _driver(inner) is not _driver(outer)
            # A snapshot of its own: the outer transaction's row is not committed yet.
            assert inner.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
        outer.commit()
        outer_driver = _driver(outer)
    with UnitOfWork(engine, connections=kept) as again:
        assert _driver(again) is outer_driver
        assert again.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1


def test_no_more_threads_keep_a_connection_than_the_limit(engine: Engine) -> None:
    kept = ThreadConnections(engine, limit=2)
    inside = threading.Barrier(3)
    flags: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        conn, by_thread = kept.acquire()
        with lock:
            flags.append(by_thread)
        inside.wait(timeout=10)  # all three hold a connection at once
        kept.release(conn, by_thread)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(flags) == [False, True, True]


def test_a_thread_that_ends_gives_its_connection_back_to_the_pool(engine: Engine) -> None:
    kept = ThreadConnections(engine, limit=2)
    before = engine.pool.checkedout()  # type: ignore[attr-defined]

    def one() -> int:
        with UnitOfWork(engine, connections=kept) as uow:
            uow.commit()
        return int(engine.pool.checkedout())  # type: ignore[attr-defined]

    assert _in_thread(one) == before + 1  # kept while the thread lives
    gc.collect()
    assert engine.pool.checkedout() == before  # type: ignore[attr-defined]


def test_a_database_error_drops_the_kept_connection(engine: Engine) -> None:
    kept = ThreadConnections(engine, limit=2)
    with UnitOfWork(engine, connections=kept) as uow:
        uow.commit()
        first = _driver(uow)
    with pytest.raises(ServiceUnavailable), UnitOfWork(engine, connections=kept) as uow:
        uow.conn.execute(text("INSERT INTO no_such_table VALUES (1)"))
    with UnitOfWork(engine, connections=kept) as uow:
        assert _driver(uow) is not first
        uow.conn.execute(text("INSERT INTO t VALUES (2)"))
        uow.commit()


def test_dispose_closes_the_kept_connections_idle_now_and_the_busy_ones_when_their_work_ends(engine: Engine) -> None:
    kept = ThreadConnections(engine, limit=2)
    elsewhere, done = _thread_keeping(engine, kept)  # a thread that lives on, idle
    with UnitOfWork(engine, connections=kept) as uow:
        uow.commit()
        idle = _driver(uow)
    engine.dispose()  # no file stays open: a read-only remount of the disk must not find it busy
    for closed in (idle, elsewhere):
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            closed.execute("SELECT 1")
    with UnitOfWork(engine, connections=kept) as uow:
        busy = _driver(uow)
        assert busy is not idle
        engine.dispose()  # while this unit of work runs: it still commits
        uow.conn.execute(text("INSERT INTO t VALUES (3)"))
        uow.commit()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        busy.execute("SELECT 1")
    with UnitOfWork(engine, connections=kept) as uow:
        assert uow.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    done.set()


def _thread_keeping(engine: Engine, kept: ThreadConnections) -> tuple[Any, threading.Event]:
    """Start a thread that keeps a connection and then waits until told: its driver connection, and the word."""
    ready, done = threading.Event(), threading.Event()
    out: list[Any] = []

    def park() -> None:
        with UnitOfWork(engine, connections=kept) as uow:
            uow.commit()
            out.append(_driver(uow))
        ready.set()
        done.wait(timeout=60)

    threading.Thread(target=park, daemon=True).start()
    ready.wait(timeout=10)
    return out[0], done


def test_the_app_keeps_a_connection_per_thread_on_a_sqlite_file_only(app: App) -> None:
    with app.uow() as first:
        first.commit()
        driver = _driver(first)
    with app.uow() as second:
        kept = _driver(second) is driver
    if app.engine.dialect.name == "sqlite":
        assert kept and app.connections is not None
    else:  # PostgreSQL connections are server processes that the threads share through the pool
        assert app.connections is None
