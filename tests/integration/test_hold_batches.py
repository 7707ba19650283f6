"""Group commit of holds (services/hold_batches.py): a batch answers exactly as the same requests one after another,
falls back to the single path when its transaction fails, and never overspends under real concurrency."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from seatmeter.adapters import limits_repo, metrics
from seatmeter.adapters.clock import FixedClock, SystemClock
from seatmeter.adapters.tables import holds as holds_table
from seatmeter.adapters.tables import limit_accounts
from seatmeter.adapters.tables_notify import notification_arming
from seatmeter.bootstrap import App, build
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import SeatmeterError, ServiceUnavailable
from seatmeter.services import billing, caps, credits, hold_batches, holds, organizations, seats
from seatmeter.settings import Settings
from tests.conftest import NOW, OPERATOR_KEY, Api, create_org, make_app

OPERATOR = Principal(PrincipalKind.OPERATOR)
UNKNOWN_MEMBER = "mem_not_in_this_org"


# -- set-up shared by the tests -------------------------------------------------------------------------
class Shop:
    """An organization with members, caps and credits, built through the services."""

    def __init__(
        self,
        app: App,
        *,
        members: int = 2,
        plan: str = "usage_based",
        credits_usd: str | None = "10.00",
        org_cap: str | None = None,
        member_caps: tuple[str | None, ...] = (),
        seatless: int = 0,
    ) -> None:
        now = app.clock.now()
        seat = "standard" if plan == "seat_based" else "enterprise"
        body = {
            "name": "Batch",
            "plan": plan,
            "channel": "self_serve" if credits_usd is not None else "sales_assisted",
            "term_start": "2026-01-01",
            "seat_prices": {seat: "10.00"},
            "primary_owner": {"email": "owner@batch.test", "name": "Owner"},
        }
        org, owner = organizations.create_organization(app.uow(), OPERATOR, body, now)
        self.id = org.id
        self.members = [owner.id] + [
            organizations.add_member(app.uow(), OPERATOR, org.id, {"email": f"m{i}@batch.test"}, now).id
            for i in range(members - 1 + seatless)
        ]
        seats.add_seats(app, OPERATOR, org.id, {"seat_type": seat, "quantity": members})
        for member_id in self.members[:members]:
            seats.assign_seat(app, OPERATOR, org.id, member_id, {"seat_type": seat})
        if plan == "seat_based":
            billing.set_allowances(app, OPERATOR, org.id, {"included_usage": {seat: "3.00"}})
        if credits_usd is not None:
            credits.buy_credits(app.uow(), OPERATOR, org.id, credits_usd, "credits", now)
        if org_cap is not None:
            caps.set_cap(app.uow(), OPERATOR, org.id, "organization", org_cap, now)
        for member_id, cap in zip(self.members, member_caps, strict=False):
            if cap is not None:
                caps.set_cap(app.uow(), OPERATOR, org.id, "member", cap, now, member_id=member_id)

    def body(self, key: str, member: int, amount: str | None = None, **extra: Any) -> dict[str, Any]:
        member_id = self.members[member] if member < len(self.members) else UNKNOWN_MEMBER
        estimate = {"amount": amount} if amount is not None else {"input_tokens": 1000, "max_output_tokens": 2000}
        return {"idempotency_key": key, "member_id": member_id, "model": "claude-sonnet-4-5", "surface": "api",
                "estimate": estimate, **extra}  # fmt: skip


def outcome(shop: Shop, answer: Any, hold_ids: dict[str, int]) -> tuple[Any, ...]:
    """An answer without what differs between two organizations: their ids, and the random hold ids."""
    if isinstance(answer, SeatmeterError):
        message = answer.message.replace(shop.id, "ORG")
        for i, member_id in enumerate(shop.members):
            message = message.replace(member_id, f"M{i}")
        return ("error", answer.code, message)
    hold = hold_ids.setdefault(answer.id, len(hold_ids))
    return ("hold", hold, answer.amount, answer.max_output_tokens, answer.expires_at, answer.status, answer.replayed)


def limit_rows(app: App, shop: Shop) -> list[tuple[Any, ...]]:
    """The organization's limit rows; a row that is all zeros exists or not as the path went (both mean 'unused')."""
    names = {f"member:{m}": f"member:{i}" for i, m in enumerate(shop.members)}
    with app.engine.connect() as conn:
        rows = conn.execute(select(limit_accounts).where(limit_accounts.c.organization_id == shop.id)).all()
    return sorted(
        (names.get(r.account, r.account), r.period, r.limit_nano, r.posted_nano, r.held_nano, r.overdraft_nano)
        for r in rows
        if (r.posted_nano, r.held_nano, r.overdraft_nano) != (0, 0, 0)
    )


