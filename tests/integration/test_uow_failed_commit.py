"""A commit the database refuses (a full disk, a lost server) is answered as ServiceUnavailable, and the thread's
next unit of work starts clean: the failed transaction is rolled back, not left on the connection."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from seatmeter.adapters.tables import organizations
from seatmeter.bootstrap import App
from seatmeter.domain.errors import ServiceUnavailable


def test_the_unit_of_work_after_a_failed_commit_starts_clean(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    dialect: Any = app.engine.dialect
    error = dialect.loaded_dbapi.OperationalError
    real_commit = dialect.do_commit

    def refused(dbapi_connection: Any) -> None:
        raise error("database or disk is full")

    with app.uow() as uow:  # the thread's connection exists before the failure (SQLite keeps it per thread)
        uow.conn.execute(text("SELECT 1"))
    monkeypatch.setattr(dialect, "do_commit", refused)
    with pytest.raises(ServiceUnavailable), app.uow() as uow:
        uow.conn.execute(organizations.delete())
        uow.commit()
    monkeypatch.setattr(dialect, "do_commit", real_commit)
    for _ in range(2):  # a read, then a write, on the thread's next units of work
        with app.uow() as uow:
            assert uow.conn.execute(select(func.count()).select_from(organizations)).scalar_one() == 0
            uow.commit()
