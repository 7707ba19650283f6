"""Group commit of holds: the concurrent authorizations of one organization, decided in one transaction.

Every authorize of an organization locks the same organization limit row, so concurrent holds of one
organization queue on it, each holding it across several round trips. The coalescer (one per process, owned by
the App) turns that queue into batches:

- a request is parsed, checked against the caller's rights and estimated before it is queued, so bad input
  fails alone and writes nothing;
- if no batch of its organization is in flight, a batch starts at once with everything queued (no timer: an
  idle organization waits for nothing); requests that arrive meanwhile queue and form the next batch, of at
  most `max_batch`;
- a batch is one transaction (services/holds.py's sibling: it shares its statements and its release of
  overdue holds): one replay lookup for all its idempotency keys, the organization and its
  members in one read, the union of their limit rows locked once in the fixed order, then each request decided
  in arrival order with `decide_grant` against states that carry the earlier grants of the batch. A refusal is
  that request's own answer (after the same release of overdue holds as the single path); one guarded UPDATE
  reserves the per-row sums, one driver call inserts the holds, one commit;
- on PostgreSQL a batch (a lone request included) is first decided on rows read without a lock, in two round
  trips: the reads, then one pipeline that locks the rows in the fixed order, reserves with the guard, inserts
  the holds and commits, so the batches of other processes wait on the rows only while the server runs it. A
  grant that no longer fits then fails that pipeline, which writes nothing, and the batch is decided again under
  the lock as above; so is a batch with a refusal, a seat-based plan or a period row still to create
  (`_decided_before_locking`);
- a batch whose transaction fails (another process won an idempotency key, a deadlock, a broken invariant) is
  run again request by request through the single path, so each gets its own answer; a database that cannot
  be reached answers every request of the batch with the same 503 as the single path, without retrying.

The answers are those of running the batch's requests one after another through `holds.authorize`
(tests/integration/test_hold_batches.py proves it for random batches).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from seatmeter.adapters import limits_repo, metrics, orgs_repo
from seatmeter.adapters.raw import Call, Rows, Statement, run_together, to_db_time
from seatmeter.domain import seats
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import NotFound, SeatmeterError, ServiceUnavailable, UsageRefused
from seatmeter.domain.ids import new_id
from seatmeter.domain.limits import CREDITS, ORGANIZATION, Grant, LimitState, decide_grant, member_account
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization
from seatmeter.domain.periods import period_containing
from seatmeter.domain.usage import HoldRequest
from seatmeter.services import entitlements, holds, notifications

if TYPE_CHECKING:
    from seatmeter.bootstrap import App

__all__ = ["MAX_BATCH", "HoldBatches", "run_batch"]

MAX_BATCH = 256

Key = limits_repo.Key


@dataclass
class _Waiter:
    principal: Principal
    request: HoldRequest
    now: datetime
    prepared: holds.Prepared | None  # None until the estimate is made (the async entry makes it in the worker)
    future: Future[holds.HoldView] = field(default_factory=Future)


class HoldBatches:
    """The per-process coalescer of holds, keyed by organization."""

    def __init__(self, app: App, max_batch: int = MAX_BATCH) -> None:
        self._app = app
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queued: dict[str, list[_Waiter]] = {}
        self._in_flight: set[str] = set()
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0  # batches run, and the requests they carried: their ratio is the mean batch size
        self.requests = 0

    def authorize(self, principal: Principal, org_id: str, body: Any) -> holds.HoldView:
        """Blocking entry, for threads: the answer `holds.authorize` would give, decided with the concurrent
        holds of the organization. The caller that finds no batch in flight runs the batch in its own thread."""
        prepared = holds.prepare(self._app, principal, org_id, body)
        waiter = _Waiter(principal, prepared.request, prepared.now, prepared)
        batch = self._enqueue(org_id, waiter)
        if batch is not None:
            with contextlib.suppress(Exception):  # every waiter of the batch has its answer, an error included
                self._run(org_id, batch)
            following = self._next(org_id)
            if following is not None:
                self._pool().submit(self._chain, org_id, following)
        return waiter.future.result()

    async def authorize_async(self, principal: Principal, org_id: str, body: Any) -> holds.HoldView:
        """Async entry, for the API: the batch runs in a worker thread, never on the event loop.

        Parsing and the caller's rights are checked here (pure); the estimate, which may read the price book,
        is made in the worker before the transaction.
        """
        request = HoldRequest.parse(body)
        principal.require_usage_writer(org_id, request.member_id)
        waiter = _Waiter(principal, request, self._app.clock.now(), None)
        batch = self._enqueue(org_id, waiter)
        if batch is not None:
            self._pool().submit(self._chain, org_id, batch)
        return await asyncio.wrap_future(waiter.future)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # -- queueing ---------------------------------------------------------------------------------------
    def _enqueue(self, org_id: str, waiter: _Waiter) -> list[_Waiter] | None:
        """Queue the waiter; if no batch of the organization is in flight, return the batch to start now."""
        with self._lock:
            self._queued.setdefault(org_id, []).append(waiter)
            if org_id in self._in_flight:
                return None
            self._in_flight.add(org_id)
            return self._take(org_id)

    def _next(self, org_id: str) -> list[_Waiter] | None:
        """The next batch of the organization, or None (and no batch is in flight any more)."""
        with self._lock:
            if not self._queued.get(org_id):
                self._queued.pop(org_id, None)
                self._in_flight.discard(org_id)
                return None
            return self._take(org_id)

    def _take(self, org_id: str) -> list[_Waiter]:
        queued = self._queued[org_id]
        batch, self._queued[org_id] = queued[: self._max_batch], queued[self._max_batch :]
        self.batches += 1
        self.requests += len(batch)
        return batch

    def _chain(self, org_id: str, batch: list[_Waiter] | None) -> None:
        while batch is not None:
            with contextlib.suppress(Exception):  # every waiter of the batch has its answer, an error included
                self._run(org_id, batch)
            batch = self._next(org_id)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                workers = max(4, self._app.settings.db_pool_size)
                self._executor = ThreadPoolExecutor(workers, thread_name_prefix="seatmeter-holds")
            return self._executor

    # -- one batch --------------------------------------------------------------------------------------
    def _run(self, org_id: str, batch: list[_Waiter]) -> None:
        ready: list[_Waiter] = []
        try:
            for waiter in batch:
                if not waiter.future.set_running_or_notify_cancel():
                    continue  # its caller is gone: like a request that never arrived
                if waiter.prepared is None:
                    try:
                        estimate = holds.estimate_for(self._app, waiter.request, waiter.now)
                    except BaseException as exc:  # noqa: BLE001 - the request's own answer
                        waiter.future.set_exception(exc)
                        continue
                    waiter.prepared = holds.Prepared(waiter.request, estimate, waiter.now)
                ready.append(waiter)
            # A lone request: on SQLite the single path is cheaper; on PostgreSQL the batch's two round trips are.
            if len(ready) == 1 and self._app.engine.dialect.name != "postgresql":
                _single(self._app, org_id, ready[0])
            elif ready:
                requests = [(w.principal, w.prepared) for w in ready if w.prepared is not None]
                answers = run_batch(self._app, org_id, requests)
                for waiter, answer in zip(ready, answers, strict=True):
                    if isinstance(answer, BaseException):
                        waiter.future.set_exception(answer)
                    else:
                        waiter.future.set_result(answer)
        except BaseException as exc:
            for waiter in ready:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            raise


def _single(app: App, org_id: str, waiter: _Waiter) -> None:
    assert waiter.prepared is not None  # noqa: S101 - set by _run
    try:
        waiter.future.set_result(holds.authorize_prepared(app, waiter.principal, org_id, waiter.prepared))
    except BaseException as exc:  # noqa: BLE001 - the request's own answer
        waiter.future.set_exception(exc)


Answer = holds.HoldView | BaseException


def run_batch(app: App, org_id: str, requests: Sequence[tuple[Principal, holds.Prepared]]) -> list[Answer]:
    """Decide the requests of one organization in one transaction; the answers in the order of `requests`.

    Each answer is the view or the error `holds.authorize` would have given, run on the requests one after another.
    """
    try:
        answers = _transaction(app, org_id, [prepared for _, prepared in requests])
    except ServiceUnavailable as exc:
        if not _transaction_lost(exc):
            return _each(exc, len(requests))
        return _one_by_one(app, org_id, requests)
    except Exception:  # noqa: BLE001 - any failure of the batch: each request alone gets its own answer
        return _one_by_one(app, org_id, requests)
    for i, ((_, prepared), answer) in enumerate(zip(requests, answers, strict=True)):
        if isinstance(answer, UsageRefused):
            try:
                notifications.usage_refused(app.engine, org_id, prepared.request.member_id, answer.code,
                                            prepared.now)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - as on the single path, this error is the answer
                answers[i] = exc
    return answers


def _each(exc: SeatmeterError, n: int) -> list[Answer]:
    """One error for every request: each waiter raises its own copy (a raised exception carries its traceback)."""
    return [copy.copy(exc) for _ in range(n)]


# SQLSTATEs of a transaction the database gave up on while it stays reachable: a deadlock, a serialization
# failure, a lock that could not be taken. The unit of work reports them as unavailable, like a lost database.
_LOST_TRANSACTION = ("40", "55P03")


def _transaction_lost(exc: ServiceUnavailable) -> bool:
    """True when the batch's transaction was refused but the database answers: each request is worth a retry."""
    sqlstate = getattr(getattr(exc.__cause__, "orig", None), "sqlstate", None) or ""
    return sqlstate.startswith(_LOST_TRANSACTION)