def open_holds(app: App, shop: Shop) -> list[tuple[Any, ...]]:
    names = {m: i for i, m in enumerate(shop.members)}
    with app.engine.connect() as conn:
        rows = conn.execute(select(holds_table).where(holds_table.c.organization_id == shop.id)).all()
    return sorted((r.idempotency_key, names[r.member_id], r.amount_nano, r.max_output_tokens, r.status) for r in rows)


def stopped_limits(app: App, shop: Shop) -> list[tuple[Any, ...]]:
    names = {f"member:{m}": f"member:{i}" for i, m in enumerate(shop.members)}
    arming = notification_arming.c
    with app.engine.connect() as conn:
        rows = conn.execute(select(arming.account, arming.stopped).where(arming.organization_id == shop.id)).all()
    return sorted((names.get(r.account, r.account), r.stopped) for r in rows)


# -- a batch answers exactly as the same requests one after another ---------------------------------------
MONEY = st.sampled_from(["0.40", "1.00", "1.50", "2.50", "4.00"])
CAP = st.one_of(st.none(), st.sampled_from(["2.00", "3.00", "5.00", "8.00"]))
REQUEST = st.fixed_dictionaries({
    "key": st.sampled_from(["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"]),
    "member": st.integers(0, 3),  # 3: a member of no seat, or (with 3 members) not in the organization
    "amount": st.one_of(st.none(), MONEY),  # None: a token estimate (0.033 USD)
    "allow_partial": st.booleans(),
})  # fmt: skip
SHOP = st.fixed_dictionaries({
    "plan": st.sampled_from(["usage_based", "usage_based", "seat_based"]),
    "credits_usd": st.one_of(st.none(), st.sampled_from(["3.00", "6.00", "20.00"])),
    "org_cap": CAP,
    "member_caps": st.tuples(CAP, CAP, CAP),
    "seatless": st.integers(0, 1),
})  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shop_plan=SHOP,
    before=st.lists(REQUEST, max_size=4),
    batch=st.lists(REQUEST, min_size=2, max_size=12),
    overdue=st.booleans(),
)
def test_a_batch_answers_exactly_as_the_same_requests_one_after_another(
    app: App, clock: FixedClock, shop_plan: dict[str, Any], before: list[dict[str, Any]],
    batch: list[dict[str, Any]], overdue: bool,
) -> None:  # fmt: skip
    clock.set(NOW)
    one_by_one, batched = Shop(app, members=3, **shop_plan), Shop(app, members=3, **shop_plan)

    def body(shop: Shop, r: dict[str, Any]) -> dict[str, Any]:
        return shop.body(r["key"], r["member"], r["amount"], allow_partial=r["allow_partial"])

    def answer(shop: Shop, r: dict[str, Any]) -> Any:
        try:
            return holds.authorize(app, OPERATOR, shop.id, body(shop, r))
        except SeatmeterError as exc:
            return exc

    # Holds written before the batch: replayed by its keys, and (moved past their timeout) released by a refusal.
    for shop in (one_by_one, batched):
        for r in before:
            answer(shop, r)
    if overdue:
        clock.advance(seconds=app.settings.hold_timeout_s + 1)

    expected = [answer(one_by_one, r) for r in batch]
    prepared = [(OPERATOR, holds.prepare(app, OPERATOR, batched.id, body(batched, r))) for r in batch]
    got = hold_batches.run_batch(app, batched.id, prepared)

    ids_a: dict[str, int] = {}
    ids_b: dict[str, int] = {}
    assert [outcome(batched, a, ids_b) for a in got] == [outcome(one_by_one, a, ids_a) for a in expected]
    assert limit_rows(app, batched) == limit_rows(app, one_by_one)
    assert open_holds(app, batched) == open_holds(app, one_by_one)
    assert stopped_limits(app, batched) == stopped_limits(app, one_by_one)


