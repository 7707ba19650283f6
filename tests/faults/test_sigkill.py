"""SIGKILL a real `seatmeter serve` during mixed load (holds, settles, batch usage), then restart it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from benchmarks.common import make_app, make_org
from benchmarks.http_bench import free_port, start_server, stop_server
from seatmeter.adapters.db import upgrade
from seatmeter.services.organizations import create_service_key
from tests.faults.invariants import check_after_fault
from tests.faults.load import run_load

HOLD_TIMEOUT_S = "3"


def _kill_and_restart(url: str) -> dict[str, int]:
    app = make_app(url)
    org = make_org(app, members_n=8, org_cap="5000.00", member_cap="1000.00")
    key = create_service_key(app.uow(), org.owner, org.id, app.clock.now())
    app.engine.dispose()
    port = free_port()
    server = start_server(url, port, workers=2, SEATMETER_HOLD_TIMEOUT_S=HOLD_TIMEOUT_S)
    base = f"http://127.0.0.1:{port}"
    stop, ack, threads = run_load(base, key, org.id, org.member_ids)
    time.sleep(3)
    stop_server(server, signal.SIGKILL)  # the whole server: master and workers, mid-request
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert ack.holds and ack.events, f"the load acknowledged nothing before the kill: {ack.statuses}"
    check_after_fault(url, org.id, ack)
    restarted = start_server(url, port, workers=2, SEATMETER_HOLD_TIMEOUT_S=HOLD_TIMEOUT_S)
    try:
        deadline = time.monotonic() + 30
        while True:  # the restarted server's expiry sweep (every 5 s) releases holds past their 3 s timeout
            after = check_after_fault(url, org.id, ack)
            if after["open_holds"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        stop_server(restarted)
    assert after["open_holds"] == 0 and after["held_nano"] == 0, after
    return after


@pytest.mark.slow
def test_sigkill_on_sqlite_loses_no_acknowledged_write_and_open_holds_expire(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    upgrade(url)
    after = _kill_and_restart(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    engine.dispose()
    assert after["events"] > 0


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_on_postgres_loses_no_acknowledged_write_and_open_holds_expire(pg_url: str) -> None:
    assert _kill_and_restart(pg_url)["events"] > 0
