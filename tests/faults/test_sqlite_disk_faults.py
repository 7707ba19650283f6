"""SQLite on a full disk or a read-only file system: writes are refused with a clean 503, nothing is corrupted,
and the service writes again once the disk has room or is writable again.

Uses a small tmpfs of our own (needs root to mount); skips with the reason otherwise."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.db import upgrade
from seatmeter.entrypoints.api.app import create_app
from tests.conftest import NOW, Api, create_org, make_app


@pytest.fixture
def small_disk() -> Iterator[Path]:
    mount = Path(tempfile.mkdtemp(prefix="seatmeter-small-disk-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        shutil.rmtree(mount, ignore_errors=True)
        pytest.skip(f"cannot mount a small tmpfs for the disk-fault tests: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def _events(member: str, start: int, n: int) -> dict[str, object]:
    return {
        "events": [
            {
                "idempotency_key": f"e{start + i}",
                "member_id": member,
                "model": "claude-haiku-4-5",
                "surface": "api",
                "occurred_at": "2026-11-15T11:00:00Z",
                "input_tokens": 10,
                "output_tokens": 10,
                "cache_read_tokens": i,
            }
            for i in range(n)
        ]
    }


def _integrity(path: Path) -> str:
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        result = str(conn.execute(text("PRAGMA integrity_check")).scalar_one())
    engine.dispose()
    return result


def _api(path: Path) -> tuple[Api, object]:
    app = make_app(f"sqlite:///{path}", FixedClock(NOW))
    return Api(TestClient(create_app(app), raise_server_exceptions=False)), app


def test_a_full_disk_refuses_writes_with_503_and_corrupts_nothing(small_disk: Path) -> None:
    path = small_disk / "seatmeter.db"
    upgrade(f"sqlite:///{path}")
    api, app = _api(path)
    org = create_org(api)
    owner = org.owner_id
    ballast = small_disk / "ballast"
    accepted = 0
    refused = None
    for batch in range(200):  # fill the disk until a batch is refused
        response = api.client.post(
            f"/v1/organizations/{org.id}/usage",
            json=_events(owner, batch * 500, 500),
            headers={"Authorization": f"Bearer {org.service_key}"},
        )
        if response.status_code != 200:
            refused = response
            break
        accepted += 500
        if batch == 1:
            with ballast.open("wb") as f:  # leave little room: most of what is left goes to ballast
                free = shutil.disk_usage(small_disk).free
                f.write(b"\0" * max(0, free - 300_000))
    assert refused is not None, "the disk never filled"
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "service_unavailable"
    summary = api.get(f"/v1/organizations/{org.id}/usage/summary", key=org.owner_key)
    assert summary["members"], "reads keep working on a full disk"
    ballast.unlink()
    response = api.client.post(
        f"/v1/organizations/{org.id}/usage",
        json=_events(owner, 10**6, 10),
        headers={"Authorization": f"Bearer {org.service_key}"},
    )
    assert response.status_code == 200, response.text
    app.engine.dispose()  # type: ignore[attr-defined]
    assert _integrity(path) == "ok"
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM usage_events")).scalar_one()
    engine.dispose()
    assert count == accepted + 10, "a refused batch left some of its events behind"


def test_a_read_only_disk_refuses_writes_with_503_and_writes_resume_when_it_is_writable_again(small_disk: Path) -> None:
    path = small_disk / "seatmeter.db"
    upgrade(f"sqlite:///{path}")
    api, app = _api(path)
    org = create_org(api)
    api.post(f"/v1/organizations/{org.id}/usage", _events(org.owner_id, 0, 5), key=org.service_key, expect=200)
    app.engine.dispose()  # type: ignore[attr-defined]  # open files would keep the mount busy
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        for response in (
            api.client.post(
                f"/v1/organizations/{org.id}/usage",
                json=_events(org.owner_id, 100, 5),
                headers={"Authorization": f"Bearer {org.service_key}"},
            ),
            api.client.post(
                f"/v1/organizations/{org.id}/holds",
                headers={"Authorization": f"Bearer {org.service_key}"},
                json={
                    "idempotency_key": "h",
                    "member_id": org.owner_id,
                    "model": "claude-haiku-4-5",
                    "surface": "api",
                    "estimate": {"amount": "0.01"},
                },
            ),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "service_unavailable"
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    api.post(f"/v1/organizations/{org.id}/usage", _events(org.owner_id, 200, 5), key=org.service_key, expect=200)
    app.engine.dispose()  # type: ignore[attr-defined]
    assert _integrity(path) == "ok"
