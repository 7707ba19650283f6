"""PostgreSQL, real threads: spend racing across thresholds creates each notification exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from seatmeter.adapters.tables_notify import notifications
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.entrypoints.api.app import create_app
from seatmeter.services import holds, usage
from tests.conftest import Api, create_org, make_app

pytestmark = pytest.mark.postgres
HAIKU = "claude-haiku-4-5"  # a million input tokens is exactly 1.00 USD
THREADS = 16
STEPS = 10


def test_thresholds_crossed_by_concurrent_usage_fire_exactly_once_each(pg_url: str, clock: Any) -> None:
    app = make_app(pg_url, clock)
    with TestClient(create_app(app)) as client:
        api = Api(client)
        org = create_org(api, channel="sales_assisted")
        api.put(
            f"/v1/organizations/{org.id}/notification-settings",
            {"thresholds_percent": list(range(10, 101, 10))},
            key=org.owner_key,
            expect=200,
        )
        # 160 steps of 1.00 USD against a cap of 100.00: holds stop at the cap, recorded usage goes past it.
        api.put(f"/v1/organizations/{org.id}/caps/organization", {"limit": "100.00"}, key=org.owner_key, expect=200)
    service = Principal(PrincipalKind.SERVICE, org.id)
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            for step in range(STEPS):
                key = f"t{n}-{step}"
                if n % 2:
                    event = {
                        "idempotency_key": key,
                        "member_id": org.owner_id,
                        "model": HAIKU,
                        "surface": "api",
                        "occurred_at": "2026-11-15T11:00:00Z",
                        "input_tokens": 1_000_000,
                        "output_tokens": 0,
                    }
                    usage.record_usage(app, service, org.id, {"events": [event]})
                    continue
                body = {
                    "idempotency_key": key,
                    "member_id": org.owner_id,
                    "model": HAIKU,
                    "surface": "api",
                    "estimate": {"amount": "1.00"},
                }
                try:
                    granted = holds.authorize(app, service, org.id, body)
                except Exception as refused:  # the cap stops holds once reached: that is the point
                    assert getattr(refused, "code", "") == "organization_cap_reached", refused
                    continue
                holds.settle(
                    app, service, org.id, granted.id, {"usage": {"input_tokens": 1_000_000, "output_tokens": 0}}
                )
        except BaseException as error:  # noqa: BLE001 (reported below, from the main thread)
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:3]
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(notifications.c.kind, notifications.c.threshold, notifications.c.payload).where(
                notifications.c.organization_id == org.id, notifications.c.account == "organization"
            )
        ).all()
    app.engine.dispose()
    crossed = Counter(r.threshold for r in rows if r.kind == "threshold_crossed")
    assert crossed == Counter(range(10, 101, 10))  # every threshold once, none twice
    # Steps are whole dollars and thresholds whole multiples of 10.00: each fired at exactly its amount.
    for r in rows:
        if r.kind == "threshold_crossed":
            assert f'"spent": "{r.threshold}.00"' in r.payload