def _one_by_one(app: App, org_id: str, requests: Sequence[tuple[Principal, holds.Prepared]]) -> list[Answer]:
    answers: list[Answer] = []
    for principal, prepared in requests:
        try:
            answers.append(holds.authorize_prepared(app, principal, org_id, prepared))
        except Exception as exc:  # noqa: BLE001 - the request's own answer
            answers.append(exc)
    return answers


@functools.cache
def _replays(n: int) -> Statement:
    keys = ", ".join(f":k{i}" for i in range(n))
    return Statement(
        f"SELECT {holds._HOLD_COLUMNS}, idempotency_key FROM holds WHERE organization_id = :org "
        f"AND idempotency_key IN ({keys})"
    )


# On PostgreSQL, one probe of the unique (organization_id, idempotency_key) index per key, whatever the planner
# believes. With the IN list (and with a plain join on unnest) a table without statistics (never analyzed:
# autovacuum off, or a table that grew faster than it) got a bitmap scan of every hold of the organization,
# filtered by the keys: 2-6 ms per batch at 13,000 holds, most of the batch's database time, and growing with the
# organization's holds. The LATERAL subquery with LIMIT is not flattened into a join, so it is a parameterized
# index scan on both columns, one row at most per key (the index is unique, so the LIMIT drops nothing).
_REPLAYS_POSTGRES = Statement(
    f"SELECT {holds._HOLD_COLUMNS}, idempotency_key FROM unnest(CAST(:keys AS text[])) AS k(key) "
    f"CROSS JOIN LATERAL (SELECT {holds._HOLD_COLUMNS}, idempotency_key FROM holds "
    "WHERE organization_id = :org AND idempotency_key = k.key LIMIT 1) AS h"
)