def test_two_holds_of_one_batch_share_the_last_room_of_a_member_cap_in_arrival_order(app: App) -> None:
    shop = Shop(app, member_caps=("5.00",))
    requests = [shop.body("a", 0, "3.00"), shop.body("b", 0, "3.00"), shop.body("c", 0, "3.00", allow_partial=True)]
    got = hold_batches.run_batch(app, shop.id, [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, r)) for r in requests])
    assert isinstance(got[0], holds.HoldView) and str(got[0].amount) == "3.00"
    assert isinstance(got[1], SeatmeterError) and got[1].code == "member_cap_reached"
    assert isinstance(got[2], holds.HoldView) and str(got[2].amount) == "2.00"
    assert [r[4] for r in limit_rows(app, shop) if r[0] == "member:0"] == [5_000_000_000]


# -- the fallback: a failed batch transaction is run again request by request --------------------------------
def test_a_batch_whose_transaction_fails_answers_each_request_through_the_single_path(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(app, member_caps=("5.00",))
    holds.authorize(app, OPERATOR, shop.id, shop.body("old", 0, "1.00"))
    calls: list[int] = []

    def broken(*args: Any) -> None:
        calls.append(1)
        raise RuntimeError("reserve touched 1 of 3 limit rows; transaction rolled back")

    monkeypatch.setattr(hold_batches.limits_repo, "check_reserved", broken)
    requests = [shop.body("old", 0, "1.00"), shop.body("a", 0, "3.00"), shop.body("a", 0, "3.00"),
                shop.body("b", 0, "3.00"), shop.body("a", 1, "3.00")]  # fmt: skip
    got = hold_batches.run_batch(app, shop.id, [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, r)) for r in requests])
    assert calls == [1]
    assert [a.replayed if isinstance(a, holds.HoldView) else a.code for a in got] == [
        True, False, True, "member_cap_reached", "idempotency_conflict",
    ]  # fmt: skip
    assert isinstance(got[1], holds.HoldView) and isinstance(got[2], holds.HoldView) and got[1].id == got[2].id
    # Written once each: the failed transaction left nothing behind.
    assert [r[2] for r in open_holds(app, shop)] == [3_000_000_000, 1_000_000_000]
    assert [r[4] for r in limit_rows(app, shop) if r[0] == "member:0"] == [4_000_000_000]


def test_a_database_that_cannot_be_reached_answers_every_request_of_the_batch_with_service_unavailable(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(app)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ServiceUnavailable("the database cannot be reached right now; nothing was written")

    requests = [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, shop.body(k, 0, "1.00"))) for k in ("a", "b")]
    monkeypatch.setattr(hold_batches.orgs_repo, "organization_and_members_of", down)
    got = hold_batches.run_batch(app, shop.id, requests)
    assert [a.code for a in got if isinstance(a, SeatmeterError)] == ["service_unavailable"] * 2
    assert open_holds(app, shop) == []


