"""PostgreSQL connections plan prepared statements once (adapters/db.py, GENERIC_PLANS): the hot path's statements,
prepared by psycopg after five runs on a connection, are never planned again with each run's values."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Engine, text

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.db import create_db_engine
from seatmeter.services import hold_batches, holds
from tests.conftest import make_app
from tests.integration.test_hold_batches import OPERATOR, Shop
from tests.integration.test_pool_ping import _backend_pid, _terminate

pytestmark = pytest.mark.postgres

PLANS = "SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements"


def _mode(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SHOW plan_cache_mode")).scalar_one())


def test_every_pooled_connection_plans_generically_a_replaced_one_too(pg_url: str) -> None:
    engine = create_db_engine(pg_url, pool_size=1)
    assert _mode(engine) == "force_generic_plan"
    pid = _backend_pid(engine)
    _terminate(pg_url, pid)
    engine.dispose()  # what the pool does on a disconnect: the next connection is a new one
    assert _backend_pid(engine) != pid
    assert _mode(engine) == "force_generic_plan"
    engine.dispose()


def test_a_bare_connection_keeps_the_servers_default(pg_url: str) -> None:
    """The setting is the engine's, per connection: nothing is changed in the database for other clients."""
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("SHOW plan_cache_mode").fetchone() == ("auto",)


def test_the_batch_paths_prepared_statements_are_planned_once_never_per_run(pg_url: str, clock: FixedClock) -> None:
    app = make_app(pg_url, clock, db_pool_size=1)
    shop = Shop(app, members=2, credits_usd="100.00")
    for n in range(12):  # psycopg prepares a statement on its fifth run on a connection
        requests = [shop.body(f"k{n}-{i}", i % 2, "0.01") for i in range(3)]
        answers = hold_batches.run_batch(app, shop.id, [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, r))
                                                        for r in requests])  # fmt: skip
        assert all(isinstance(answer, holds.HoldView) for answer in answers), answers
    # The pool holds one connection: every batch ran on it, and so does this read of its prepared statements.
    with app.engine.connect() as conn:
        prepared = conn.execute(text(PLANS)).all()
    app.engine.dispose()
    batch_statements = [row for row in prepared if "holds" in row.statement or "limit_accounts" in row.statement]
    assert batch_statements, prepared  # the replay lookup, the limit rows, the reserve and the insert of holds
    assert all(row.custom_plans == 0 and row.generic_plans > 0 for row in batch_statements), prepared


def test_batches_of_any_number_of_members_share_one_prepared_text_of_each_statement(
    pg_url: str, clock: FixedClock
) -> None:
    """The organization's members, the lock of the limit rows and the reserve take their keys as arrays: batches of
    one to four members run three times each (fewer than psycopg's five runs for any one text) and every one of
    those statements is prepared once, for all of them."""
    app = make_app(pg_url, clock, db_pool_size=1)
    shop = Shop(app, members=4, credits_usd="100.00")
    for n in range(12):
        requests = [shop.body(f"n{n}-{i}", i, "0.01") for i in range(n % 4 + 1)]
        answers = hold_batches.run_batch(app, shop.id, [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, r))
                                                        for r in requests])  # fmt: skip
        assert all(isinstance(answer, holds.HoldView) for answer in answers), answers
    with app.engine.connect() as conn:
        texts = [row.statement for row in conn.execute(text(PLANS))]
    app.engine.dispose()
    for part in ("LEFT JOIN members", "FOR UPDATE", "UPDATE limit_accounts"):
        assert len([t for t in texts if part in t]) == 1, (part, texts)
