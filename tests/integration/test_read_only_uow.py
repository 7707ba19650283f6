"""A read-only unit of work on SQLite is a snapshot that never makes a writer wait; a read-write one holds the lock."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from seatmeter.adapters.db import READ_ONLY, create_db_engine
from seatmeter.services.uow import UnitOfWork


def _writer(engine: object, done: threading.Event) -> threading.Thread:
    def write() -> None:
        with UnitOfWork(engine) as uow:  # type: ignore[arg-type]
            uow.conn.execute(text("INSERT INTO t VALUES (2)"))
            uow.commit()
        done.set()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_read_only_unit_of_work_reads_a_snapshot_without_blocking_writers(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'ro.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))

    with UnitOfWork(engine, read_only=True) as reader:
        assert reader.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
        assert READ_ONLY not in reader.conn.connection.info  # the flag is for that one begin, not the connection
        done = threading.Event()
        _writer(engine, done).join(5)
        assert done.is_set()  # the writer committed while the read was still open
        assert reader.conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1  # the reader's snapshot

    with UnitOfWork(engine) as holder:
        holder.conn.execute(text("SELECT 1"))
        blocked = threading.Event()
        thread = _writer(engine, blocked)
        thread.join(0.5)
        assert not blocked.is_set()  # a read-write unit of work holds the write lock from its begin
    thread.join(5)
    assert blocked.is_set()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 3
    engine.dispose()