def test_a_deadlocked_batch_is_run_again_request_by_request(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = Shop(app)
    real = hold_batches.limits_repo.lock_many
    calls: list[int] = []

    def deadlocked(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # as the unit of work reports PostgreSQL's deadlock_detected (40P01)
            cause = OperationalError("SELECT ... FOR UPDATE", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
            raise ServiceUnavailable("the database cannot be reached right now; nothing was written") from cause
        return real(*args)

    monkeypatch.setattr(hold_batches.limits_repo, "lock_many", deadlocked)
    requests = [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, shop.body(k, 0, "1.00"))) for k in ("a", "b")]
    got = hold_batches.run_batch(app, shop.id, requests)
    assert calls == [1]  # the single path locks with limits_repo.lock, not lock_many
    assert [isinstance(a, holds.HoldView) and not a.replayed for a in got] == [True, True]
    assert len(open_holds(app, shop)) == 2


def _authorize_elsewhere(app: App, shop: Shop, body: dict[str, Any]) -> holds.HoldView:
    """`holds.authorize` in another thread, so in a transaction of its own, committed before this returns: what
    another process does while the caller's batch is between its round trips."""
    answer: list[holds.HoldView] = []
    worker = threading.Thread(target=lambda: answer.append(holds.authorize(app, OPERATOR, shop.id, body)))
    worker.start()
    worker.join()
    return answer[0]


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[App]:
    """An App on the emptied PostgreSQL database, at NOW."""
    application = make_app(pg_url, FixedClock(NOW))
    yield application
    application.engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("rows_exist", [False, True])
def test_a_key_another_process_wins_during_the_batch_is_answered_as_its_replay(
    pg_app: App, monkeypatch: pytest.MonkeyPatch, rows_exist: bool
) -> None:
    app = pg_app
    shop = Shop(app)
    if rows_exist:  # the batch is decided before locking; else it creates member 0's period rows under the lock
        holds.authorize(app, OPERATOR, shop.id, shop.body("old", 0, "1.00"))
    pipelines = _pipelines(monkeypatch)
    requests = [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, shop.body(k, 0, "1.00"))) for k in ("a", "b")]
    real = hold_batches.orgs_repo.organization_and_members_of
    rival: list[holds.HoldView] = []

    def racing(*args: Any) -> Any:
        # After the batch's first round trip looked its keys up (with the organization and its members):
        # another process commits key "a" first (its own transaction).
        if not rival:
            rival.append(_authorize_elsewhere(app, shop, shop.body("a", 0, "1.00")))
        return real(*args)

    monkeypatch.setattr(hold_batches.orgs_repo, "organization_and_members_of", racing)
    got = hold_batches.run_batch(app, shop.id, requests)
    assert isinstance(got[0], holds.HoldView) and got[0].replayed and got[0].id == rival[0].id
    assert isinstance(got[1], holds.HoldView) and not got[1].replayed
    held = 3_000_000_000 if rows_exist else 2_000_000_000
    assert [r[4] for r in limit_rows(app, shop) if r[0] == "organization"] == [held]
    if rows_exist:  # the unique index refused the pipeline, which wrote nothing; the locked path answered
        assert pipelines[:2] == [(False, "ok"), (True, "UniqueViolation")]


def test_a_batch_integrity_error_falls_back_without_losing_a_request(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = Shop(app)
    real = hold_batches.run_together

    def duplicate(conn: Any, calls: Any) -> Any:
        inserts = [params for statement, params in calls if statement is holds._INSERT_HOLD]
        # The same key twice: the unique index refuses the batch (on PostgreSQL at the pipeline's end).
        return real(conn, [*calls, *[(holds._INSERT_HOLD, params[:1]) for params in inserts]])[: len(calls)]

    monkeypatch.setattr(hold_batches, "run_together", duplicate)
    requests = [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, shop.body(k, 0, "1.00"))) for k in ("a", "b", "c")]
    with pytest.raises(IntegrityError):
        hold_batches._transaction(app, shop.id, [p for _, p in requests])
    got = hold_batches.run_batch(app, shop.id, requests)
    assert [isinstance(a, holds.HoldView) and not a.replayed for a in got] == [True] * 3
    assert len(open_holds(app, shop)) == 3


def test_an_unexpected_failure_answers_its_batch_and_the_next_batch_still_runs(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(app)
    real = hold_batches.run_batch

    def flaky(*args: Any) -> Any:
        monkeypatch.setattr(hold_batches, "run_batch", real)
        raise RuntimeError("a bug in the batch")

    monkeypatch.setattr(hold_batches, "run_batch", flaky)
    coalescer = hold_batches.HoldBatches(app, max_batch=2)
    waiters = []
    for key in ("a", "b", "c", "d"):
        prepared = holds.prepare(app, OPERATOR, shop.id, shop.body(key, 0, "1.00"))
        waiters.append(hold_batches._Waiter(OPERATOR, prepared.request, prepared.now, prepared))
    coalescer._in_flight.add(shop.id)  # as if a batch were running: all four queue
    assert [coalescer._enqueue(shop.id, w) for w in waiters] == [None] * 4
    coalescer._chain(shop.id, coalescer._next(shop.id))
    assert [type(w.future.exception()).__name__ for w in waiters[:2]] == ["RuntimeError"] * 2
    assert [w.future.result().replayed for w in waiters[2:]] == [False, False]
    assert shop.id not in coalescer._in_flight and coalescer.batches == 2


# -- on PostgreSQL: decided on unlocked rows, locked and committed in the last round trip --------------------
def _pipelines(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, str]]:
    """Each `run_together` of the batch: (ends with the pipeline's COMMIT, "ok" or the error's class name)."""
    real = hold_batches.run_together
    seen: list[tuple[bool, str]] = []

    def spy(conn: Any, calls: Any) -> Any:
        commits = calls[-1][0] is hold_batches._COMMIT
        try:
            answers = real(conn, calls)
        except Exception as exc:
            seen.append((commits, type(exc.orig if hasattr(exc, "orig") else exc).__name__))
            raise
        seen.append((commits, "ok"))
        return answers

    monkeypatch.setattr(hold_batches, "run_together", spy)
    return seen


