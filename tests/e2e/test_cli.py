"""The seatmeter command, run in-process against a real SQLite file."""

from __future__ import annotations

import asyncio
import gc
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seatmeter.entrypoints.cli import app, default_workers

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("SEATMETER_DATABASE_URL", f"sqlite:///{db}")
    return tmp_path


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_an_operator_runs_an_organization_from_the_command_line(env: Path) -> None:
    invoke("db", "upgrade")
    out = invoke(
        "orgs",
        "create",
        "Acme",
        "olive@acme.test",
        "--timezone",
        "Europe/Paris",
        "--seat-price",
        "enterprise=10.00",
        "--term-start",
        "2026-01-01",
    )
    org = re.search(r"organization (org_\w+)", out)
    assert org is not None
    org_id = org.group(1)
    assert org_id in invoke("orgs", "list")
    assert "balance 250.00 USD" in invoke("credits", "buy", org_id, "250.00", "--key", "po-1")
    # The same key and amount is the same purchase, not a second one.
    assert "balance 250.00 USD" in invoke("credits", "buy", org_id, "250.00", "--key", "po-1")
    assert "idempotency_conflict" in invoke("credits", "buy", org_id, "99.00", "--key", "po-1", code=5)
    assert "organization cap: 100.00" in invoke("caps", "set", org_id, "100")
    assert "member_default cap: unlimited" in invoke("caps", "set", org_id, "unlimited", "--default")
    assert invoke("keys", "create", org_id).strip().startswith("sm_")
    summary = json.loads(invoke("usage", "summary", org_id, "--json"))
    assert summary["credits"] == {"balance": "250.00", "held": "0.00", "available": "250.00"}
    assert summary["caps"]["organization"]["limit"] == "100.00"
    assert "olive@acme.test" in invoke("usage", "summary", org_id)


def test_a_bad_command_line_value_names_the_problem_and_exits_non_zero(env: Path) -> None:
    invoke("db", "upgrade")
    out = invoke("orgs", "create", "Acme", "not-an-email", code=2)
    assert "invalid_request" in out and "email" in out
    assert "not_found" in invoke("caps", "set", "org_missing", "10", code=4)


def test_the_price_book_is_shown_and_a_version_is_imported(env: Path) -> None:
    invoke("db", "upgrade")
    assert "0.054399" not in invoke("price-book", "show", "--model", "claude-sonnet-4-5-20250929")
    assert "3.75" in invoke("price-book", "show", "--model", "claude-sonnet-4-5-20250929")
    version = {
        "id": "2027-01-new",
        "effective_from": "2027-01-01T00:00:00Z",
        "models": {
            "claude-newmodel-1": {
                "input": "1",
                "cache_write_5m": "1.25",
                "cache_write_1h": "2",
                "cache_read": "0.10",
                "output": "5",
            }
        },
    }
    path = env / "version.json"
    path.write_text(json.dumps(version))
    assert "version 2027-01-new" in invoke("price-book", "import", str(path))
    assert "claude-newmodel-1" in invoke("price-book", "show")
    # Importing the same version again is a replay; the same id with other prices is refused.
    invoke("price-book", "import", str(path))
    version["models"]["claude-newmodel-1"]["output"] = "6"
    path.write_text(json.dumps(version))
    assert "idempotency_conflict" in invoke("price-book", "import", str(path), code=5)


def test_the_demo_creates_its_organization_once_and_prints_fresh_keys(env: Path) -> None:
    first = invoke("demo")
    second = invoke("demo")
    assert "Created the demo organization" in first and "Found the demo organization" in second
    keys = re.findall(r"^  (?:owner|member|service) +(sm_[\w-]+)", first + second, flags=re.MULTILINE)
    assert len(keys) == 6 and len(set(keys)) == 6


def test_serve_runs_uvloop_and_httptools_without_access_log_and_one_worker_on_sqlite_by_default(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, object] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.update(app=app, **kw))
    out = invoke("serve", "--port", "8123")
    assert served["app"] == "seatmeter.entrypoints.api.app:serve_app" and served["factory"] is True
    assert served["loop"] == "uvloop"
    assert served["http"] == "seatmeter.adapters.http_protocol:CoalescingHttpToolsProtocol"  # httptools underneath
    assert served["access_log"] is False and served["log_level"] == "warning"
    assert served["workers"] == 1 and served["port"] == 8123  # the env fixture's database is SQLite
    assert served["timeout_keep_alive"] == 75 and served["backlog"] == 2048
    assert "1 worker)" in out
    invoke("serve", "--workers", "3", "--access-log", "--keep-alive-s", "10", "--backlog", "128")
    assert served["workers"] == 3 and served["access_log"] is True and served["log_level"] == "info"
    assert served["timeout_keep_alive"] == 10 and served["backlog"] == 128


def test_a_served_worker_hides_what_it_built_at_startup_from_the_cyclic_collector(env: Path) -> None:
    from seatmeter.adapters.db import upgrade
    from seatmeter.entrypoints.api.app import serve_app
    from seatmeter.settings import Settings

    upgrade(Settings().database_url)
    api = serve_app()
    gc.unfreeze()

    async def started() -> int:
        async with api.router.lifespan_context(api):
            return gc.get_freeze_count()

    try:
        assert asyncio.run(started()) > 10_000  # the modules and the app: a full collection no longer walks them
    finally:
        gc.unfreeze()
        api.state.seatmeter.engine.dispose()


def test_the_default_worker_count_is_the_cpus_this_process_may_use_on_postgresql_and_one_on_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert default_workers("postgresql+psycopg://db.internal/seatmeter") == 3
    assert default_workers("sqlite:///seatmeter.db") == 1
