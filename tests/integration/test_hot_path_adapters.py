"""The hot path's adapters: the SQLite write lock taken at begin, memoized parsing never standing in for the database.

The memos of the hot path (seat prices by document, the limit rows of a hold by its keys, a period's bounds) are
pure functions of their arguments; these tests hold them to the plain computation, and show that a change made
through another connection is what the next read sees.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, update
from sqlalchemy.exc import OperationalError

from seatmeter.adapters import limits_repo, orgs_repo
from seatmeter.adapters.db import create_db_engine
from seatmeter.adapters.tables import organizations as organizations_table
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import ServiceUnavailable
from seatmeter.domain.money import Money
from seatmeter.domain.periods import Period, period_containing
from seatmeter.services import organizations
from seatmeter.services.uow import UnitOfWork

OPERATOR = Principal(PrincipalKind.OPERATOR)


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def test_every_sqlite_unit_of_work_holds_the_write_lock_from_its_begin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    engine = create_db_engine(url)
    other = sqlite3.connect(_sqlite_path(url), isolation_level=None, timeout=0)
    try:
        with UnitOfWork(engine) as uow:
            # Nothing executed yet: the lock must already be ours, or a read-then-write could interleave.
            assert uow.conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            uow.commit()
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("COMMIT")
    finally:
        other.close()
        engine.dispose()


def test_a_sqlite_begin_that_cannot_take_the_lock_is_refused_as_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    engine = create_db_engine(url)
    holder = sqlite3.connect(_sqlite_path(url), isolation_level=None)
    try:
        with engine.connect() as conn:  # open the pooled connection, then make it give up at once when busy
            conn.connection.dbapi_connection.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
        holder.execute("BEGIN IMMEDIATE")
        conn = engine.connect()
        with pytest.raises(OperationalError, match="locked"):
            conn.begin()
        conn.close()
        with pytest.raises(ServiceUnavailable), UnitOfWork(engine):
            pass
        holder.execute("ROLLBACK")
        with UnitOfWork(engine) as uow:  # the same pooled connection works once the lock is free
            uow.commit()
    finally:
        holder.close()
        engine.dispose()


def test_seat_prices_changed_through_another_connection_are_read_by_the_next_authorize_lookup(app: App) -> None:
    org, owner = organizations.create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Acme",
            "timezone": "UTC",
            "plan": "usage_based",
            "channel": "self_serve",
            "term_start": "2026-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "olive@acme.test", "name": "Olive"},
        },
        app.clock.now(),
    )
    with app.uow() as uow:
        found, _ = orgs_repo.organization_and_member(uow.conn, org.id, owner.id)
    assert found.seat_prices == {"enterprise": Money.parse("10.00")}
    found.seat_prices["enterprise"] = Money(1)  # type: ignore[index]  # a caller's copy: the memo is not shared
    other = create_engine(app.settings.database_url)
    with other.begin() as conn:
        conn.execute(
            update(organizations_table)
            .where(organizations_table.c.id == org.id)
            .values(seat_prices='{"enterprise": "12.50"}')
        )
    other.dispose()
    with app.uow() as uow:
        again, _ = orgs_repo.organization_and_member(uow.conn, org.id, owner.id)
    assert again.seat_prices == {"enterprise": Money.parse("12.50")}
    with app.uow() as uow:
        back, _ = orgs_repo.organization_and_member(uow.conn, org.id, owner.id)
    assert back.seat_prices == {"enterprise": Money.parse("12.50")}


_PERIOD = st.sampled_from(["2026-01", "2026-02", "2026-12"])
_ACCOUNT = st.sampled_from(["credits", "organization", "member:mem_a", "member:mem_b"])


def _reference_hold_params(org_id: str, keys: list[tuple[str, str]]) -> dict[str, str]:
    accounts = sorted({account for account, _ in keys})
    periods = {period for account, period in keys if account != "credits"}
    if not 1 <= len(accounts) <= 3 or len(periods) > 1:
        raise ValueError("not the limit rows of one hold")
    padded = accounts + [accounts[-1]] * (3 - len(accounts))
    return {"org": org_id, "a0": padded[0], "a1": padded[1], "a2": padded[2], "p": next(iter(periods), "")}


@settings(max_examples=300, deadline=None)
@given(
    org_id=st.sampled_from(["org_a", "org_b"]),
    keys=st.lists(st.tuples(_ACCOUNT, _PERIOD), min_size=0, max_size=4).map(
        lambda ks: [(a, "" if a == "credits" else p) for a, p in ks]
    ),
)
def test_the_limit_rows_of_a_hold_are_the_same_with_the_memo_as_computed_afresh(
    org_id: str, keys: list[tuple[str, str]]
) -> None:
    try:
        expected = _reference_hold_params(org_id, keys)
    except ValueError:
        with pytest.raises(ValueError):
            limits_repo._hold_params(org_id, keys)
        return
    for _ in range(2):  # the second call is answered by the memo
        params = limits_repo._hold_params(org_id, keys)
        assert params == expected
        params["org"] = "mutated"  # a caller's dict: changing it changes nothing the next caller sees


@settings(max_examples=300, deadline=None)
@given(
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    anchor=st.integers(min_value=1, max_value=31),
    timezone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Apia"]),
    hour=st.integers(min_value=0, max_value=23),
)
def test_period_bounds_are_local_midnights_on_the_anchor_with_the_memo(
    day: date, anchor: int, timezone: str, hour: int
) -> None:
    at = datetime.combine(day, time(hour), tzinfo=UTC)
    for _ in range(2):
        period = period_containing(at, timezone, anchor)
        zone = ZoneInfo(timezone)
        assert period.start == datetime.combine(period.start_date, time(0), tzinfo=zone)
        assert period.end == datetime.combine(period.next().start_date, time(0), tzinfo=zone)
        assert period.start <= at < period.end
        assert period == Period(period.year, period.month, anchor, timezone)