def _relocked(reason: str) -> int:
    """How many batches /metrics counts as decided again under the lock for `reason`, in this process."""
    line = f'seatmeter_hold_batches_relocked_total{{reason="{reason}"}} '
    return sum(int(x.removeprefix(line)) for x in metrics.render().splitlines() if x.startswith(line))


@pytest.mark.postgres
def test_a_batch_on_postgresql_reads_decides_and_commits_in_two_round_trips(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = pg_app
    shop = Shop(app, member_caps=("5.00",))
    holds.authorize(app, OPERATOR, shop.id, shop.body("old", 0, "1.00"))  # creates member 0's period rows
    holds.authorize(app, OPERATOR, shop.id, shop.body("old1", 1, "1.00"))
    pipelines = _pipelines(monkeypatch)
    relocked = [_relocked(reason) for reason in ("refused", "seat_based", "rows_missing", "failed")]
    requests = [shop.body("old", 0, "1.00"), shop.body("a", 0, "2.00"), shop.body("b", 1, "0.40"),
                shop.body("c", 0, "9.00", allow_partial=True), shop.body("a", 0, "2.00")]  # fmt: skip
    got = hold_batches.run_batch(app, shop.id, [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, r)) for r in requests])
    assert pipelines == [(False, "ok"), (True, "ok")]
    assert [_relocked(reason) for reason in ("refused", "seat_based", "rows_missing", "failed")] == relocked
    assert [(str(a.amount), a.replayed) for a in got if isinstance(a, holds.HoldView)] == [
        ("1.00", True), ("2.00", False), ("0.40", False), ("2.00", False), ("2.00", True),
    ]  # fmt: skip
    assert [r[4] for r in limit_rows(app, shop) if r[0] == "member:0"] == [5_000_000_000]
    assert [r[2] for r in open_holds(app, shop)] == [2_000_000_000, 400_000_000, 2_000_000_000,
                                                       1_000_000_000, 1_000_000_000]  # fmt: skip
    # The connection went back to the pool out of its transaction: the next use of it works.
    assert holds.authorize(app, OPERATOR, shop.id, shop.body("d", 1, "0.40")).replayed is False


@pytest.mark.postgres
@pytest.mark.parametrize("allow_partial", [False, True])
def test_a_grant_that_no_longer_fits_when_the_batch_commits_writes_nothing_and_is_decided_again_under_the_lock(
    pg_app: App, monkeypatch: pytest.MonkeyPatch, allow_partial: bool
) -> None:
    app = pg_app
    shop = Shop(app, member_caps=("5.00",))
    holds.authorize(app, OPERATOR, shop.id, shop.body("old", 0, "1.00"))
    holds.authorize(app, OPERATOR, shop.id, shop.body("old1", 1, "0.40"))  # member 1's period rows exist
    real = hold_batches.limits_repo.recent_rows_of
    rival: list[holds.HoldView] = []

    def racing(answer: Any) -> Any:
        # After the batch read the rows (4.00 of room for member 0), another process takes 3.00 of it.
        rows = real(answer)
        if not rival:
            rival.append(_authorize_elsewhere(app, shop, shop.body("r", 0, "3.00")))
        return rows

    monkeypatch.setattr(hold_batches.limits_repo, "recent_rows_of", racing)
    pipelines = _pipelines(monkeypatch)
    failed = _relocked("failed")
    requests = [shop.body("a", 0, "2.00", allow_partial=allow_partial), shop.body("b", 1, "0.40")]
    got = hold_batches.run_batch(app, shop.id, [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, r)) for r in requests])
    # The guard failed the pipeline (nothing written); the locked path decided on the rows as they are now.
    assert pipelines[:2] == [(False, "ok"), (True, "DivisionByZero")]
    assert _relocked("failed") == failed + 1
    if allow_partial:
        assert isinstance(got[0], holds.HoldView) and str(got[0].amount) == "1.00"
    else:
        assert isinstance(got[0], SeatmeterError) and got[0].code == "member_cap_reached"
    assert isinstance(got[1], holds.HoldView) and str(got[1].amount) == "0.40"
    held = 5_000_000_000 if allow_partial else 4_000_000_000
    assert [r[4] for r in limit_rows(app, shop) if r[0] == "member:0"] == [held]
    keys = sorted(r[0] for r in open_holds(app, shop))
    assert keys == (["a", "b", "old", "old1", "r"] if allow_partial else ["b", "old", "old1", "r"])


