"""Holds: authorize an estimated cost against every limit at once, then settle, void or expire it.

authorize, in one transaction:
  1. lock the limit rows that apply (credits on self-serve, the organization's period, the member's
     period), in the fixed order of limits_repo;
  2. decide from the locked rows: all of the estimate, the part that fits (allow_partial), or a refusal
     naming the limit;
  3. add the grant to `held` on every row with one guarded UPDATE, and write the hold.
Settle posts the real cost and releases the hold, void and expiry release it. A hold changes state once,
by a conditional UPDATE on `status = 'open'`, so a settle racing an expiry can win only one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnClause, Connection, literal_column, select
from sqlalchemy.exc import IntegrityError

from seatmeter.adapters import close_fence, limits_repo, orgs_repo
from seatmeter.adapters.raw import Statement, from_db_time, to_db_time
from seatmeter.adapters.tables import holds, usage_events
from seatmeter.bootstrap import App
from seatmeter.domain import seats
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import Conflict, InvalidRequest, NotFound, UsageRefused
from seatmeter.domain.ids import new_id
from seatmeter.domain.limits import CREDITS, ORGANIZATION, Estimate, Grant, decide_grant, member_account
from seatmeter.domain.money import Money
from seatmeter.domain.periods import period_containing
from seatmeter.domain.pricing import Usage
from seatmeter.domain.usage import SETTLED_HOLD_KEY_PREFIX, HoldRequest, fingerprint, parse_usage
from seatmeter.services import entitlements, notifications
from seatmeter.services.uow import UnitOfWork

__all__ = [
    "HoldView",
    "Prepared",
    "Settled",
    "authorize",
    "authorize_prepared",
    "estimate_for",
    "expire_holds",
    "prepare",
    "settle",
    "void",
]

MAX_TIMEOUT_S = 24 * 3600


@dataclass(frozen=True)
class HoldView:
    id: str
    amount: Money
    max_output_tokens: int | None
    expires_at: datetime
    status: str
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "amount": str(self.amount),
            "expires_at": self.expires_at.isoformat(),
            "status": self.status,
        }
        if self.max_output_tokens is not None:
            out["max_output_tokens"] = self.max_output_tokens
        return out


@dataclass(frozen=True)
class Settled:
    event_id: str
    cost: Money
    exceeded_hold: bool

    def to_json(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "cost": str(self.cost), "exceeded_hold": self.exceeded_hold}


def _view(row: Any, replayed: bool = False) -> HoldView:
    return HoldView(row.id, Money(row.amount_nano), row.max_output_tokens, row.expires_at, row.status, replayed)


def _keys(accounts: str, period: str) -> list[tuple[str, str]]:
    return [(a, "" if a == CREDITS else period) for a in accounts.split(",")]


@dataclass(frozen=True)
class Prepared:
    """A hold request that passed validation and the caller's rights, with its estimate: ready to decide."""

    request: HoldRequest
    estimate: Estimate
    now: datetime


def authorize(app: App, principal: Principal, org_id: str, body: Any) -> HoldView:
    return authorize_prepared(app, principal, org_id, prepare(app, principal, org_id, body))


def prepare(app: App, principal: Principal, org_id: str, body: Any) -> Prepared:
    """Everything authorize checks before its transaction: the body, the caller's rights, the estimate."""
    request = HoldRequest.parse(body)
    principal.require_usage_writer(org_id, request.member_id)
    now = app.clock.now()
    return Prepared(request, estimate_for(app, request, now), now)


def estimate_for(app: App, request: HoldRequest, now: datetime) -> Estimate:
    book = app.prices.resolving(request.model)
    # Refuse an unknown model before holding anything, even for an amount estimate: its settle could never
    # be priced, so the hold would sit on the limits until it expired.
    book.price_at(request.model, now)
    if request.amount is not None:
        return Estimate(fixed_nano=request.amount.nano)
    return book.estimate(request.model, request.input_tokens, request.max_output_tokens, now)


