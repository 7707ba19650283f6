"""Properties of period close, on SQLite: whatever the order of usage and repeated closes, every event is billed
exactly once, and each period has exactly one document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from seatmeter.adapters import billing_repo
from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.tables import invoices
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.services import usage
from seatmeter.services.billing import close_period_now
from tests.conftest import fresh_sales_org

OPERATOR = Principal(PrincipalKind.OPERATOR)
MONTHS = 4

# For each month: events as (month they happened in, relative to now: 0 = this month, 1 = the one before...,
# input tokens), then how many times the month is closed.
month_plan = st.tuples(
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 5_000_000)), max_size=4),
    st.integers(1, 3),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(month_plan, min_size=MONTHS, max_size=MONTHS))
def test_every_event_is_billed_once_and_each_period_has_one_document(plan, sqlite_template: Path):
    clock = FixedClock(datetime(2024, 1, 1, 1, tzinfo=UTC))
    with fresh_sales_org(sqlite_template, clock) as (app, org, owner):
        recorded = 0
        billed_docs = []
        for index, (events, closes) in enumerate(plan):
            month_start = datetime(2024, 1 + index, 1, tzinfo=UTC)
            clock.set(month_start + timedelta(days=20))
            batch = []
            for n, (back, tokens) in enumerate(events):
                happened = max(month_start.month - back, 1)
                batch.append(
                    {
                        "idempotency_key": f"{index}-{n}",
                        "member_id": owner.id,
                        "model": "claude-haiku-4-5",
                        "surface": "web",
                        "occurred_at": datetime(2024, happened, 2, tzinfo=UTC).isoformat(),
                        "input_tokens": tokens,
                        "output_tokens": 0,
                    }
                )
                recorded += tokens
            if batch:
                usage.record_usage(app, OPERATOR, org.id, {"events": batch})
            clock.set(datetime(2024, 2 + index, 1, 2, tzinfo=UTC))
            ids = {close_period_now(app, org.id, f"2024-{1 + index:02d}").id for _ in range(closes)}
            assert len(ids) == 1
            billed_docs.extend(ids)
        with app.uow() as uow:
            documents = uow.conn.execute(
                select(func.count()).select_from(invoices).where(invoices.c.kind == "usage")
            ).scalar_one()
            billed = sum(
                line.tokens.get("input", 0)
                for doc in billed_docs
                for line in billing_repo.load_invoice(uow.conn, org.id, doc).lines
            )
        assert documents == MONTHS
        assert billed == recorded
