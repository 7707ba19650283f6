"""Replays inside a batch of new events. The first attempt of a batch looks up only three of its keys (the first,
middle and last in key order) and inserts without looking up the rest; a recorded key among the rest fails the
insert, and the retry looks up every key. Either way the answer is the same: replays are counted as duplicates,
the same key with other content is a conflict, and nothing is written twice or half-written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from seatmeter.adapters.tables import ledger_entries, usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import Conflict, InvalidRequest
from seatmeter.services import organizations, usage
from tests.conftest import NOW, Api, Org, create_org

OPERATOR = Principal(PrincipalKind.OPERATOR)


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


def _recorded_batch(api: Api, keys: list[str]) -> tuple[Org, str, list[dict[str, Any]]]:
    """A new organization, its usage path, and a first batch of events with these keys, recorded."""
    org = create_org(api, channel="sales_assisted")
    path = f"/v1/organizations/{org.id}/usage"
    batch = [_event(key, org.owner_id) for key in keys]
    accepted = api.post(path, {"events": batch}, key=org.service_key, expect=200)
    assert accepted == {"accepted": len(keys), "duplicates": 0}
    return org, path, batch


@pytest.fixture
def looked_up(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many keys each lookup of recorded keys asked for, in order."""
    sizes: list[int] = []
    lookup = usage._recorded_fingerprints

    def counting(conn: Any, org_id: str, keys: list[str]) -> dict[str, str]:
        sizes.append(len(keys))
        return lookup(conn, org_id, keys)

    monkeypatch.setattr(usage, "_recorded_fingerprints", counting)
    return sizes


def test_replays_the_sample_misses_are_found_by_the_retry(api: Api, app: App, looked_up: list[int]) -> None:
    org, path, recorded = _recorded_batch(api, [f"k-b-{i}" for i in range(5)])
    before = _counts(app, org)
    looked_up.clear()
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


def test_a_batch_sent_again_is_found_by_its_sample(api: Api, app: App, looked_up: list[int]) -> None:
    org, path, batch = _recorded_batch(api, [f"k-{i:03d}" for i in range(40)])
    before = _counts(app, org)
    looked_up.clear()
    assert api.post(path, {"events": batch}, key=org.service_key, expect=200) == {"accepted": 0, "duplicates": 40}
    assert looked_up == [3, 40]  # no failed insert first
    assert _counts(app, org) == before


# Each event of a generated batch is one of these; "earlier" ones reuse the key of an earlier event of the batch.
KINDS = ["new", "replay", "changed_replay", "unknown_member", "repeat_earlier", "changed_earlier"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=30), salt=st.integers(0, 10**6))
def test_a_batch_is_answered_as_its_events_checked_in_order(app: App, kinds: list[str], salt: int) -> None:
    """Whatever the mix, the answer is that of checking the events in their order: the counts, or the error of the
    first bad event with nothing written (the rows themselves are made and inserted in key order)."""
    org, owner = organizations.create_organization(
        app.uow(),
        OPERATOR,
        {"name": "P", "channel": "sales_assisted", "term_start": "2026-01-01", "primary_owner": {"email": "o@p.test"}},
        NOW,
    )
    recorded = [_event(f"r-{salt}-{i}", owner.id) for i in range(4)]
    usage.record_usage(app, OPERATOR, org.id, {"events": recorded})
    before = _counts(app, Org(org.id, owner.id, "", ""))

    batch: list[dict[str, Any]] = []
    for i, kind in enumerate(kinds):
        if kind == "new" or (kind in ("repeat_earlier", "changed_earlier") and not batch):
            event = _event(f"n-{salt}-{i:02d}", owner.id)
        elif kind == "replay":
            event = recorded[i % 4]
        elif kind == "changed_replay":
            event = {**recorded[i % 4], "output_tokens": 99}
        elif kind == "unknown_member":
            event = _event(f"u-{salt}-{i:02d}", "mem_not_here")
        elif kind == "repeat_earlier":
            event = batch[i * 7 % len(batch)]
        else:
            event = {**batch[i * 7 % len(batch)], "output_tokens": batch[i * 7 % len(batch)]["output_tokens"] + 1}
        batch.append(event)

    # The reference: the events checked one by one, in their order.
    seen = {e["idempotency_key"]: e for e in recorded}
    expected: tuple[str, int] | dict[str, int] = {"accepted": 0, "duplicates": 0}
    for i, event in enumerate(batch):
        if event["member_id"] != owner.id:
            expected = ("member", i)
            break
        previous = seen.get(event["idempotency_key"])
        if previous is not None and previous != event:
            expected = ("conflict", i)
            break
        assert isinstance(expected, dict)
        expected["duplicates" if previous is not None else "accepted"] += 1
        seen[event["idempotency_key"]] = event

    if isinstance(expected, dict):
        assert usage.record_usage(app, OPERATOR, org.id, {"events": batch}) == expected
        events, _ = _counts(app, Org(org.id, owner.id, "", ""))
        assert events == before[0] + expected["accepted"]
        return
    kind, index = expected
    with pytest.raises(Conflict if kind == "conflict" else InvalidRequest) as raised:
        usage.record_usage(app, OPERATOR, org.id, {"events": batch})
    assert raised.value.message.startswith(f"events[{index}]: ")
    assert _counts(app, Org(org.id, owner.id, "", "")) == before