def authorize_prepared(app: App, principal: Principal, org_id: str, prepared: Prepared) -> HoldView:
    """The single-request path: one transaction for this hold alone (also group commit's fallback)."""
    request, estimate, now = prepared.request, prepared.estimate, prepared.now
    try:
        return _authorize_once(app, principal, org_id, request, estimate, now)
    except UsageRefused as refused:
        notifications.usage_refused(app.engine, org_id, request.member_id, refused.code, now)
        raise
    except IntegrityError:
        # A concurrent request with the same idempotency key won; answer as its replay.
        return _authorize_once(app, principal, org_id, request, estimate, now)


def _authorize_once(
    app: App, principal: Principal, org_id: str, request: HoldRequest, estimate: Estimate, now: datetime
) -> HoldView:
    with app.uow() as uow:
        conn = uow.conn
        replay = _replay(conn, org_id, request)
        if replay is not None:
            return replay
        org, member = orgs_repo.organization_and_member(conn, org_id, request.member_id)
        seats.check_entitlement(member.seat_type, request.surface)
        period = period_containing(now, org.timezone, org.billing_anchor_day)
        accounts = ([CREDITS] if org.prepaid else []) + [member_account(request.member_id), ORGANIZATION]
        keys = _keys(",".join(accounts), period.key)
        try:
            grant = _decide(conn, org_id, keys, estimate, request, period.end)
        except UsageRefused:
            # Holds past their timeout may still be counted as held: release them and decide again.
            if not _expire_org(conn, org_id, now):
                raise
            try:
                grant = _decide(conn, org_id, keys, estimate, request, period.end)
            except UsageRefused:
                uow.commit()  # the overdue holds stay released even though this request is still refused
                raise
        entitlements.check_hold_allowance(conn, org, request.member_id, period.key, grant.amount_nano)
        limits_repo.reserve(conn, org_id, keys, grant.amount_nano)
        hold_id = new_id("hold")
        expires_at = now + timedelta(seconds=app.settings.hold_timeout_s)
        _INSERT_HOLD.run(conn, {
            "org": org_id, "id": hold_id, "key": request.idempotency_key, "fingerprint": request.fingerprint,
            "member_id": request.member_id, "model": request.model, "surface": request.surface,
            "amount": grant.amount_nano, "max_output_tokens": grant.max_output_tokens, "accounts": ",".join(accounts),
            "period": period.key, "now": to_db_time(conn, now), "expires_at": to_db_time(conn, expires_at),
        })  # fmt: skip
        uow.commit()
    return HoldView(hold_id, Money(grant.amount_nano), grant.max_output_tokens, expires_at, "open")


def _decide(
    conn: Connection,
    org_id: str,
    keys: list[tuple[str, str]],
    estimate: Estimate,
    request: HoldRequest,
    period_end: datetime,
) -> Grant:
    states = limits_repo.lock(conn, org_id, keys)
    return decide_grant([states[k] for k in keys], estimate, allow_partial=request.allow_partial, period_end=period_end)