def _transaction(app: App, org_id: str, batch: list[holds.Prepared]) -> list[Answer]:
    if app.engine.dialect.name == "postgresql":
        answers = _decided_before_locking(app, org_id, batch)
        if answers is not None:
            return answers
    return _locked_transaction(app, org_id, batch)


# A COMMIT sent in the same pipeline as the writes (PostgreSQL): the rows stay locked only while the server runs
# the pipeline's last statements, not across round trips.
_COMMIT = Statement("COMMIT")

# The first statement of a batch's first (decided before locking) transaction on PostgreSQL, in the pipeline of its
# first round trip. Under the default (`auto`) a statement with parameters is planned with its values at its first
# five runs (psycopg prepares it on its fifth run on a connection) and then again at every run where the generic plan
# looks dearer to the planner: the replay lookup (its keys as an array, joined LATERAL to holds) was planned at every
# run, with statistics or without. `force_generic_plan` plans every statement with parameters in the transaction
# without its values, prepared or not, so it is set only where each statement picks its rows by keys through an
# index (the organization with an account, a member, an idempotency key) and the generic plan is the one the values
# would give: the first path, which hands any refusal to the locked path. Not the locked path: there the release of
# overdue holds has `expires_at <= now`, and a generic plan, not knowing `now`, guessed a third of the rows and read
# every hold of the organization (12.8 ms against 0.13 ms with 250,000 settled holds, a review's measurement).
# LOCAL: it ends with the transaction. A batch of 8 holds run alone: PostgreSQL's CPU per batch -14 to -18 %
# (docs/performance.md).
_GENERIC_PLANS = Statement("SET LOCAL plan_cache_mode = force_generic_plan")


