"""Restart PostgreSQL (our own throwaway cluster) under load: clear 503s, nothing half-written, and the
service resumes by itself once the database is back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from benchmarks.common import make_app, make_org
from benchmarks.http_bench import free_port, start_server, stop_server
from seatmeter.adapters.db import upgrade
from seatmeter.services.organizations import create_service_key
from tests.faults.invariants import check_after_fault
from tests.faults.load import run_load
from tests.faults.own_postgres import OwnPostgres


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    try:
        cluster = OwnPostgres().init()
        cluster.start()
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot create a throwaway PostgreSQL cluster for the restart test: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.mark.slow
def test_postgres_restart_gives_clear_503s_writes_nothing_half_and_service_resumes(own_postgres: OwnPostgres) -> None:
    url = own_postgres.url
    upgrade(url)
    app = make_app(url)
    org = make_org(app, members_n=8, org_cap="5000.00")
    key = create_service_key(app.uow(), org.owner, org.id, app.clock.now())
    app.engine.dispose()
    port = free_port()
    server = start_server(url, port, workers=2)
    base = f"http://127.0.0.1:{port}"
    try:
        stop, ack, threads = run_load(base, key, org.id, org.member_ids, workers=4)
        time.sleep(2)
        own_postgres.stop("fast")
        time.sleep(3)  # the load keeps going against a database that is down
        during = dict(ack.statuses)
        own_postgres.start()
        resumed_after = None
        started = time.monotonic()
        while time.monotonic() - started < 30:
            response = httpx.post(
                f"{base}/v1/organizations/{org.id}/holds",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "idempotency_key": f"probe-{time.monotonic()}",
                    "member_id": org.member_ids[0],
                    "model": "claude-haiku-4-5",
                    "surface": "api",
                    "estimate": {"amount": "0.01"},
                },
            )
            if response.status_code == 201:
                resumed_after = time.monotonic() - started
                break
            time.sleep(0.2)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        stop_server(server)
    assert during.get(503, 0) > 0, f"no 503 while the database was down: {during}"
    assert set(ack.statuses) <= {200, 201, 503}, ack.statuses
    for body in ack.bodies:
        assert isinstance(body, dict) and body["error"]["code"] == "service_unavailable", body
        assert body["error"]["message"] and body["error"]["resume"]
    assert resumed_after is not None, "the service did not resume within 30 s of the database coming back"
    check_after_fault(url, org.id, ack)
