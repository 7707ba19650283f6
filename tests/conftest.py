"""Fixtures shared by every test: databases (SQLite always, PostgreSQL when configured), the wired App with a
fixed clock, an HTTP client, and a few builders for organizations and members.

PostgreSQL tests run when SEATMETER_TEST_POSTGRES_URL is set (CI sets it and SEATMETER_TEST_POSTGRES_REQUIRED=1,
which turns a missing database into a failure instead of a skip).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.db import upgrade
from seatmeter.adapters.tables import metadata
from seatmeter.bootstrap import App, build
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.entrypoints.api.app import create_app
from seatmeter.services import organizations
from seatmeter.settings import Settings

POSTGRES_URL = os.environ.get("SEATMETER_TEST_POSTGRES_URL", "")
POSTGRES_REQUIRED = os.environ.get("SEATMETER_TEST_POSTGRES_REQUIRED") == "1"
OPERATOR_KEY = "test-operator-key"
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_URL:
        return f"seatmeter: PostgreSQL tests run against {POSTGRES_URL}"
    return "seatmeter: PostgreSQL tests are SKIPPED (set SEATMETER_TEST_POSTGRES_URL to run them)"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not POSTGRES_URL:
        terminalreporter.write_line(
            "seatmeter: the PostgreSQL tests were skipped because SEATMETER_TEST_POSTGRES_URL is not set; "
            "`.ci/run` sets it.",
            yellow=True,
        )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _normalize_pg(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not POSTGRES_URL:
        if POSTGRES_REQUIRED:
            pytest.fail("SEATMETER_TEST_POSTGRES_REQUIRED=1 but SEATMETER_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured: set SEATMETER_TEST_POSTGRES_URL")
    url = _normalize_pg(POSTGRES_URL)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    except Exception as exc:  # a database that is down is a failure in CI, a skip elsewhere
        if POSTGRES_REQUIRED:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} cannot be reached: {exc}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} cannot be reached: {exc}")
    finally:
        engine.dispose()
    upgrade(url)
    return url


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names}"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """The same test on SQLite and on PostgreSQL, each starting from an empty, migrated database."""
    if request.param == "sqlite":
        path = tmp_path / "seatmeter.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """PostgreSQL only, emptied: for concurrency tests."""
    _truncate_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def make_app(url: str, clock: FixedClock, **settings: Any) -> App:
    return build(Settings(database_url=url, operator_key=OPERATOR_KEY, **settings), clock=clock, migrate=False)


@contextmanager
def fresh_sales_org(sqlite_template: Path, clock: FixedClock, **fields: Any) -> Iterator[tuple[App, Any, Any]]:
    """A fresh SQLite database (a copy of the migrated template), its App and a sales-assisted organization, for
    property tests that need a new database per example (a function-scoped fixture would be shared by them)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.db"
        shutil.copy(sqlite_template, path)
        app = make_app(f"sqlite:///{path}", clock)
        try:
            org, owner = organizations.create_organization(
                app.uow(),
                Principal(PrincipalKind.OPERATOR),
                {
                    "name": "P",
                    "channel": "sales_assisted",
                    **fields,
                    "term_start": "2024-01-01",
                    "primary_owner": {"email": "o@p.test", "name": "O"},
                },
                clock.now(),
            )
            yield app, org, owner
        finally:
            app.engine.dispose()


@pytest.fixture
def app(database_url: str, clock: FixedClock) -> Iterator[App]:
    application = make_app(database_url, clock)
    yield application
    application.engine.dispose()


class Api:
    """A TestClient that speaks with a given key and returns parsed JSON, failing loudly on surprises."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def call(
        self, method: str, path: str, key: str | None = OPERATOR_KEY, expect: int | None = None, **kwargs: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = self.client.request(method, path, headers=headers, **kwargs)
        if expect is not None:
            assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.call("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.call("PUT", path, json=json, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)


@pytest.fixture
def api(app: App) -> Iterator[Api]:
    with TestClient(create_app(app)) as client:
        yield Api(client)


@dataclass
class Org:
    id: str
    owner_id: str
    owner_key: str
    service_key: str


def create_org(api: Api, channel: str = "self_serve", timezone: str = "UTC", seats: int = 20, **extra: Any) -> Org:
    body = {
        "name": "Acme",
        "timezone": timezone,
        "plan": "usage_based",
        "channel": channel,
        "term_start": "2026-01-01",
        "seat_prices": {"enterprise": "10.00"},
        "primary_owner": {"email": "owner@acme.test", "name": "Olive Owner"},
        **extra,
    }
    org = api.post("/v1/organizations", body, expect=201)
    service = api.post(f"/v1/organizations/{org['id']}/service-keys", key=org["primary_owner"]["api_key"], expect=201)
    if seats:  # a member needs a seat to use the product: buy some, and seat the primary owner
        api.post(f"/v1/organizations/{org['id']}/seats", {"seat_type": "enterprise", "quantity": seats}, expect=201)
        api.put(
            f"/v1/organizations/{org['id']}/members/{org['primary_owner']['id']}/seat",
            {"seat_type": "enterprise"},
            expect=200,
        )
    return Org(org["id"], org["primary_owner"]["id"], org["primary_owner"]["api_key"], service["api_key"])


def add_member(api: Api, org: Org, email: str, role: str = "member", seat: str | None = "enterprise") -> dict[str, Any]:
    member: dict[str, Any] = api.post(
        f"/v1/organizations/{org.id}/members",
        {"email": email, "name": email.split("@")[0], "role": role},
        key=org.owner_key,
        expect=201,
    )
    if seat:
        api.put(f"/v1/organizations/{org.id}/members/{member['id']}/seat", {"seat_type": seat}, expect=200)
    return member