_HOLD_COLUMNS = (
    "organization_id, id, fingerprint, member_id, model, surface, amount_nano, max_output_tokens, accounts, period, "
    "status, created_at, expires_at, event_id"
)
_REPLAY = Statement(f"SELECT {_HOLD_COLUMNS} FROM holds WHERE organization_id = :org AND idempotency_key = :key")
_FIND = Statement(f"SELECT {_HOLD_COLUMNS} FROM holds WHERE organization_id = :org AND id = :id")
_CLOSE = Statement(
    "UPDATE holds SET status = :status, closed_at = :now "
    "WHERE organization_id = :org AND id = :id AND status = 'open' AND expires_at > :now "
    f"RETURNING {_HOLD_COLUMNS}"
)
# Settle's own close of the hold. On PostgreSQL it also takes the close fence shared (adapters/close_fence.py),
# in the statement settle runs first anyway, so the INSERT of the event, a later statement, reads the last cutoff
# after the fence: no extra round trip.
_SETTLE_SQL = (
    "UPDATE holds SET status = 'settled', closed_at = :now, event_id = :event_id{fence} "
    "WHERE organization_id = :org AND id = :id AND status = 'open' AND expires_at > :now "
    f"RETURNING {_HOLD_COLUMNS}"
)
_SETTLE = Statement(
    _SETTLE_SQL.format(fence=""),
    postgres=f"WITH fence AS MATERIALIZED (SELECT {close_fence.LOCK_SHARED_PG} AS locked) "
    + _SETTLE_SQL.format(fence=" FROM fence"),
)
_CLOSE_EXPIRED = Statement(
    "UPDATE holds SET status = 'expired', closed_at = :now "
    "WHERE organization_id = :org AND id = :id AND status = 'open' "
    f"RETURNING {_HOLD_COLUMNS}"
)
_INSERT_HOLD = Statement(
    "INSERT INTO holds (organization_id, id, idempotency_key, fingerprint, member_id, model, surface, amount_nano, "
    "max_output_tokens, accounts, period, status, created_at, expires_at) VALUES (:org, :id, :key, :fingerprint, "
    ":member_id, :model, :surface, :amount, :max_output_tokens, :accounts, :period, 'open', :now, :expires_at)"
)
_INSERT_EVENT_SQL = (
    "INSERT INTO usage_events (organization_id, id, idempotency_key, fingerprint, member_id, model, surface, "
    "service_tier, occurred_at, period, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
    "cache_read_tokens, cost_nano, price_version, hold_id, exceeded_hold, recorded_at) VALUES (:org, :id, :key, "
    ":fingerprint, :member_id, :model, :surface, :tier, :occurred_at, :period, :input, :output, :cw5m, :cw1h, "
    ":cache_read, :cost, :price_version, :hold_id, :exceeded, {recorded_at})"
)
# `recorded_at` is now, or the organization's last cutoff if that is later (adapters/close_fence.py).
_INSERT_EVENT = Statement(
    _INSERT_EVENT_SQL.format(recorded_at=close_fence.LAST_CUTOFF_SQLITE),
    postgres=_INSERT_EVENT_SQL.format(recorded_at=close_fence.LAST_CUTOFF_PG),
)
_INSERT_LEDGER = Statement(
    "INSERT INTO ledger_entries (organization_id, id, kind, debit_account, credit_account, amount_nano, reference, "
    "created_at) VALUES (:org, :id, 'usage', :debit, 'revenue', :amount, :reference, :now)"
)


@dataclass(frozen=True)
class HoldRow:
    organization_id: str
    id: str
    fingerprint: str
    member_id: str
    model: str
    surface: str
    amount_nano: int
    max_output_tokens: int | None
    accounts: str
    period: str
    status: str
    created_at: datetime
    expires_at: datetime
    event_id: str | None

    @classmethod
    def of(cls, row: Any) -> HoldRow | None:
        if row is None:
            return None
        values = list(row)
        values[11], values[12] = from_db_time(values[11]), from_db_time(values[12])
        return cls(*values)


def _replay(conn: Connection, org_id: str, request: HoldRequest) -> HoldView | None:
    row = HoldRow.of(_REPLAY.run(conn, {"org": org_id, "key": request.idempotency_key}).first())
    return None if row is None else replay_of(row, request)


def replay_of(row: HoldRow, request: HoldRequest) -> HoldView:
    """The stored hold `request` repeats, as its replay; a conflict if the key was used for another request."""
    if row.fingerprint != request.fingerprint:
        raise key_conflict(request)
    return _view(row, replayed=True)


def key_conflict(request: HoldRequest) -> Conflict:
    return Conflict(
        f"idempotency_key {request.idempotency_key!r} was already used for a different hold",
        resume="Use a new idempotency_key for a new request.",
    )


def _find(conn: Connection, org_id: str, hold_id: str) -> HoldRow:
    row = HoldRow.of(_FIND.run(conn, {"org": org_id, "id": hold_id}).first())
    if row is None:
        raise NotFound(f"hold {hold_id!r} does not exist in this organization")
    return row