def _done(answer: Rows | None) -> None:
    """Close the cursor of an answer that is not read (a SET has no rows)."""
    if answer is not None:
        answer.fetchall()


def _decided_before_locking(app: App, org_id: str, batch: list[holds.Prepared]) -> list[Answer] | None:
    """The batch in two round trips, on PostgreSQL, or None when only the locked path can answer it.

    The first reads the replays, the organization with its members and the limit rows of the batch's accounts,
    without locking them; the batch is decided on those rows; the second locks the rows in the fixed order,
    reserves with the guard, inserts the holds and commits. Concurrent batches of other processes then wait on
    the rows only while the server runs that last pipeline. The answers are those of deciding the batch at the
    moment of the first read: the guard holds every grant to the rows as they are when it runs, and a grant
    that no longer fits fails the whole pipeline (nothing is written). A refusal, which may need the release of
    overdue holds, a seat-based plan, whose allowance is read from other rows, a missing period row, a key
    another process just used, or any failure at all: None, and the caller decides again under the lock.
    """
    now = app.clock.now()
    try:
        with app.uow() as uow:
            conn = uow.conn
            members = {p.request.member_id for p in batch}
            plans, replays, found, rows = run_together(conn, [
                (_GENERIC_PLANS, {}),
                _stored_call(conn, org_id, {p.request.idempotency_key for p in batch}),
                orgs_repo.organization_and_members_call(org_id, list(members), postgres=True),
                limits_repo.recent_rows_call(org_id, [CREDITS, ORGANIZATION, *map(member_account, members)],
                                             ["", *_period_keys_near(now)]),
            ])  # fmt: skip
            _done(plans)
            stored = _stored_of(replays)
            org, seats_of = orgs_repo.organization_and_members_of(org_id, found)
            if org.plan == "seat_based":
                _relocked("seat_based")
                return None
            decider = _Decider(app, conn, org_id, org, seats_of, stored, now)
            decider.optimistic = True
            recent = limits_repo.recent_rows_of(rows)
            wanted = decider.wanted([p.request for p in batch if p.request.idempotency_key not in stored])
            if not wanted <= recent.keys():
                _relocked("rows_missing")
                return None
            decider.states = {key: recent[key] for key in wanted}
            answers: list[Answer] = []
            for prepared in batch:
                try:
                    answers.append(decider.decide(prepared))
                except UsageRefused:
                    _relocked("refused")
                    return None
                except SeatmeterError as exc:
                    answers.append(exc)
            decider.write_and_commit()
            uow.commit()  # the pipeline committed; this ends SQLAlchemy's transaction, with nothing to send
    except ServiceUnavailable as exc:
        if _transaction_lost(exc):
            _relocked("failed")
            return None
        raise
    except Exception:  # noqa: BLE001 - decided again under the lock, where each failure gets its own answer
        _relocked("failed")
        return None
    return answers


def _relocked(reason: str) -> None:
    """Count a batch sent to the locked path (/metrics): many `failed` mean batches of several processes racing."""
    metrics.count("seatmeter_hold_batches_relocked_total", reason=reason)


def _period_keys_near(now: datetime) -> set[str]:
    """The keys ("YYYY-MM", the month a period starts in, local time) a period containing `now` may have in any
    time zone with any anchor day: it started at most 31 days and 14 hours before, at most 14 hours after."""
    return {(now + timedelta(days=days)).strftime("%Y-%m") for days in (-33, 0, 1)}


def _locked_transaction(app: App, org_id: str, batch: list[holds.Prepared]) -> list[Answer]:
    now = app.clock.now()
    with app.uow() as uow:
        conn = uow.conn
        # The replays and the organization with its members: one round trip on PostgreSQL. Planned as the server's
        # default says (see _GENERIC_PLANS).
        replays, found = run_together(conn, [
            _stored_call(conn, org_id, {p.request.idempotency_key for p in batch}),
            orgs_repo.organization_and_members_call(org_id, [p.request.member_id for p in batch],
                                                    postgres=conn.dialect.name == "postgresql"),
        ])  # fmt: skip
        stored = _stored_of(replays)
        try:
            org, members = orgs_repo.organization_and_members_of(org_id, found)
        except NotFound as exc:
            return _each(exc, len(batch))
        decider = _Decider(app, conn, org_id, org, members, stored, now)
        decider.lock([p.request for p in batch if p.request.idempotency_key not in stored])
        answers: list[Answer] = []
        for prepared in batch:
            try:
                answers.append(decider.decide(prepared))
            except SeatmeterError as exc:
                answers.append(exc)
        decider.write()
        uow.commit()
    return answers


