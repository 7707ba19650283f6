"""`seatmeter billing close`, `seatmeter billing renew --dry-run` and `seatmeter worker --once` on a real database."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seatmeter.adapters.clock import FixedClock
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.entrypoints.cli import app as cli
from seatmeter.services import organizations
from tests.conftest import make_app

OPERATOR = Principal(PrincipalKind.OPERATOR)


@pytest.fixture
def org_id(tmp_path: Path, sqlite_template: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An organization in a SQLite file that the CLI opens through SEATMETER_DATABASE_URL, as a user would."""
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("SEATMETER_DATABASE_URL", url)
    app = make_app(url, clock)
    org, _ = organizations.create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Cli",
            "plan": "usage_based",
            "channel": "sales_assisted",
            "term_start": "2024-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "o@cli.test", "name": "O"},
        },
        app.clock.now(),
    )
    app.engine.dispose()
    yield org.id


def test_billing_close_prints_the_period_invoice_and_a_second_close_prints_the_same(org_id: str):
    runner = CliRunner()
    first = runner.invoke(cli, ["billing", "close", org_id, "2024-03"])
    assert first.exit_code == 0, first.output
    invoice = json.loads(first.output)
    assert (invoice["kind"], invoice["period"], invoice["total"]) == ("usage", "2024-03", "0.00")
    second = runner.invoke(cli, ["billing", "close", org_id, "2024-03"])
    assert json.loads(second.output)["id"] == invoice["id"]


def test_billing_close_of_a_malformed_period_exits_with_the_invalid_request_code(org_id: str):
    result = CliRunner().invoke(cli, ["billing", "close", org_id, "March"])
    assert result.exit_code == 2
    assert "invalid_request" in result.output


def test_billing_renew_dry_run_and_the_worker_run_from_the_command_line(org_id: str):
    runner = CliRunner()
    dry = runner.invoke(cli, ["billing", "renew", org_id, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["dry_run"] is True
    worker = runner.invoke(cli, ["worker", "--once"])
    assert worker.exit_code == 0, worker.output
    assert "expired_holds" in worker.output