def _close(conn: Connection, org_id: str, hold_id: str, status: str, now: datetime) -> HoldRow | None:
    """Void or expire an open hold (an unexpired one, unless it is the expiry). None if it was not open.
    Settle has its own statement (_SETTLE), which records the event and takes the close fence."""
    params = {"org": org_id, "id": hold_id, "now": to_db_time(conn, now)}
    if status == "expired":
        return HoldRow.of(_CLOSE_EXPIRED.run(conn, params).first())
    return HoldRow.of(_CLOSE.run(conn, {**params, "status": status}).first())


def _not_open(row: Any, now: datetime) -> Conflict:
    state = "expired" if row.status == "open" and row.expires_at <= now else row.status
    return Conflict(
        f"hold {row.id} is {state}, not open; nothing was posted",
        code="hold_not_open",
        resume="Create a new hold, or record the usage with POST .../usage." if state == "expired" else "",
    )


def settle(app: App, principal: Principal, org_id: str, hold_id: str, body: Any) -> Settled:
    """Post the real cost of the request and release the hold. More than was held is posted too, and flagged."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object with usage")
    usage = parse_usage(body.get("usage"), required=("input_tokens", "output_tokens"))
    tier = body.get("service_tier", "standard")
    now = app.clock.now()
    # Read (and perhaps refresh) the price book before the transaction: a refresh opens its own connection,
    # which on SQLite would wait for the write lock this transaction holds.
    book = app.prices.get()
    with app.uow() as uow:
        conn = uow.conn
        event_id = new_id("evt")
        params = {"org": org_id, "id": hold_id, "now": to_db_time(conn, now), "event_id": event_id}
        row = HoldRow.of(_SETTLE.run(conn, params).first())
        if row is None:
            existing = _find(conn, org_id, hold_id)
            principal.require_usage_writer(org_id, existing.member_id)
            return _settle_replay(conn, existing, usage, tier, now)
        principal.require_usage_writer(org_id, row.member_id)
        priced = book.cost(row.model, usage, row.created_at, tier)
        cost = priced.cost
        at = params["now"]
        _INSERT_EVENT.run(conn, {
            "org": org_id, "id": event_id, "key": f"{SETTLED_HOLD_KEY_PREFIX}{hold_id}",
            "fingerprint": _settle_fingerprint(usage, tier),
            "member_id": row.member_id, "model": priced.model, "surface": row.surface, "tier": tier,
            "occurred_at": to_db_time(conn, row.created_at), "period": row.period, "input": usage.input,
            "output": usage.output, "cw5m": usage.cache_write_5m, "cw1h": usage.cache_write_1h,
            "cache_read": usage.cache_read, "cost": cost.nano, "price_version": priced.version_id, "hold_id": hold_id,
            "exceeded": cost.nano > row.amount_nano, "now": at,
        })  # fmt: skip
        if cost.nano > 0:
            payer = CREDITS if CREDITS in row.accounts.split(",") else "receivable"
            _INSERT_LEDGER.run(conn, {"org": org_id, "id": new_id("le"), "debit": payer, "amount": cost.nano,
                                      "reference": event_id, "now": at})  # fmt: skip
        keys = _keys(row.accounts, row.period)
        after = limits_repo.release(conn, org_id, keys, row.amount_nano, cost.nano)
        notifications.spend_posted(conn, org_id, dict.fromkeys(keys, cost.nano), now, rows=after)
        uow.commit()
    return Settled(event_id, cost, cost.nano > row.amount_nano)


def _settle_fingerprint(usage: Usage, tier: str) -> str:
    return fingerprint(tier, *usage.as_tuple())


def _settle_replay(conn: Connection, row: Any, usage: Usage, tier: str, now: datetime) -> Settled:
    """A settle sent again (a retry after a lost response) gets the first answer; anything else is refused."""
    if row.status == "settled":
        event = conn.execute(
            select(usage_events).where(
                usage_events.c.organization_id == row.organization_id,
                usage_events.c.idempotency_key == f"{SETTLED_HOLD_KEY_PREFIX}{row.id}",
            )
        ).one()
        if event.fingerprint == _settle_fingerprint(usage, tier):
            return Settled(event.id, Money(event.cost_nano), bool(event.exceeded_hold))
        raise Conflict(f"hold {row.id} was already settled with different usage", code="hold_not_open")
    raise _not_open(row, now)


def void(app: App, principal: Principal, org_id: str, hold_id: str) -> HoldView:
    """Release everything the hold reserved. Voiding a voided hold again is answered the same way."""
    now = app.clock.now()
    with app.uow() as uow:
        conn = uow.conn
        row = _close(conn, org_id, hold_id, "voided", now)
        if row is None:
            existing = _find(conn, org_id, hold_id)
            principal.require_usage_writer(org_id, existing.member_id)
            if existing.status == "voided":
                return _view(existing, replayed=True)
            raise _not_open(existing, now)
        principal.require_usage_writer(org_id, row.member_id)
        limits_repo.release(conn, org_id, _keys(row.accounts, row.period), row.amount_nano, 0)
        uow.commit()
    return _view(row)


# 'open' written into the statement, not bound: the planner then reads how rare open holds are from the
# column's statistics, as for any literal, whatever plan it makes of the statement's other parameters.
OPEN: ColumnClause[str] = literal_column("'open'")


def _expire_org(conn: Connection, org_id: str, now: datetime) -> int:
    """Release this organization's overdue holds from inside authorize, which already holds its limit rows.

    On PostgreSQL only the holds whose limit rows can be locked without waiting: this transaction holds the
    organization's row, the last in the lock order, so waiting here for another member's row would deadlock
    with that member's own authorize (which holds its member row and waits for the organization's). A hold
    skipped here is released by the sweeper, or by the next request that can take its rows.
    """
    stmt = select(holds.c.id, holds.c.accounts, holds.c.period).where(
        holds.c.organization_id == org_id, holds.c.status == OPEN, holds.c.expires_at <= now
    )
    if conn.dialect.name == "postgresql":
        # A hold locked by a settle in flight must not make us wait either.
        stmt = stmt.with_for_update(skip_locked=True)
    overdue = conn.execute(stmt).all()
    if overdue and conn.dialect.name == "postgresql":
        free = limits_repo.lock_available(conn, org_id, {k for r in overdue for k in _keys(r.accounts, r.period)})
        overdue = [r for r in overdue if set(_keys(r.accounts, r.period)) <= free]
    expired = 0
    for hold in overdue:
        row = _close(conn, org_id, hold.id, "expired", now)
        if row is not None:
            limits_repo.release(conn, org_id, _keys(row.accounts, row.period), row.amount_nano, 0)
            expired += 1
    return expired


def expire_holds(uow: UnitOfWork, now: datetime, batch: int = 500) -> int:
    """Expire open holds past their timeout, releasing what they held. Safe to run from several workers.

    The limit rows of the batch are locked first, per organization and in the fixed order of limits_repo,
    so a sweep never holds one member's row while it waits for another's that an authorize holds.
    """
    with uow:
        conn = uow.conn
        stmt = (
            select(holds.c.organization_id, holds.c.id, holds.c.accounts, holds.c.period)
            .where(holds.c.status == OPEN, holds.c.expires_at <= now)
            .order_by(holds.c.organization_id, holds.c.expires_at)
            .limit(batch)
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        overdue = conn.execute(stmt).all()
        by_org: dict[str, list[Any]] = {}
        for hold in overdue:
            by_org.setdefault(hold.organization_id, []).append(hold)
        expired = 0
        for org_id in sorted(by_org):
            keys = sorted({k for h in by_org[org_id] for k in _keys(h.accounts, h.period)})
            limits_repo.lock_rows(conn, org_id, keys)
            for hold in by_org[org_id]:
                row = _close(conn, org_id, hold.id, "expired", now)
                if row is not None:
                    limits_repo.release(conn, org_id, _keys(row.accounts, row.period), row.amount_nano, 0)
                    expired += 1
        uow.commit()
    return expired
