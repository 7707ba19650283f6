"""`seatmeter import anthropic-usage` and `seatmeter reconcile anthropic-cost`, in-process on a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seatmeter.bootstrap import build
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.entrypoints.cli import app
from seatmeter.services.organizations import add_member, create_organization
from seatmeter.settings import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures"
USAGE = str(FIXTURES / "anthropic_usage_report.json")
COST = str(FIXTURES / "anthropic_cost_report.json")
runner = CliRunner()


@pytest.fixture
def org(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SEATMETER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    application = build(Settings())
    operator = Principal(PrincipalKind.OPERATOR)
    now = application.clock.now()
    organization, _ = create_organization(
        application.uow(),
        operator,
        {
            "name": "Acme",
            "channel": "sales_assisted",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "owner@acme.test", "name": "Olive"},
        },
        now,
    )
    for email in ("alice@acme.test", "bob@acme.test"):
        add_member(application.uow(), operator, organization.id, {"email": email, "name": email, "role": "member"}, now)
    application.engine.dispose()
    (tmp_path / "keys.json").write_text(json.dumps({"apikey_01Rj2N8SVvo6BePZj99NhmiT": "alice@acme.test"}))
    monkeypatch.chdir(tmp_path)
    return organization.id


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def import_usage(org: str, code: int = 0) -> str:
    return invoke(
        "import",
        "anthropic-usage",
        USAGE,
        "--org",
        org,
        "--key-map",
        "keys.json",
        "--key-map",
        "apikey_01Xq9PfmT3c8nZ2LdVw0jHkA=bob@acme.test",
        code=code,
    )


def test_importing_a_usage_report_twice_records_its_events_once(org: str) -> None:
    assert "4 rows, 4 events recorded, 0 already imported" in import_usage(org)
    assert "4 rows, 0 events recorded, 4 already imported" in import_usage(org)


def test_an_unmapped_api_key_is_refused_with_the_invalid_request_exit_code(org: str) -> None:
    out = invoke("import", "anthropic-usage", USAGE, "--org", org, "--key-map", "keys.json", code=2)
    assert "invalid_request" in out and "apikey_01Xq9PfmT3c8nZ2LdVw0jHkA" in out


def test_a_missing_file_is_reported_not_raised(org: str) -> None:
    assert "cannot read the usage report" in invoke(
        "import", "anthropic-usage", "nope.json", "--org", org, "--key-map", "keys.json", code=2
    )


def test_reconcile_prints_the_differences_per_day_and_model_and_exits_1(org: str) -> None:
    import_usage(org)
    out = invoke("reconcile", "anthropic-cost", COST, "--org", org, code=1)
    lines = [line for line in out.splitlines() if "2026-11-03" in line]
    assert any("claude-opus-4-6" in line and "2.05" in line and "-0.05" in line and "differs" in line for line in lines)
    assert any("(web_search)" in line and "-0.12" in line for line in lines)
    assert "2 of 4 day and model rows differ" in out


def test_reconcile_within_the_tolerance_agrees(org: str) -> None:
    import_usage(org)
    assert "all 4 day and model rows agree" in invoke(
        "reconcile", "anthropic-cost", COST, "--org", org, "--tolerance", "0.12"
    )
