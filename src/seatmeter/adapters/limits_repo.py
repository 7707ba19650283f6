"""Limit accounts in the database: lock, reserve, settle, post. The only code that writes their counters.

Rows are always locked and updated in one order, by (account, period): 'credits' < 'member:…' <
'organization'. Two transactions that touch the same organization therefore queue on the first row they
share and can never deadlock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from psycopg.types.numeric import Int8
from sqlalchemy import Connection, and_, case, literal, select, tuple_, update

from seatmeter.adapters.raw import Rows, Statement
from seatmeter.adapters.sql import insert_ignore, upsert
from seatmeter.adapters.tables import caps
from seatmeter.adapters.tables import limit_accounts as la
from seatmeter.domain.errors import SeatmeterError
from seatmeter.domain.limits import CREDITS, ORGANIZATION, LimitState

__all__ = [
    "Key",
    "caps_for",
    "ensure",
    "lock",
    "lock_available",
    "lock_many",
    "lock_rows",
    "post",
    "read",
    "recent_rows_call",
    "recent_rows_of",
    "release",
    "reserve",
    "reserve_many",
    "reserve_many_or_fail_call",
    "set_ceiling",
]

Key = tuple[str, str]  # (account, period)


def _where(org_id: str, keys: Iterable[Key]) -> object:
    return and_(la.c.organization_id == org_id, tuple_(la.c.account, la.c.period).in_(sorted(set(keys))))


def _state(row: object) -> LimitState:
    return LimitState(row.account, row.limit_nano, row.posted_nano, row.held_nano)  # type: ignore[attr-defined]


def _states(rows: Iterable[Any]) -> dict[Key, LimitState]:
    """Limit rows read (account, period, limit_nano, posted_nano, held_nano), by their key."""
    return {(r.account, r.period): _state(r) for r in rows}


def read(conn: Connection, org_id: str, keys: Iterable[Key]) -> dict[Key, LimitState]:
    rows = conn.execute(select(la).where(_where(org_id, keys)))  # type: ignore[arg-type]
    return _states(rows)


# The new overdraft when posted + held grows by `added`: the larger of the old one and the new excess over the limit.
# Every statement that posts spend it cannot refuse sets it; a hold (reserve) never does.
_OVERDRAFT = (
    "CASE WHEN limit_nano IS NOT NULL AND posted_nano + held_nano + {added} - limit_nano > overdraft_nano "
    "THEN posted_nano + held_nano + {added} - limit_nano ELSE overdraft_nano END"
)
_ROWS = "organization_id = :org AND account IN (:a0, :a1, :a2) AND period IN (:p, '')"
_LOCK = Statement(
    f"SELECT account, period, limit_nano, posted_nano, held_nano FROM limit_accounts WHERE {_ROWS} "
    "ORDER BY account, period",
    postgres_suffix="FOR UPDATE",
)
_RESERVE = Statement(
    f"UPDATE limit_accounts SET held_nano = held_nano + :x WHERE {_ROWS} "
    "AND (limit_nano IS NULL OR posted_nano + held_nano + :x <= limit_nano)"
)
_RELEASE = Statement(
    "UPDATE limit_accounts SET held_nano = held_nano - :held, posted_nano = posted_nano + :posted, "
    f"overdraft_nano = {_OVERDRAFT.format(added=':posted - :held')} WHERE {_ROWS} "
    "RETURNING account, period, limit_nano, posted_nano, held_nano"
)


def _hold_params(org_id: str, keys: Sequence[Key]) -> dict[str, Any]:
    """The rows of one hold: credits (period '') and at most two accounts of one period."""
    return {"org": org_id, **_hold_rows(tuple(keys))}


@functools.lru_cache(maxsize=4096)
def _hold_rows(keys: tuple[Key, ...]) -> Mapping[str, str]:
    # A pure function of the keys, run three times for every hold: memoized (a member's keys repeat all period).
    accounts = sorted({account for account, _ in keys})
    periods = {period for account, period in keys if account != CREDITS}
    if not 1 <= len(accounts) <= 3 or len(periods) > 1:
        raise ValueError(f"not the limit rows of one hold: {sorted(keys)}")
    padded = accounts + [accounts[-1]] * (3 - len(accounts))
    return {"a0": padded[0], "a1": padded[1], "a2": padded[2], "p": next(iter(periods), "")}


def lock(conn: Connection, org_id: str, keys: Sequence[Key]) -> dict[Key, LimitState]:
    """Read and lock the rows of one hold, in the fixed order. Creates missing period rows from the caps first."""
    params = _hold_params(org_id, keys)
    return _creating_missing(conn, org_id, keys, lambda: _locked(conn, params))


def _creating_missing(
    conn: Connection, org_id: str, keys: Iterable[Key], read: Callable[[], dict[Key, LimitState]]
) -> dict[Key, LimitState]:
    """`read()` the rows; if some of `keys` have no row yet, create them from the caps and read again."""
    found = read()
    missing = [k for k in keys if k not in found]
    if missing:
        ensure(conn, org_id, missing)
        found = read()
    return found


def lock_rows(conn: Connection, org_id: str, keys: Iterable[Key]) -> None:
    """Lock the existing rows of any number of holds, waiting, in the fixed order (the sweeper's batch)."""
    stmt = (
        select(la.c.account, la.c.period)
        .where(_where(org_id, keys))  # type: ignore[arg-type]
        .order_by(la.c.account, la.c.period)
        .with_for_update()
    )
    conn.execute(stmt).all()


def lock_available(conn: Connection, org_id: str, keys: Iterable[Key]) -> set[Key]:
    """Lock, without waiting, the existing rows no other transaction holds (PostgreSQL); return their keys.

    Rows this transaction already holds count as available.
    """
    stmt = (
        select(la.c.account, la.c.period)
        .where(_where(org_id, keys))  # type: ignore[arg-type]
        .order_by(la.c.account, la.c.period)
        .with_for_update(skip_locked=True)
    )
    return {(r.account, r.period) for r in conn.execute(stmt)}


def _locked(conn: Connection, params: dict[str, Any]) -> dict[Key, LimitState]:
    return _locked_with(_LOCK, conn, params)


def _locked_with(statement: Statement, conn: Connection, params: dict[str, Any]) -> dict[Key, LimitState]:
    rows: Sequence[Any] = statement.run(conn, params).fetchall()
    return _states(rows)


def caps_for(conn: Connection, org_id: str, accounts: Iterable[str]) -> dict[str, int | None]:
    """The ceiling each account gets when its period row is created: the organization cap, the member's own
    cap, else the default member cap, else unlimited (None)."""
    rows = {
        (r.scope, r.member_id): r.limit_nano for r in conn.execute(select(caps).where(caps.c.organization_id == org_id))
    }
    out: dict[str, int | None] = {}
    for account in accounts:
        if account == ORGANIZATION:
            out[account] = rows.get(("organization", ""))
        else:
            member_id = account.removeprefix("member:")
            out[account] = (
                rows[("member", member_id)] if ("member", member_id) in rows else rows.get(("member_default", ""))
            )
    return out


def ensure(conn: Connection, org_id: str, keys: Sequence[Key]) -> None:
    """Create period rows that do not exist yet, with the ceiling the caps give them now."""
    period_keys = [k for k in keys if k[0] != CREDITS]
    if len(period_keys) != len(keys):
        raise SeatmeterError("this organization has no credit account: credits are for self-serve organizations")
    ceilings = caps_for(conn, org_id, {account for account, _ in period_keys})
    conn.execute(
        insert_ignore(conn, la),
        [
            {
                "organization_id": org_id,
                "account": a,
                "period": p,
                "limit_nano": ceilings[a],
                "posted_nano": 0,
                "held_nano": 0,
                "overdraft_nano": 0,
            }
            for a, p in sorted(period_keys)
        ],
    )


def reserve(conn: Connection, org_id: str, keys: Sequence[Key], amount_nano: int) -> None:
    """Hold `amount_nano` against every row, guarded: if any row lacks the room, nothing is held.

    The caller has decided from locked rows, so a short count here means a broken invariant, not a race.
    """
    result = _RESERVE.run(conn, {**_hold_params(org_id, keys), "x": amount_nano})
    if result.rowcount != len(set(keys)):
        raise RuntimeError(f"reserve touched {result.rowcount} of {len(set(keys))} limit rows; transaction rolled back")


def lock_many(conn: Connection, org_id: str, keys: Iterable[Key]) -> dict[Key, LimitState]:
    """Read and lock the rows of many holds of one organization (a group commit), in the fixed order.

    Creates missing period rows from the caps first, as `lock` does. The rows of one period (and credits), a
    batch's, are read by a hand-written statement: built by Core, its tuple IN list was a third of a batch's CPU.
    """
    wanted = sorted(set(keys))
    period = _batch_period(wanted)
    if period is None:
        stmt = select(la).where(_where(org_id, wanted)).order_by(la.c.account, la.c.period)  # type: ignore[arg-type]
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return _creating_missing(conn, org_id, wanted, lambda: _states(conn.execute(stmt)))
    statement, params = _many(org_id, period, wanted, conn.dialect.name == "postgresql")
    return _creating_missing(conn, org_id, wanted, lambda: _locked_with(statement, conn, params))


def _many(org_id: str, period: str, keys: Sequence[Key], postgres: bool) -> tuple[Statement, dict[str, Any]]:
    """The lock of a batch's rows and the parameters that name them (`keys` sorted): on PostgreSQL the accounts
    as one array, so that the statement has one text whatever their number; on SQLite one parameter each."""
    params: dict[str, Any] = {"org": org_id, "p": period}
    if postgres:
        params["accounts"] = [account for account, _ in keys]
        return _LOCK_MANY_POSTGRES, params
    for i, (account, _) in enumerate(keys):
        params[f"a{i}"] = account
    return _lock_many(len(keys)), params


def _batch_period(keys: Sequence[Key]) -> str | None:
    """The one period of these rows (credits aside; '' for credits alone), or None if they are not the rows of
    one period and credits: the shape a batch's statements (`_lock_many`, `_reserve_many`) are written for."""
    periods = {period for account, period in keys if account != CREDITS}
    if len(periods) > 1 or any((account == CREDITS) != (period == "") for account, period in keys):
        return None
    return next(iter(periods), "")


@functools.cache
def _lock_many(n: int) -> Statement:
    # SQLite's text (no row locks there: the transaction holds the file's write lock); PostgreSQL's, which locks
    # the rows, is _LOCK_MANY_POSTGRES. Within one organization and one period (and credits, period ''), the
    # account names the row.
    accounts = ", ".join(f":a{i}" for i in range(n))
    return Statement(
        "SELECT account, period, limit_nano, posted_nano, held_nano FROM limit_accounts "
        f"WHERE organization_id = :org AND account IN ({accounts}) AND period IN (:p, '') ORDER BY account, period"
    )


# PostgreSQL's texts of a batch's lock and reserve take the accounts (and amounts) as arrays: one text for any
# number of rows, which psycopg prepares once per connection. With one text per number of rows, a connection
# prepared each only after its fifth run and kept at most 100, so many runs were parsed and planned anew.
_LOCK_MANY_POSTGRES = Statement(
    "SELECT account, period, limit_nano, posted_nano, held_nano FROM limit_accounts WHERE organization_id = :org "
    "AND account = ANY(CAST(:accounts AS text[])) AND period IN (:p, '') ORDER BY account, period FOR UPDATE"
)
_RESERVE_MANY_SQL = (
    "UPDATE limit_accounts AS l SET held_nano = l.held_nano + v.x "
    "FROM unnest(CAST(:accounts AS text[]), CAST(:amounts AS bigint[])) AS v(account, x) "
    "WHERE l.organization_id = :org AND l.account = v.account AND l.period IN (:p, '') "
    "AND (l.limit_nano IS NULL OR l.posted_nano + l.held_nano + v.x <= l.limit_nano)"
)
_RESERVE_MANY_POSTGRES = Statement(_RESERVE_MANY_SQL)
# The reserve that fails unless it touched all `:n` rows (a division by zero), for a pipeline that commits.
_RESERVE_MANY_OR_FAIL_POSTGRES = Statement(
    f"WITH reserved AS ({_RESERVE_MANY_SQL} RETURNING 1) SELECT 1 / CAST(count(*) = :n AS integer) FROM reserved"
)


@functools.cache
def _reserve_many(n: int) -> Statement:
    # One row per account: within one organization and one period, the account names the row.
    delta = "CASE account " + " ".join(f"WHEN :a{i} THEN :x{i}" for i in range(n)) + " END"
    accounts = ", ".join(f":a{i}" for i in range(n))
    return Statement(
        f"UPDATE limit_accounts SET held_nano = held_nano + {delta} WHERE organization_id = :org "
        f"AND account IN ({accounts}) AND period IN (:p, '') "
        f"AND (limit_nano IS NULL OR posted_nano + held_nano + {delta} <= limit_nano)"
    )


def reserve_many(conn: Connection, org_id: str, amounts: Mapping[Key, int]) -> None:
    """Hold a different amount on each row, in one guarded UPDATE: if any row lacks the room, raise.

    The rows are those of one organization in one period (and its credits). As for `reserve`, the caller has
    decided from locked rows, so a short count means a broken invariant; the caller's transaction rolls back.
    """
    statement, params = reserve_many_call(org_id, amounts, postgres=conn.dialect.name == "postgresql")
    check_reserved(statement.run(conn, params), amounts)


def reserve_many_call(org_id: str, amounts: Mapping[Key, int], *, postgres: bool) -> tuple[Statement, dict[str, Any]]:
    """The statement of `reserve_many`, for `raw.run_together`; give its answer to `check_reserved`."""
    keys = sorted(amounts)
    period = _batch_period(keys)
    if not keys or period is None:
        raise ValueError(f"not the limit rows of one organization and period: {keys}")
    _, params = _many(org_id, period, keys, postgres)
    if postgres:
        # As int8 whatever their size: psycopg types a list of ints by its largest value (int2[], int4[], int8[]),
        # and each type would be a statement of its own to prepare.
        params["amounts"] = [Int8(amounts[key]) for key in keys]
        return _RESERVE_MANY_POSTGRES, params
    for i, key in enumerate(keys):
        params[f"x{i}"] = amounts[key]
    return _reserve_many(len(keys)), params


# PostgreSQL only: the rows of some accounts in some periods, read without a lock, for a batch that decides first
# and locks in its commit's round trip (services/hold_batches.py). One text for any number of accounts, so psycopg
# prepares it once.
_RECENT_ROWS = Statement(
    "SELECT account, period, limit_nano, posted_nano, held_nano FROM limit_accounts WHERE organization_id = :org "
    "AND account = ANY(CAST(:accounts AS text[])) AND period = ANY(CAST(:periods AS text[]))"
)


def recent_rows_call(org_id: str, accounts: Iterable[str], periods: Iterable[str]) -> tuple[Statement, dict[str, Any]]:
    """The rows of `accounts` in `periods`, unlocked (PostgreSQL), for `raw.run_together`; read by `recent_rows_of`."""
    return _RECENT_ROWS, {"org": org_id, "accounts": sorted(set(accounts)), "periods": sorted(set(periods))}


def recent_rows_of(answer: Rows | None) -> dict[Key, LimitState]:
    return _states(answer.fetchall() if answer is not None else ())


def reserve_many_or_fail_call(org_id: str, amounts: Mapping[Key, int]) -> list[tuple[Statement, dict[str, Any]]]:
    """`reserve_many` for a pipeline that commits in the same round trip (PostgreSQL): lock the rows in the fixed
    order, then reserve; if any row lacks the room, the statement fails (division by zero, SQLSTATE 22012), the
    transaction is aborted and the pipeline's COMMIT does nothing. The caller decided from unlocked rows, so here
    a short count is a race lost, not a broken invariant: the caller decides again under the lock."""
    _, params = reserve_many_call(org_id, amounts, postgres=True)
    return [(_LOCK_MANY_POSTGRES, params), (_RESERVE_MANY_OR_FAIL_POSTGRES, {**params, "n": len(amounts)})]


def check_reserved(answer: Rows | None, amounts: Mapping[Key, int]) -> None:
    touched = -1 if answer is None else answer.rowcount
    if touched != len(amounts):
        raise RuntimeError(f"reserve touched {touched} of {len(amounts)} limit rows; transaction rolled back")


def release(
    conn: Connection, org_id: str, keys: Sequence[Key], held_nano: int, posted_nano: int
) -> dict[Key, LimitState]:
    """End a hold: release what it held and post what it cost (0 for a void or an expiry). Returns the rows."""
    params = _hold_params(org_id, keys)
    if conn.dialect.name == "postgresql":
        # Lock in the fixed order first, as authorize does: a bare UPDATE locks rows in whatever order its
        # plan visits them, and a settle and an authorize of one organization could then deadlock.
        _LOCK.run(conn, params).fetchall()
    rows: Sequence[Any] = _RELEASE.run(conn, {**params, "held": held_nano, "posted": posted_nano}).fetchall()
    if len(rows) != len(set(keys)):
        raise RuntimeError(f"release touched {len(rows)} of {len(set(keys))} limit rows")
    return _states(rows)


def post(conn: Connection, org_id: str, amounts: Mapping[Key, int]) -> None:
    """Post usage recorded without a hold. Always accepted; creates period rows as needed, in key order."""
    keys = sorted(k for k, v in amounts.items() if v > 0)
    if not keys:
        return
    ceilings = caps_for(conn, org_id, {a for a, _ in keys if a != CREDITS})
    stmt = upsert(
        conn,
        la,
        ["organization_id", "account", "period"],
        {
            "posted_nano": lambda excluded: la.c.posted_nano + excluded.posted_nano,
            "overdraft_nano": lambda excluded: case(
                (
                    la.c.limit_nano.is_not(None)
                    & (
                        la.c.posted_nano + la.c.held_nano + excluded.posted_nano - la.c.limit_nano > la.c.overdraft_nano
                    ),
                    la.c.posted_nano + la.c.held_nano + excluded.posted_nano - la.c.limit_nano,
                ),
                else_=la.c.overdraft_nano,
            ),
        },
    )
    conn.execute(
        stmt,
        [
            {
                "organization_id": org_id,
                "account": a,
                "period": p,
                "limit_nano": ceilings.get(a),
                "posted_nano": amounts[(a, p)],
                "held_nano": 0,
                "overdraft_nano": _excess(amounts[(a, p)], ceilings.get(a)),
            }
            for a, p in keys
        ],
    )


def set_ceiling(
    conn: Connection,
    org_id: str,
    period: str,
    limit_nano: int | None,
    *,
    account: str | None = None,
    default_members: bool = False,
) -> None:
    """Apply a cap change to the current period's rows: one account, or every member without a cap of their own."""
    stmt = update(la).where(la.c.organization_id == org_id, la.c.period == period)
    if account is not None:
        stmt = stmt.where(la.c.account == account)
    elif default_members:
        own = select(literal("member:") + caps.c.member_id).where(
            caps.c.organization_id == org_id, caps.c.scope == "member"
        )
        stmt = stmt.where(la.c.account.like("member:%"), la.c.account.not_in(own))
    if limit_nano is None:
        conn.execute(stmt.values(limit_nano=None))
        return
    # Lowering a cap below what is already spent and held is the owner's right: the excess becomes overdraft.
    excess = la.c.posted_nano + la.c.held_nano - limit_nano
    conn.execute(
        stmt.values(
            limit_nano=limit_nano,
            overdraft_nano=case((excess > la.c.overdraft_nano, excess), else_=la.c.overdraft_nano),
        )
    )


def _excess(posted_nano: int, limit_nano: int | None) -> int:
    return 0 if limit_nano is None else max(0, posted_nano - limit_nano)
