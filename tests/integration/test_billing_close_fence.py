"""No usage event escapes billing at a period close, whatever its writer's commit delay or clock.

On PostgreSQL a writer whose transaction is still open when the close starts makes the close wait (real threads);
on SQLite, writers whose clocks lag the close's by minutes or hours still land on exactly one document.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seatmeter.adapters import billing_repo, limits_repo
from seatmeter.adapters.clock import FixedClock
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.services import holds, organizations, seats, usage
from seatmeter.services.billing import close_period_now
from tests.conftest import make_app

OPERATOR = Principal(PrincipalKind.OPERATOR)
MODEL = "claude-haiku-4-5"


def _org(app: App, at: datetime) -> tuple[str, str]:
    org, owner = organizations.create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Fence",
            "channel": "sales_assisted",
            "term_start": "2024-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "o@fence.test", "name": "O"},
        },
        at,
    )
    seats.add_seats(app, OPERATOR, org.id, {"seat_type": "enterprise", "quantity": 1})
    seats.assign_seat(app, OPERATOR, org.id, owner.id, {"seat_type": "enterprise"})
    return org.id, owner.id


def _record(app: App, org_id: str, member_id: str, key: str, occurred_at: datetime, tokens: int) -> None:
    event = {
        "idempotency_key": key,
        "member_id": member_id,
        "model": MODEL,
        "surface": "web",
        "occurred_at": occurred_at.isoformat(),
        "input_tokens": tokens,
        "output_tokens": 0,
    }
    usage.record_usage(app, OPERATOR, org_id, {"events": [event]})


def _authorize(app: App, org_id: str, member_id: str, key: str) -> str:
    body = {"idempotency_key": key, "member_id": member_id, "model": MODEL, "surface": "web"}
    return holds.authorize(app, OPERATOR, org_id, {**body, "estimate": {"amount": "1.00"}}).id


def _settle(app: App, org_id: str, hold_id: str, tokens: int) -> None:
    holds.settle(app, OPERATOR, org_id, hold_id, {"usage": {"input_tokens": tokens, "output_tokens": 0}})


def _billed_tokens(app: App, org_id: str, invoice_ids: list[str]) -> list[int]:
    with app.uow() as uow:
        return [
            line.tokens.get("input", 0)
            for invoice_id in invoice_ids
            for line in billing_repo.load_invoice(uow.conn, org_id, invoice_id).lines
        ]


@pytest.mark.postgres
@pytest.mark.parametrize("writer", ["record_usage", "settle"])
def test_a_close_waits_for_a_usage_transaction_in_flight_and_bills_its_event_once(
    writer: str, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FixedClock(datetime(2024, 3, 31, 23, 59, tzinfo=UTC))
    app = make_app(pg_url, clock)
    try:
        org_id, member_id = _org(app, datetime(2024, 1, 1, tzinfo=UTC))
        hold_id = _authorize(app, org_id, member_id, "h") if writer == "settle" else ""
        # The writer reads its clock a minute into April, then stays in its transaction, its event inserted,
        # while the close of March starts two hours later: far past any grace a close could give.
        inside, release = threading.Event(), threading.Event()

        def blocking(real: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                inside.set()
                assert release.wait(30)
                return real(*args, **kwargs)

            return wrapper

        monkeypatch.setattr(limits_repo, "post", blocking(limits_repo.post))
        monkeypatch.setattr(limits_repo, "release", blocking(limits_repo.release))
        clock.set(datetime(2024, 4, 1, 0, 1, tzinfo=UTC))

        def write() -> None:
            if writer == "settle":
                _settle(app, org_id, hold_id, 777)
            else:
                _record(app, org_id, member_id, "late-commit", datetime(2024, 3, 31, 23, 55, tzinfo=UTC), 777)

        errors: list[BaseException] = []
        documents: list[str] = []

        def run(work: Callable[[], None]) -> threading.Thread:
            def target() -> None:
                try:
                    work()
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    errors.append(exc)

            thread = threading.Thread(target=target)
            thread.start()
            return thread

        writing = run(write)
        assert inside.wait(30), errors
        clock.set(datetime(2024, 4, 1, 2, 10, tzinfo=UTC))
        closing = run(lambda: documents.append(close_period_now(app, org_id, "2024-03").id))
        closing.join(1.5)
        assert closing.is_alive(), "the close did not wait for the usage transaction in flight"
        release.set()
        writing.join(30)
        closing.join(30)
        assert errors == []
        clock.set(datetime(2024, 5, 1, 1, tzinfo=UTC))
        documents.append(close_period_now(app, org_id, "2024-04").id)
        assert _billed_tokens(app, org_id, documents[:1]) == [777]
        assert _billed_tokens(app, org_id, documents) == [777]
    finally:
        app.engine.dispose()


START = datetime(2024, 1, 3, tzinfo=UTC)
LAST_PERIOD_MONTH = 8

# ("usage", hours the true time moves on, minutes the writer's clock lags the true time (commit delay plus
# skew), months back its event happened) | ("settle", hours, lag) | ("close",): close the next period, if ended.
operation = st.one_of(
    st.tuples(st.just("usage"), st.integers(0, 400), st.integers(0, 600), st.integers(0, 2)),
    st.tuples(st.just("settle"), st.integers(0, 400), st.integers(0, 600)),
    st.tuples(st.just("close")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, max_size=14))
def test_events_of_lagging_writers_are_each_billed_on_exactly_one_document(
    operations: list[tuple[Any, ...]], sqlite_template: Path
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.db"
        shutil.copy(sqlite_template, path)
        clock = FixedClock(START)
        app = make_app(f"sqlite:///{path}", clock)
        try:
            org_id, member_id = _org(app, datetime(2024, 1, 1, tzinfo=UTC))
            now = START
            next_month = 1  # the next period to close
            documents: list[str] = []
            # Event i has 3**i input tokens: the billed total equals the sum of all of them only if every event
            # is counted exactly once (a base-3 digit of 0 or 2 would change it).
            expected = 0

            def close_up_to(at: datetime) -> None:
                nonlocal next_month
                clock.set(at)
                if next_month <= LAST_PERIOD_MONTH and datetime(2024, next_month + 1, 1, tzinfo=UTC) <= at:
                    documents.append(close_period_now(app, org_id, f"2024-{next_month:02d}").id)
                    next_month += 1

            for i, op in enumerate(operations):
                if op[0] == "close":
                    close_up_to(now)
                    continue
                now += timedelta(hours=op[1])
                writer_now = max(now - timedelta(minutes=op[2]), datetime(2024, 1, 1, 1, tzinfo=UTC))
                tokens = 3**i
                if op[0] == "usage":
                    occurred = max(writer_now - timedelta(days=30 * op[3]), datetime(2024, 1, 1, 1, tzinfo=UTC))
                    clock.set(writer_now)
                    _record(app, org_id, member_id, f"e{i}", occurred, tokens)
                else:
                    clock.set(now)
                    hold_id = _authorize(app, org_id, member_id, f"h{i}")
                    clock.set(writer_now)  # the settle read its clock this long before its transaction began
                    _settle(app, org_id, hold_id, tokens)
                expected += tokens
            while next_month <= LAST_PERIOD_MONTH:
                close_up_to(datetime(2024, LAST_PERIOD_MONTH + 1, 2, tzinfo=UTC))
            assert sum(_billed_tokens(app, org_id, documents)) == expected
        finally:
            app.engine.dispose()