# -- the coalescer under real threads and processes ----------------------------------------------------------
def test_the_coalescer_answers_threads_as_the_single_path_would(app: App) -> None:
    shop = Shop(app, credits_usd="100.00", org_cap="30.00")
    answers: dict[int, Any] = {}

    def client(k: int) -> None:
        for i in range(5):
            try:
                answers[k * 10 + i] = app.hold_batches.authorize(OPERATOR, shop.id, shop.body(f"t{i}", k % 2, "1.00"))
            except SeatmeterError as exc:
                answers[k * 10 + i] = exc

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted = [a for a in answers.values() if isinstance(a, holds.HoldView)]
    conflicts = [a for a in answers.values() if isinstance(a, SeatmeterError)]
    # Keys t0..t4 are shared by all 8 threads with two different members: each key is granted once, and every
    # other use of it is either its replay (same member) or a conflict (the other member).
    assert len({a.id for a in granted}) == 5
    assert len([a for a in granted if a.replayed]) == 15
    assert len(conflicts) == 20 and {c.code for c in conflicts} == {"idempotency_conflict"}
    assert [r[4] for r in limit_rows(app, shop) if r[0] == "organization"] == [5_000_000_000]


HOT_THREADS = 16
HOT_PER_THREAD = 25


@pytest.fixture
def pg_hot(pg_url: str) -> Iterator[App]:
    app = build(Settings(database_url=pg_url, operator_key=OPERATOR_KEY, db_pool_size=HOT_THREADS),
                clock=SystemClock(), migrate=False)  # fmt: skip
    yield app
    app.hold_batches.close()
    app.engine.dispose()


def _hammer(app: App, org_id: str, members: list[str], tag: str, threads: int, per_thread: int) -> dict[str, int]:
    """Threads authorizing through the coalescer and settling or voiding half of their holds; the tally."""
    tally = {"granted": 0, "refused": 0, "settled": 0}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(k: int) -> None:
        try:
            for i in range(per_thread):
                body = {"idempotency_key": f"{tag}-{k}-{i}", "member_id": members[(k + i) % len(members)],
                        "model": "claude-sonnet-4-5", "surface": "api", "estimate": {"amount": "0.70"},
                        "allow_partial": i % 3 == 0}  # fmt: skip
                try:
                    view = app.hold_batches.authorize(OPERATOR, org_id, body)
                except SeatmeterError as exc:
                    assert exc.code in {"member_cap_reached", "organization_cap_reached", "credits_exhausted"}
                    with lock:
                        tally["refused"] += 1
                    continue
                with lock:
                    tally["granted"] += 1
                if i % 2 == 0:
                    holds.settle(app, OPERATOR, org_id, view.id, {"usage": {"input_tokens": 100, "output_tokens": 20}})
                    with lock:
                        tally["settled"] += 1
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if errors:
        raise errors[0]
    return tally


def _process_hammer(url: str, org_id: str, members: list[str], tag: str) -> None:
    app = build(Settings(database_url=url, operator_key=OPERATOR_KEY, db_pool_size=8), clock=SystemClock(),
                migrate=False)  # fmt: skip
    try:
        _hammer(app, org_id, members, tag, 8, HOT_PER_THREAD)
    finally:
        app.hold_batches.close()
        app.engine.dispose()