# Around the release of overdue holds, which the single path keeps or rolls back with the request that made it.
_SAVEPOINT = Statement("SAVEPOINT hold_batch_expiry")
_RELEASE_SAVEPOINT = Statement("RELEASE SAVEPOINT hold_batch_expiry")
_ROLLBACK_TO_SAVEPOINT = Statement("ROLLBACK TO SAVEPOINT hold_batch_expiry")


def _stored(conn: Connection, org_id: str, keys: set[str]) -> dict[str, holds.HoldRow]:
    """The holds already written under these idempotency keys, in one statement."""
    statement, params = _stored_call(conn, org_id, keys)
    return _stored_of(statement.run(conn, params))


def _stored_call(conn: Connection, org_id: str, keys: set[str]) -> tuple[Statement, dict[str, Any]]:
    ordered = sorted(keys)
    if conn.dialect.name == "postgresql":
        return _REPLAYS_POSTGRES, {"org": org_id, "keys": ordered}
    return _replays(len(ordered)), {"org": org_id, **{f"k{i}": k for i, k in enumerate(ordered)}}


def _stored_of(answer: Rows | None) -> dict[str, holds.HoldRow]:
    found = {row.idempotency_key: holds.HoldRow.of(tuple(row)[:-1]) for row in (answer or ())}
    return {key: row for key, row in found.items() if row is not None}


