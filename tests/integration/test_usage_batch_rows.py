"""What the batch path stores is what the per-event domain says: for random events, each row's cost, price version,
model, period (in the organization's zone, with a month-end anchor) and fingerprint, and the ledger and limit
rows that add them up. Replays of the batch write nothing; the same key with other content is a conflict."""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.tables import ledger_entries, limit_accounts, usage_events
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import Conflict
from seatmeter.domain.periods import period_containing
from seatmeter.domain.pricing import Usage
from seatmeter.domain.usage import UsageEvent
from seatmeter.services import usage
from seatmeter.services.price_book import shipped_versions
from tests.conftest import NOW, fresh_sales_org

OPERATOR = Principal(PrincipalKind.OPERATOR)
TIMEZONE = "America/New_York"
ANCHOR_DAY = 31


MODEL_IDS = sorted(
    {m for v in shipped_versions() for m in v.models}
    | {a for v in shipped_versions() for a in v.aliases}
    | {"claude-sonnet-4-5-20250929"}
)
_NEAR_PERIOD_STARTS = [
    datetime(2026, month, calendar.monthrange(2026, month)[1], hour, minute, second, tzinfo=UTC)
    for month in range(1, 11)
    for hour, minute, second in ((3, 59, 59), (4, 0, 0), (4, 59, 59), (5, 0, 0))
]
tokens = st.one_of(st.integers(0, 3_000), st.integers(150_000, 250_000))
event = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODEL_IDS),
        # Instants either side of local midnight in New York (UTC-4 in summer, UTC-5 in winter) on the days the
        # 31st anchor starts a period (clamped to each month's last day), and anywhere else.
        "occurred_at": st.one_of(
            st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 11, 15), timezones=st.just(UTC)),
            st.sampled_from(_NEAR_PERIOD_STARTS),
        ),
        "service_tier": st.sampled_from(["standard", "batch"]),
        "surface": st.sampled_from(["web", "api", "claude_code"]),
        "input_tokens": tokens,
        "output_tokens": tokens,
        "cache_write_5m_tokens": tokens,
        "cache_write_1h_tokens": tokens,
        "cache_read_tokens": tokens,
    }
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, min_size=1, max_size=25), replayed=st.integers(0, 25))
def test_every_stored_row_is_what_the_per_event_domain_computes(
    events: list[dict[str, Any]], replayed: int, sqlite_template: Path
) -> None:
    shop = fresh_sales_org(sqlite_template, FixedClock(NOW), timezone=TIMEZONE, billing_anchor_day=ANCHOR_DAY)
    with shop as (app, org, owner):
        raw = [
            {**e, "idempotency_key": f"k-{i}", "member_id": owner.id, "occurred_at": e["occurred_at"].isoformat()}
            for i, e in enumerate(events)
        ]
        assert usage.record_usage(app, OPERATOR, org.id, {"events": raw}) == {"accepted": len(raw), "duplicates": 0}

        book = app.prices.get()
        expected_total = 0
        expected_periods: dict[str, int] = defaultdict(int)
        with app.engine.connect() as conn:
            stored = {r.idempotency_key: r for r in conn.execute(select(usage_events))}
            for e in raw:
                row = stored[e["idempotency_key"]]
                counts = Usage(
                    input=e["input_tokens"],
                    output=e["output_tokens"],
                    cache_write_5m=e["cache_write_5m_tokens"],
                    cache_write_1h=e["cache_write_1h_tokens"],
                    cache_read=e["cache_read_tokens"],
                )
                at = datetime.fromisoformat(e["occurred_at"])
                priced = book.cost(e["model"], counts, at, e["service_tier"])
                period = period_containing(at, TIMEZONE, ANCHOR_DAY).key
                print_ = UsageEvent(
                    e["idempotency_key"], owner.id, e["model"], e["surface"], at, e["service_tier"], counts
                ).fingerprint
                assert (row.cost_nano, row.price_version, row.model) == (
                    priced.cost.nano,
                    priced.version_id,
                    priced.model,
                )
                assert (row.period, row.fingerprint, row.member_id, row.surface, row.service_tier) == (
                    period,
                    print_,
                    owner.id,
                    e["surface"],
                    e["service_tier"],
                )
                assert row.occurred_at.replace(tzinfo=UTC) == at
                assert (row.input_tokens, row.output_tokens, row.cache_write_5m_tokens) == (
                    counts.input,
                    counts.output,
                    counts.cache_write_5m,
                )
                assert (row.cache_write_1h_tokens, row.cache_read_tokens) == (
                    counts.cache_write_1h,
                    counts.cache_read,
                )
                assert row.recorded_at.replace(tzinfo=UTC) == NOW
                assert row.hold_id is None and not row.exceeded_hold
                expected_total += priced.cost.nano
                expected_periods[period] += priced.cost.nano
            ledger_total = conn.execute(select(func.coalesce(func.sum(ledger_entries.c.amount_nano), 0))).scalar()
            posted = {
                (r.account, r.period): r.posted_nano
                for r in conn.execute(select(limit_accounts).where(limit_accounts.c.organization_id == org.id))
            }
        assert ledger_total == expected_total
        for period, amount in expected_periods.items():
            if amount:
                assert posted[("organization", period)] == amount
                assert posted[(f"member:{owner.id}", period)] == amount

        # Replaying any part of the batch writes nothing; changing one replayed event is a conflict.
        again = raw[: max(1, min(replayed, len(raw)))]
        assert usage.record_usage(app, OPERATOR, org.id, {"events": again}) == {
            "accepted": 0,
            "duplicates": len(again),
        }
        changed = {**again[-1], "output_tokens": again[-1]["output_tokens"] + 1}
        with pytest.raises(Conflict):
            usage.record_usage(app, OPERATOR, org.id, {"events": [*again[:-1], changed]})
        moved = {
            **again[-1],
            "occurred_at": (datetime.fromisoformat(again[-1]["occurred_at"]) + timedelta(microseconds=1)).isoformat(),
        }
        with pytest.raises(Conflict):
            usage.record_usage(app, OPERATOR, org.id, {"events": [moved]})
        with app.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(usage_events)).scalar() == len(raw)
            assert conn.execute(select(func.coalesce(func.sum(ledger_entries.c.amount_nano), 0))).scalar() == (
                expected_total
            )


def test_a_key_with_a_nul_character_replays_and_conflicts_on_sqlite(sqlite_template: Path) -> None:
    # The SQLite key lookup sends keys as one JSON array, whose strings SQLite ends at an escaped NUL; such keys
    # must still be found, or a replay would hit the unique index on every retry instead of counting as one.
    with fresh_sales_org(sqlite_template, FixedClock(NOW)) as (app, org, owner):
        events = [
            {
                "idempotency_key": key,
                "member_id": owner.id,
                "model": "claude-haiku-4-5",
                "surface": "api",
                "occurred_at": "2026-11-15T10:00:00Z",
                "input_tokens": 1_000,
                "output_tokens": 100,
            }
            for key in ("a\x00b", "a", "plain")
        ]
        assert usage.record_usage(app, OPERATOR, org.id, {"events": events}) == {"accepted": 3, "duplicates": 0}
        assert usage.record_usage(app, OPERATOR, org.id, {"events": events}) == {"accepted": 0, "duplicates": 3}
        with pytest.raises(Conflict):
            usage.record_usage(app, OPERATOR, org.id, {"events": [{**events[0], "output_tokens": 101}]})
        with app.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(usage_events)).scalar() == 3