def _assert_ledger_matches(app: App, org_id: str) -> None:
    """No limit row over its limit; held equals the open holds on every row; the holds' amounts add up."""
    with app.engine.connect() as conn:
        rows = conn.execute(select(limit_accounts).where(limit_accounts.c.organization_id == org_id)).all()
        open_rows = conn.execute(
            select(holds_table.c.accounts, holds_table.c.member_id, holds_table.c.amount_nano).where(
                holds_table.c.organization_id == org_id, holds_table.c.status == "open"
            )
        ).all()
        count = conn.execute(
            select(func.count()).select_from(holds_table).where(holds_table.c.organization_id == org_id)
        ).scalar_one()
    assert count > 0
    held: dict[str, int] = {}
    for r in open_rows:
        for account in r.accounts.split(","):
            held[account] = held.get(account, 0) + r.amount_nano
    for row in rows:
        assert row.limit_nano is None or row.posted_nano + row.held_nano <= row.limit_nano, row
        assert row.held_nano == held.get(row.account, 0), row


@pytest.mark.postgres
def test_threads_hammering_one_organization_through_the_coalescer_never_overspend(pg_hot: App) -> None:
    app = pg_hot
    shop = Shop(app, members=6, credits_usd="100.00", org_cap="40.00", member_caps=("5.00", "9.00"))
    tally = _hammer(app, shop.id, shop.members, "t", HOT_THREADS, HOT_PER_THREAD)
    assert tally["granted"] + tally["refused"] == HOT_THREADS * HOT_PER_THREAD
    assert app.hold_batches.requests == HOT_THREADS * HOT_PER_THREAD
    assert app.hold_batches.batches < app.hold_batches.requests  # requests were coalesced
    assert tally["refused"] > 0  # the caps were reached: the race was at the limit, not below it
    _assert_ledger_matches(app, shop.id)


@pytest.mark.postgres
def test_two_processes_and_their_threads_hammering_one_organization_never_overspend(pg_hot: App) -> None:
    app = pg_hot
    shop = Shop(app, members=6, credits_usd="100.00", org_cap="40.00", member_caps=("5.00", "9.00"))
    url = app.engine.url.render_as_string(hide_password=False)
    spawn = multiprocessing.get_context("spawn")
    others = [spawn.Process(target=_process_hammer, args=(url, shop.id, shop.members, f"p{n}")) for n in range(2)]
    for p in others:
        p.start()
    for p in others:
        p.join(timeout=300)
    assert [p.exitcode for p in others] == [0, 0]
    _assert_ledger_matches(app, shop.id)
    with app.engine.connect() as conn:
        org_row = conn.execute(
            select(limit_accounts).where(
                limit_accounts.c.organization_id == shop.id, limit_accounts.c.account == "organization"
            )
        ).one()
    assert org_row.posted_nano + org_row.held_nano > 30_000_000_000  # both processes reached the cap


def test_expires_at_of_a_batched_hold_is_the_timeout_after_the_batch(app: App, clock: FixedClock) -> None:
    shop = Shop(app)
    requests = [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, shop.body(k, 0, "1.00"))) for k in ("a", "b")]
    got = hold_batches.run_batch(app, shop.id, requests)
    assert {a.expires_at for a in got if isinstance(a, holds.HoldView)} == {
        clock.now() + timedelta(seconds=app.settings.hold_timeout_s)
    }


