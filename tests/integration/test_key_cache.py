"""The API's key cache against a real database: a revoked or re-assigned key stops working (or changes role)
within SEATMETER_KEY_CACHE_S, never answers as another organization or role than the database gave it, and, on
PostgreSQL with real threads, no request that starts after revocation + bound is let in."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.tables import api_keys
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import Unauthenticated
from seatmeter.domain.ids import hash_key
from seatmeter.entrypoints.api.app import create_app
from seatmeter.services.organizations import authenticate
from tests.conftest import NOW, OPERATOR_KEY, Api, add_member, create_org, make_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticking(app: App) -> Clock:
    clock = Clock()
    app.keys.clock = clock
    return clock


def _revoke(app: App, key: str) -> None:
    with app.engine.begin() as conn:
        conn.execute(delete(api_keys).where(api_keys.c.key_hash == hash_key(key)))


def test_a_revoked_key_works_at_most_the_bound_after_revocation(api: Api, app: App, ticking: Clock) -> None:
    org = create_org(api, seats=0)
    path = f"/v1/organizations/{org.id}"
    api.get(path, key=org.owner_key, expect=200)  # read from the database, remembered
    _revoke(app, org.owner_key)
    ticking.now += app.settings.key_cache_s - 0.01
    api.get(path, key=org.owner_key, expect=200)  # within the documented bound
    ticking.now += 0.01
    api.get(path, key=org.owner_key, expect=401)
    api.get(path, key=org.owner_key, expect=401)  # an unknown key is never remembered


def test_a_reassigned_key_keeps_its_old_role_at_most_the_bound_and_never_another_organizations(
    api: Api, app: App, ticking: Clock
) -> None:
    acme = create_org(api, seats=0)
    other = create_org(api, seats=0)
    member = add_member(api, acme, "m@acme.test", seat=None)
    owner_only = f"/v1/organizations/{acme.id}/service-keys"
    api.post(owner_only, key=acme.owner_key, expect=201)
    api.get(f"/v1/organizations/{other.id}", key=other.owner_key, expect=200)
    # The owner's key is re-assigned to a plain member (what a rotation that reuses a row would look like).
    with app.engine.begin() as conn:
        conn.execute(
            update(api_keys).where(api_keys.c.key_hash == hash_key(acme.owner_key)).values(member_id=member["id"])
        )
    api.post(owner_only, key=acme.owner_key, expect=201)  # the cached owner, for now
    api.get(f"/v1/organizations/{other.id}", key=acme.owner_key, expect=403)  # never the other organization
    api.get(f"/v1/organizations/{acme.id}", key=other.owner_key, expect=403)
    ticking.now += app.settings.key_cache_s
    api.post(owner_only, key=acme.owner_key, expect=403)  # now a plain member
    api.get(f"/v1/organizations/{acme.id}", key=acme.owner_key, expect=200)


def test_with_the_cache_off_a_revoked_key_stops_at_once(database_url: str) -> None:
    application = make_app(database_url, FixedClock(NOW), key_cache_s=0)
    try:
        with TestClient(create_app(application)) as client:
            api = Api(client)
            org = create_org(api, seats=0)
            api.get(f"/v1/organizations/{org.id}", key=org.owner_key, expect=200)
            _revoke(application, org.owner_key)
            api.get(f"/v1/organizations/{org.id}", key=org.owner_key, expect=401)
            assert len(application.keys) == 0
    finally:
        application.engine.dispose()


THREADS = 16
BOUND_S = 0.3


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[App]:
    app = make_app(pg_url, FixedClock(NOW), db_pool_size=THREADS, key_cache_s=BOUND_S)
    yield app
    app.engine.dispose()


@pytest.mark.postgres
def test_threads_racing_a_revocation_are_refused_once_the_bound_has_passed(pg_app: App) -> None:
    with TestClient(create_app(pg_app)) as client:
        org = create_org(Api(client), seats=0)
    expected = Principal(PrincipalKind.MEMBER, org.id, org.owner_id, "primary_owner")
    revoked_at: list[float] = []
    stop = threading.Event()
    outcomes: list[tuple[float, Principal | None]] = []  # (when the call started, what it returned)
    lock = threading.Lock()

    def client_loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                got: Principal | None = authenticate(pg_app.uow(), org.owner_key, OPERATOR_KEY, pg_app.keys)
            except Unauthenticated:
                got = None
            with lock:
                outcomes.append((started, got))

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(client_loop) for _ in range(THREADS)]
        time.sleep(0.4)
        _revoke(pg_app, org.owner_key)
        revoked_at.append(time.monotonic())  # after the commit returned: a later instant than the commit itself
        time.sleep(BOUND_S + 0.4)
        # On a loaded machine the calls may be slow: keep the clients going (up to 30 s) until one that started
        # past the bound has answered, rather than judging on whatever fit in a fixed window.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if any(t >= revoked_at[0] + BOUND_S for t, _ in outcomes):
                    break
            time.sleep(0.05)
        stop.set()
        for f in futures:
            f.result()
    granted = [(t, p) for t, p in outcomes if p is not None]
    assert granted and all(p == expected for _, p in granted)  # never another principal
    assert all(t < revoked_at[0] + BOUND_S for t, _ in granted), "a revoked key was let in after the bound"
    assert any(p is None and t >= revoked_at[0] + BOUND_S for t, p in outcomes)