class _Decider:
    """The decisions of one batch, in arrival order, against limit states that carry the batch's grants."""

    def __init__(
        self,
        app: App,
        conn: Connection,
        org_id: str,
        org: Organization,
        members: dict[str, orgs_repo.MemberSeat],
        stored: dict[str, holds.HoldRow],
        now: datetime,
    ) -> None:
        self.conn, self.org_id, self.org, self.members, self.now = conn, org_id, org, members, now
        self.stored = stored
        self.period = period_containing(now, org.timezone, org.billing_anchor_day)
        self.expires_at = now + timedelta(seconds=app.settings.hold_timeout_s)
        self.at, self.expires_db = to_db_time(conn, now), to_db_time(conn, self.expires_at)
        self.states: dict[Key, LimitState] = {}
        self.granted: dict[Key, int] = {}
        self.fresh: dict[str, tuple[str, holds.HoldView]] = {}
        self.inserts: list[dict[str, Any]] = []
        self.expiry_tried = False
        self.optimistic = False  # decided on unlocked rows: a refusal is not final (see _decided_before_locking)

    def accounts(self, member_id: str) -> list[str]:
        return ([CREDITS] if self.org.prepaid else []) + [member_account(member_id), ORGANIZATION]

    def keys(self, member_id: str) -> list[Key]:
        return [(a, "" if a == CREDITS else self.period.key) for a in self.accounts(member_id)]

    def wanted(self, requests: list[HoldRequest]) -> set[Key]:
        """The rows of every request that may be granted (the single path creates a member's period row only for
        a request that gets as far as its decision)."""
        return {
            key
            for r in requests
            if r.member_id in self.members and _entitled(self.members[r.member_id].seat_type, r.surface)
            for key in self.keys(r.member_id)
        }

    def lock(self, requests: list[HoldRequest]) -> None:
        """Lock, once and in the fixed order, the rows of every request that may be granted."""
        wanted = self.wanted(requests)
        if wanted:
            self.states = limits_repo.lock_many(self.conn, self.org_id, wanted)

    def decide(self, prepared: holds.Prepared) -> holds.HoldView:
        request = prepared.request
        stored = self.stored.get(request.idempotency_key)
        earlier = self.fresh.get(request.idempotency_key)
        if earlier is not None:  # the same key earlier in this batch: its replay, as if it had committed
            fingerprint, view = earlier
            if fingerprint != request.fingerprint:
                raise holds.key_conflict(request)
            return replace(view, replayed=True)
        if stored is not None:
            return holds.replay_of(stored, request)
        member = self.members.get(request.member_id)
        if member is None:
            raise NotFound(f"member {request.member_id!r} is not in organization {self.org_id!r}")
        seats.check_entitlement(member.seat_type, request.surface)
        keys = self.keys(request.member_id)
        expired = False
        try:
            grant = self._grant(keys, prepared)
        except UsageRefused:
            if self.optimistic:
                raise
            # As on the single path: holds past their timeout may still be counted as held; release them
            # (once: a second try would find none) and decide again. A refusal keeps them released.
            if self.expiry_tried:
                raise
            self.expiry_tried = True
            _SAVEPOINT.run(self.conn, {})
            if not holds._expire_org(self.conn, self.org_id, self.now):
                _RELEASE_SAVEPOINT.run(self.conn, {})
                raise
            expired = True
            self._reread()
            grant = self._grant(keys, prepared)
        member_key = (member_account(request.member_id), self.period.key)
        try:
            pending_nano = self.granted.get(member_key, 0)
            entitlements.check_hold_allowance(self.conn, self.org, request.member_id, self.period.key,
                                              grant.amount_nano, pending_nano=pending_nano)  # fmt: skip
        except UsageRefused:
            if expired:
                # The single path's transaction rolls back here, and the release of the overdue holds with it.
                _ROLLBACK_TO_SAVEPOINT.run(self.conn, {})
                self.expiry_tried = False
                self._reread()
            raise
        if expired:
            _RELEASE_SAVEPOINT.run(self.conn, {})
        for key in keys:
            self.granted[key] = self.granted.get(key, 0) + grant.amount_nano
            self.states[key] = self.states[key].holding(grant.amount_nano)
        hold_id = new_id("hold")
        self.inserts.append({
            "org": self.org_id, "id": hold_id, "key": request.idempotency_key, "fingerprint": request.fingerprint,
            "member_id": request.member_id, "model": request.model, "surface": request.surface,
            "amount": grant.amount_nano, "max_output_tokens": grant.max_output_tokens,
            "accounts": ",".join(self.accounts(request.member_id)), "period": self.period.key, "now": self.at,
            "expires_at": self.expires_db,
        })  # fmt: skip
        view = holds.HoldView(hold_id, Money(grant.amount_nano), grant.max_output_tokens, self.expires_at, "open")
        self.fresh[request.idempotency_key] = (request.fingerprint, view)
        return view

    def _grant(self, keys: list[Key], prepared: holds.Prepared) -> Grant:
        return decide_grant([self.states[k] for k in keys], prepared.estimate,
                            allow_partial=prepared.request.allow_partial, period_end=self.period.end)  # fmt: skip

    def _reread(self) -> None:
        """What an expiry (or its undoing) changed: the locked rows, with the batch's grants on top, and the
        holds a replay later in the batch reads (one may have expired just now)."""
        rows = limits_repo.read(self.conn, self.org_id, self.states)
        self.states = {key: state.holding(self.granted.get(key, 0)) for key, state in rows.items()}
        if self.stored:
            self.stored = _stored(self.conn, self.org_id, set(self.stored))

    def write(self) -> None:
        if not self.inserts:
            return
        # The guarded UPDATE and the inserts in one round trip on PostgreSQL; its row count checked before commit.
        reserved, _ = run_together(self.conn, [
            limits_repo.reserve_many_call(self.org_id, self.granted, postgres=self.conn.dialect.name == "postgresql"),
            (holds._INSERT_HOLD, self.inserts),
        ])  # fmt: skip
        limits_repo.check_reserved(reserved, self.granted)

    def write_and_commit(self) -> None:
        """With anything to write: the rows locked, the guarded reserve, the holds and the COMMIT in one round
        trip (PostgreSQL)."""
        if not self.inserts:
            return
        calls: list[Call] = [*limits_repo.reserve_many_or_fail_call(self.org_id, self.granted)]
        run_together(self.conn, [*calls, (holds._INSERT_HOLD, self.inserts), (_COMMIT, {})])


def _entitled(seat_type: str | None, surface: str) -> bool:
    try:
        seats.check_entitlement(seat_type, surface)
    except SeatmeterError:
        return False
    return True