# -- the API: concurrent HTTP holds still get correct replays and refusals ------------------------------------
def test_concurrent_http_holds_get_their_replays_and_refusals(api: Api, app: App) -> None:
    org = create_org(api)
    api.post(f"/v1/organizations/{org.id}/credits/purchases", {"amount": "100.00", "idempotency_key": "c"},
             key=org.owner_key, expect=201)  # fmt: skip
    api.put(f"/v1/organizations/{org.id}/caps/organization", {"limit": "5.00"}, key=org.owner_key, expect=200)
    path = f"/v1/organizations/{org.id}/holds"
    responses: list[tuple[str, int, Any]] = []
    lock = threading.Lock()

    def client(key: str) -> None:
        body = {"idempotency_key": key, "member_id": org.owner_id, "model": "claude-sonnet-4-5",
                "estimate": {"amount": "1.00"}}  # fmt: skip
        response = api.client.post(path, json=body, headers={"Authorization": f"Bearer {org.service_key}"})
        with lock:
            responses.append((key, response.status_code, response.json()))

    # Eight keys, each sent three times at once; the organization cap has room for five holds.
    threads = [threading.Thread(target=client, args=(f"h{k}",)) for _ in range(3) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_key: dict[str, list[tuple[int, Any]]] = {}
    for key, status, body in responses:
        by_key.setdefault(key, []).append((status, body))
    granted = []
    for key, answers in by_key.items():
        statuses = sorted(status for status, _ in answers)
        if statuses == [429, 429, 429]:
            assert {body["error"]["code"] for _, body in answers} == {"organization_cap_reached"}
        else:
            assert statuses == [200, 200, 201], answers
            assert len({repr(body) for _, body in answers}) == 1  # the replays answer the same hold, byte for byte
            granted.append(key)
    assert len(granted) == 5
    # Which five keys win depends on the threads' timing; a granted key sent again with another body conflicts.
    conflict = api.post(path, {"idempotency_key": granted[0], "member_id": org.owner_id, "model": "claude-sonnet-4-5",
                               "estimate": {"amount": "2.00"}}, key=org.service_key, expect=409)  # fmt: skip
    assert conflict["error"]["code"] == "idempotency_conflict"
    caps_now = api.get(f"/v1/organizations/{org.id}/caps", key=org.owner_key, expect=200)
    assert caps_now["organization"]["held"] == "5.00", caps_now


@pytest.mark.postgres
def test_the_replay_lookup_of_a_batch_probes_the_key_index_even_on_a_table_never_analyzed(pg_url: str) -> None:
    # Without statistics PostgreSQL believed an organization had ten holds, and answered the IN list with a scan
    # of all of them filtered by the keys: a batch's lookup grew with the organization's holds.
    app = make_app(pg_url, FixedClock(NOW), hold_timeout_s=24 * 3600)
    try:
        shop = Shop(app, members=2, credits_usd="1000.00")
        prepared = [(OPERATOR, holds.prepare(app, OPERATOR, shop.id, shop.body(f"seed-{i}", i % 2, "0.01")))
                    for i in range(300)]  # fmt: skip
        hold_batches.run_batch(app, shop.id, prepared)
        keys = ["seed-7", "seed-250", "absent"]
        with app.engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            cursor = psycopg.ClientCursor(dbapi)  # EXPLAIN takes no bound parameters: psycopg inlines them
            cursor.execute("SET plan_cache_mode = force_generic_plan")
            sql = hold_batches._REPLAYS_POSTGRES.postgres.replace("%(org)s", "$1").replace("%(keys)s", "$2")
            cursor.execute("PREPARE replays(text, text[]) AS " + sql)
            cursor.execute("EXPLAIN EXECUTE replays(%s, %s)", (shop.id, keys))
            plan = "\n".join(row[0] for row in cursor.fetchall())
            conn.rollback()
            found = hold_batches._stored(conn, shop.id, set(keys))
        assert "Bitmap" not in plan and "Seq Scan on holds" not in plan, plan
        assert "idempotency_key)::text = k.key" in plan, plan
        assert sorted(found) == ["seed-250", "seed-7"]
        assert found["seed-7"].member_id == shop.members[1] and found["seed-250"].member_id == shop.members[0]
    finally:
        app.hold_batches.close()
        app.engine.dispose()


def test_lock_many_reads_what_the_plain_read_reads_on_its_hand_written_path_and_on_its_general_one(app: App) -> None:
    shop = Shop(app, members=3, member_caps=("5.00",))
    holds.authorize(app, OPERATOR, shop.id, shop.body("seed", 0, "1.00"))  # member 0 and the organization have rows
    period = app.clock.now().strftime("%Y-%m")
    one_period = [("credits", ""), ("organization", period), (f"member:{shop.members[0]}", period),
                  (f"member:{shop.members[2]}", period)]  # fmt: skip  # member 2 has no row yet: created
    two_periods = [*one_period, ("organization", "2020-01")]  # the general path; the old period's row is created
    for keys in (one_period, one_period[1:], two_periods):
        with app.uow() as uow:
            locked = limits_repo.lock_many(uow.conn, shop.id, keys)
            assert locked == limits_repo.read(uow.conn, shop.id, keys)
            assert set(locked) == set(keys)
            assert locked[("organization", period)].held_nano == 1_000_000_000
            uow.commit()
