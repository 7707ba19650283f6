"""PostgreSQL: workers racing over the same periods issue each document once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.tables import invoices
from seatmeter.adapters.tables_billing import period_closes
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.services import organizations, seats, usage
from seatmeter.services.billing import close_period_now
from seatmeter.services.worker import run_worker_once
from tests.conftest import make_app

pytestmark = pytest.mark.postgres
OPERATOR = Principal(PrincipalKind.OPERATOR)


def _org(app, clock: FixedClock) -> str:
    clock.set(datetime(2024, 1, 1, 12, tzinfo=UTC))
    org, owner = organizations.create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Race",
            "plan": "usage_based",
            "channel": "sales_assisted",
            "term_start": "2024-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "o@race.test", "name": "O"},
        },
        clock.now(),
    )
    seats.add_seats(app, OPERATOR, org.id, {"seat_type": "enterprise", "quantity": 3})
    clock.set(datetime(2024, 3, 15, tzinfo=UTC))
    usage.record_usage(
        app,
        OPERATOR,
        org.id,
        {
            "events": [
                {
                    "idempotency_key": f"e{i}",
                    "member_id": owner.id,
                    "model": "claude-sonnet-4-5",
                    "surface": "web",
                    "occurred_at": f"2024-0{1 + i % 3}-10T10:00:00Z",
                    "input_tokens": 1000 * (i + 1),
                    "output_tokens": 10,
                }
                for i in range(9)
            ]
        },
    )
    return org.id


def _race(count: int, work) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_two_workers_closing_the_same_periods_at_once_issue_one_invoice_each(pg_url: str):
    clock = FixedClock(datetime(2024, 1, 1, tzinfo=UTC))
    app = make_app(pg_url, clock)
    try:
        org_id = _org(app, clock)
        clock.set(datetime(2024, 4, 2, tzinfo=UTC))
        for _ in range(3):  # several rounds: the first catches up three periods, the others find nothing to do
            assert _race(2, lambda: run_worker_once(app)) == []
        with app.uow() as uow:
            periods = uow.conn.execute(
                select(invoices.c.period, func.count())
                .where(invoices.c.organization_id == org_id, invoices.c.kind == "usage")
                .group_by(invoices.c.period)
                .order_by(invoices.c.period)
            ).all()
            closes = uow.conn.execute(
                select(func.count()).select_from(period_closes).where(period_closes.c.organization_id == org_id)
            ).scalar_one()
            numbers = (
                uow.conn.execute(
                    select(invoices.c.number).where(invoices.c.organization_id == org_id).order_by(invoices.c.number)
                )
                .scalars()
                .all()
            )
        assert [tuple(p) for p in periods] == [("2024-01", 1), ("2024-02", 1), ("2024-03", 1)]
        assert closes == 3
        assert numbers == list(range(1, len(numbers) + 1))
    finally:
        app.engine.dispose()


def test_eight_operators_closing_one_period_at_once_all_get_the_same_invoice(pg_url: str):
    clock = FixedClock(datetime(2024, 1, 1, tzinfo=UTC))
    app = make_app(pg_url, clock)
    try:
        org_id = _org(app, clock)
        clock.set(datetime(2024, 2, 2, tzinfo=UTC))
        ids: list[str] = []
        errors = _race(8, lambda: ids.append(close_period_now(app, org_id, "2024-01").id))
        assert errors == []
        assert len(ids) == 8 and len(set(ids)) == 1
        with app.uow() as uow:
            count = uow.conn.execute(
                select(func.count())
                .select_from(invoices)
                .where(invoices.c.organization_id == org_id, invoices.c.kind == "usage")
            ).scalar_one()
        assert count == 1
    finally:
        app.engine.dispose()
