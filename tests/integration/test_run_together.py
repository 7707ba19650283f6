"""raw.run_together: statements sent together (one round trip on PostgreSQL) answer as if run one by one."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from seatmeter.adapters.raw import Statement, run_together
from seatmeter.bootstrap import App

_CREATE = "CREATE TABLE pipelined (k VARCHAR(10) PRIMARY KEY, n INTEGER NOT NULL)"
_DROP = "DROP TABLE IF EXISTS pipelined"  # PostgreSQL's schema outlives a test
_INSERT = Statement("INSERT INTO pipelined (k, n) VALUES (:k, :n)")
_BUMP = Statement("UPDATE pipelined SET n = n + 1 WHERE n >= :at_least")
_READ = Statement("SELECT k, n FROM pipelined WHERE n >= :at_least ORDER BY k")


@pytest.fixture
def pipelined(app: App) -> App:
    """The App, with the table `pipelined` made anew (committed)."""
    with app.uow() as uow:
        uow.conn.execute(text(_DROP))
        uow.conn.execute(text(_CREATE))
        uow.commit()
    return app


def test_answers_come_in_order_with_their_rows_and_row_counts(pipelined: App) -> None:
    app = pipelined
    with app.uow() as uow:
        inserted, bumped, read = run_together(uow.conn, [
            (_INSERT, [{"k": "a", "n": 1}, {"k": "b", "n": 2}, {"k": "c", "n": 3}]),
            (_BUMP, {"at_least": 2}),
            (_READ, {"at_least": 3}),
        ])  # fmt: skip
        assert inserted is None
        assert bumped is not None and bumped.rowcount == 2
        assert read is not None and [(r.k, r.n) for r in read.fetchall()] == [("b", 3), ("c", 4)]
        uow.commit()
    with app.uow() as uow:
        assert uow.conn.execute(text("SELECT sum(n) FROM pipelined")).scalar_one() == 8


def test_an_error_anywhere_is_the_drivers_error_as_sqlalchemy_raises_it_and_nothing_is_kept(pipelined: App) -> None:
    app = pipelined
    with pytest.raises(IntegrityError), app.uow() as uow:
        run_together(uow.conn, [(_INSERT, {"k": "a", "n": 1}), (_INSERT, [{"k": "b", "n": 1}, {"k": "a", "n": 2}])])
        uow.commit()
    with app.uow() as uow:
        assert uow.conn.execute(text("SELECT count(*) FROM pipelined")).scalar_one() == 0


def test_a_statement_without_rows_reads_as_none_and_a_read_of_no_rows_as_empty(pipelined: App) -> None:
    with pipelined.uow() as uow:
        _INSERT.run(uow.conn, {"k": "a", "n": 1})
        assert _BUMP.run(uow.conn, {"at_least": 1}).fetchall() == []
        assert _BUMP.run(uow.conn, {"at_least": 1}).first() is None
        assert _BUMP.run(uow.conn, {"at_least": 1}).tuples() == []
        assert _READ.run(uow.conn, {"at_least": 9}).fetchall() == []
        assert _READ.run(uow.conn, {"at_least": 9}).first() is None
        row = _READ.run(uow.conn, {"at_least": 1}).first()
        assert (row.k, row.n) == ("a", 4)
        assert _READ.run(uow.conn, {"at_least": 1}).tuples() == [("a", 4)]
