"""Replays inside a batch of new events. The first attempt of a batch looks up only three of its keys (the first,
middle and last in key order) and inserts without looking up the rest; a recorded key among the rest fails the
insert, and the retry looks up every key. Either way the answer is the same: replays are counted as duplicates,
the same key with other content is a conflict, and nothing is written twice or half-written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from seatmeter.adapters.tables import ledger_entries, usage_events
from seatmeter.bootstrap import App
from seatmeter.services import usage
from tests.conftest import NOW, Api, Org, create_org


def _event(key: str, member_id: str, output_tokens: int = 10) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "member_id": member_id,
        "model": "claude-sonnet-4-5",
        "surface": "api",
        "occurred_at": NOW.isoformat(),
        "input_tokens": 100,
        "output_tokens": output_tokens,
    }


def _counts(app: App, org: Org) -> tuple[int, int]:
    with app.engine.connect() as conn:
        events = conn.execute(
            select(func.count()).select_from(usage_events).where(usage_events.c.organization_id == org.id)
        ).scalar_one()
        ledger = conn.execute(
            select(func.coalesce(func.sum(ledger_entries.c.amount_nano), 0)).where(
                ledger_entries.c.organization_id == org.id
            )
        ).scalar_one()
    return int(events), int(ledger)


def test_replays_the_sample_misses_are_found_by_the_retry(api: Api, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    org = create_org(api, channel="sales_assisted")
    path = f"/v1/organizations/{org.id}/usage"
    recorded = [_event(f"k-b-{i}", org.owner_id) for i in range(5)]
    assert api.post(path, {"events": recorded}, key=org.service_key, expect=200) == {"accepted": 5, "duplicates": 0}
    before = _counts(app, org)

    looked_up: list[int] = []
    lookup = usage._recorded_fingerprints

    def counting(conn: Any, org_id: str, keys: list[str]) -> dict[str, str]:
        looked_up.append(len(keys))
        return lookup(conn, org_id, keys)

    monkeypatch.setattr(usage, "_recorded_fingerprints", counting)
    # In key order: 3 new (k-a-*), the 5 recorded (k-b-*), 20 new (k-c-*). The first, middle and last are new.
    mixed = [
        *(_event(f"k-c-{i:02d}", org.owner_id) for i in range(20)),
        *recorded,
        *(_event(f"k-a-{i}", org.owner_id) for i in range(3)),
    ]
    assert api.post(path, {"events": mixed}, key=org.service_key, expect=200) == {"accepted": 23, "duplicates": 5}
    assert looked_up == [3, 28]  # the sample found nothing, the insert failed, the retry looked up every key
    events, ledger = _counts(app, org)
    assert events == before[0] + 23
    assert ledger == before[1] * 28 // 5  # every event costs the same: 23 more, none of the 5 twice

    # A recorded key with other content, where the sample does not look: a conflict, and nothing written.
    looked_up.clear()
    changed = {**recorded[1], "output_tokens": 11}
    conflicting = [
        *(_event(f"k-c9-{i:02d}", org.owner_id) for i in range(20)),
        changed,
        *(_event(f"k-a9-{i}", org.owner_id) for i in range(3)),
    ]
    error = api.post(path, {"events": conflicting}, key=org.service_key, expect=409)
    assert error["error"]["message"].startswith("events[20]: idempotency_key 'k-b-1' was already used")
    assert looked_up == [3, 24]
    assert _counts(app, org) == (events, ledger)


def test_a_batch_sent_again_is_found_by_its_sample(api: Api, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    org = create_org(api, channel="sales_assisted")
    path = f"/v1/organizations/{org.id}/usage"
    batch = [_event(f"k-{i:03d}", org.owner_id) for i in range(40)]
    assert api.post(path, {"events": batch}, key=org.service_key, expect=200) == {"accepted": 40, "duplicates": 0}
    before = _counts(app, org)
    looked_up: list[int] = []
    lookup = usage._recorded_fingerprints
    monkeypatch.setattr(
        usage,
        "_recorded_fingerprints",
        lambda conn, org_id, keys: looked_up.append(len(keys)) or lookup(conn, org_id, keys),
    )
    assert api.post(path, {"events": batch}, key=org.service_key, expect=200) == {"accepted": 0, "duplicates": 40}
    assert looked_up == [3, 40]  # no failed insert first
    assert _counts(app, org) == before
