"""A batch of holds on PostgreSQL (services/hold_batches.py): its transaction plans its prepared statements once
(`SET LOCAL plan_cache_mode = force_generic_plan`), and each of its statements has one text whatever the batch's
size, so psycopg prepares it once per connection."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from seatmeter.adapters import metrics
from seatmeter.adapters.clock import FixedClock
from seatmeter.bootstrap import App
from seatmeter.services import hold_batches, holds
from tests.conftest import make_app
from tests.integration.test_hold_batches import OPERATOR, Shop

pytestmark = pytest.mark.postgres

PLANS = "SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements"
# A marker of each statement a batch runs on its first (decided before locking) path.
BATCH_STATEMENTS = {
    "replays": "CROSS JOIN LATERAL",
    "members": "LEFT JOIN members",
    "recent rows": "period = ANY",
    "lock": "FOR UPDATE",
    "reserve": "WITH reserved AS (UPDATE limit_accounts",
    "holds": "INSERT INTO holds",
}


def _batches(app: App, shop: Shop, sizes: list[int], amount: Any = "0.01", tag: str = "n") -> list[Any]:
    """Run one batch per size, of that many members' holds, on the one pooled connection; then that connection's
    prepared statements."""
    for n, size in enumerate(sizes):
        requests = [shop.body(f"{tag}{n}-{i}", i, amount(n) if callable(amount) else amount) for i in range(size)]
        answers = hold_batches.run_batch(app, shop.id, [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, r))
                                                        for r in requests])  # fmt: skip
        assert all(isinstance(answer, holds.HoldView) for answer in answers), answers
    with app.engine.connect() as conn:
        return list(conn.execute(text(PLANS)))


def _relocked() -> int:
    """Batches sent to the locked path so far in this process (/metrics)."""
    lines = metrics.render().splitlines()
    return sum(int(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("seatmeter_hold_batches_relocked"))


def test_a_batchs_statements_are_planned_once_never_with_each_runs_values(pg_url: str, clock: FixedClock) -> None:
    """Batches decided before locking (the path nearly every batch takes): once psycopg has prepared their
    statements (on the fifth run on a connection), twelve more batches plan none of them with their values."""
    app = make_app(pg_url, clock, db_pool_size=1)  # one connection: every batch runs on it
    shop = Shop(app, members=2, credits_usd="100.00")
    # The first batches create the period's limit rows on the locked path, which plans as the server's default says.
    before = {(row.name, row.statement): row for row in _batches(app, shop, [2] * 12, tag="a")}
    relocked = _relocked()
    after = _batches(app, shop, [2] * 12, tag="b")
    app.engine.dispose()
    assert _relocked() == relocked  # all twelve on the first path
    for name, marker in BATCH_STATEMENTS.items():
        # By name too: psycopg may have prepared a statement anew in between (a new name, its counts from zero).
        rows = [(before.get((row.name, row.statement)), row) for row in after if marker in row.statement]
        assert rows, (name, after)
        for earlier, now in rows:
            # Under the server's default the replay lookup was planned with its values at every run.
            assert now.custom_plans == (earlier.custom_plans if earlier else 0), (name, earlier, now)
            assert now.generic_plans > (earlier.generic_plans if earlier else 0), (name, earlier, now)


def test_the_setting_ends_with_the_batchs_transaction(pg_url: str, clock: FixedClock) -> None:
    """LOCAL: what else the connection runs afterwards is planned as the server's default says."""
    app = make_app(pg_url, clock, db_pool_size=1)
    shop = Shop(app, members=2, credits_usd="100.00")
    _batches(app, shop, [2])
    with app.engine.connect() as conn:
        mode = conn.execute(text("SHOW plan_cache_mode")).scalar_one()
    app.engine.dispose()
    assert mode == "auto"


def test_the_locked_path_is_planned_as_the_servers_default_says(
    pg_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal goes to the locked path, which releases overdue holds with `expires_at <= now`: a generic plan,
    not knowing `now`, read every hold of the organization there. The release sees the server's default."""
    app = make_app(pg_url, clock, db_pool_size=1)
    shop = Shop(app, members=2, credits_usd="100.00", org_cap="1.00")
    seen: list[str] = []
    release = holds._expire_org

    def watched(conn: Any, org_id: str, now: Any) -> int:
        seen.append(conn.execute(text("SHOW plan_cache_mode")).scalar_one())
        return release(conn, org_id, now)

    monkeypatch.setattr(holds, "_expire_org", watched)
    request = shop.body("over-the-cap", 0, "5.00")
    (answer,) = hold_batches.run_batch(app, shop.id, [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, request))])
    app.engine.dispose()
    assert getattr(answer, "code", None) == "organization_cap_reached", answer
    assert seen == ["auto"]


def test_batches_of_any_size_share_one_prepared_text_of_each_statement(pg_url: str, clock: FixedClock) -> None:
    """Batches of one to four members, three of each size (fewer than psycopg's five runs of any one text), with
    amounts on either side of 2**31 nano-USD (psycopg would type them as int4[] or int8[] arrays): one prepared
    statement each for the organization's members, the lock of the limit rows and the reserve."""
    app = make_app(pg_url, clock, db_pool_size=1)
    shop = Shop(app, members=4, credits_usd="1000.00")
    prepared = _batches(app, shop, [n % 4 + 1 for n in range(12)], amount=lambda n: "3.00" if n % 2 else "0.01")
    app.engine.dispose()
    for name in ("members", "lock", "reserve"):
        rows = [row for row in prepared if BATCH_STATEMENTS[name] in row.statement]
        assert len(rows) == 1, (name, prepared)
