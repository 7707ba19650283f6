"""Importing the vendor's usage report and reconciling against its cost report, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from seatmeter.adapters.tables import usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import InvalidRequest, UnknownModel
from seatmeter.domain.money import Money
from seatmeter.services.organizations import add_member, create_organization
from seatmeter.services.vendor_import import import_anthropic_usage, parse_key_map, reconcile_anthropic_cost

FIXTURES = Path(__file__).parent.parent / "fixtures"
OPERATOR = Principal(PrincipalKind.OPERATOR)
ALICE_KEY = "apikey_01Rj2N8SVvo6BePZj99NhmiT"
BOB_KEY = "apikey_01Xq9PfmT3c8nZ2LdVw0jHkA"


def report(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def org(app: App) -> dict[str, str]:
    now = app.clock.now()
    organization, _owner = create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Acme",
            "timezone": "UTC",
            "plan": "usage_based",
            "channel": "sales_assisted",
            "term_start": "2026-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "owner@acme.test", "name": "Olive"},
        },
        now,
    )
    alice = add_member(
        app.uow(), OPERATOR, organization.id, {"email": "alice@acme.test", "name": "Alice", "role": "member"}, now
    )
    bob = add_member(
        app.uow(), OPERATOR, organization.id, {"email": "bob@acme.test", "name": "Bob", "role": "member"}, now
    )
    return {"id": organization.id, "alice": alice.id, "bob": bob.id}


def costs_by_member_and_model(app: App, org_id: str) -> dict[tuple[str, str, str], str]:
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(
                usage_events.c.member_id, usage_events.c.model, usage_events.c.service_tier, usage_events.c.cost_nano
            ).where(usage_events.c.organization_id == org_id)
        )
        return {(r.member_id, r.model, r.service_tier): str(Money(r.cost_nano)) for r in rows}


def event_count(app: App, org_id: str) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(usage_events).where(usage_events.c.organization_id == org_id)
            ).scalar_one()
        )


def key_map(org: dict[str, str]) -> dict[str, str]:
    return parse_key_map({ALICE_KEY: "Alice@Acme.test", BOB_KEY: org["bob"]})


def test_a_usage_report_becomes_priced_events_of_the_mapped_members(app: App, org: dict[str, str]) -> None:
    result = import_anthropic_usage(app, OPERATOR, org["id"], report("anthropic_usage_report.json"), key_map(org))
    assert (result.rows, result.accepted, result.duplicates) == (4, 4, 0)
    assert costs_by_member_and_model(app, org["id"]) == {
        (org["alice"], "claude-sonnet-4-5", "standard"): "0.054399",  # DESIGN.md's check
        (org["alice"], "claude-haiku-4-5", "batch"): "1.00",  # $2.00 at standard rates, half at the batch tier
        (org["bob"], "claude-sonnet-4-5", "standard"): "0.96",
        (org["bob"], "claude-opus-4-6", "standard"): "2.00",
    }


def test_importing_the_same_report_again_counts_once(app: App, org: dict[str, str]) -> None:
    import_anthropic_usage(app, OPERATOR, org["id"], report("anthropic_usage_report.json"), key_map(org))
    again = import_anthropic_usage(app, OPERATOR, org["id"], report("anthropic_usage_report.json"), key_map(org))
    assert (again.accepted, again.duplicates) == (0, 4)
    assert event_count(app, org["id"]) == 4


def test_a_report_with_an_unmapped_key_writes_nothing(app: App, org: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest, match=BOB_KEY):
        import_anthropic_usage(
            app, OPERATOR, org["id"], report("anthropic_usage_report.json"), parse_key_map({ALICE_KEY: org["alice"]})
        )
    assert event_count(app, org["id"]) == 0


def test_a_key_map_naming_a_stranger_writes_nothing(app: App, org: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest, match="mallory@evil.test"):
        import_anthropic_usage(
            app,
            OPERATOR,
            org["id"],
            report("anthropic_usage_report.json"),
            parse_key_map({ALICE_KEY: org["alice"], BOB_KEY: "mallory@evil.test"}),
        )
    assert event_count(app, org["id"]) == 0


def test_a_report_with_an_unpriced_model_writes_nothing(app: App, org: dict[str, str]) -> None:
    document = report("anthropic_usage_report.json")
    document["data"][1]["results"][0]["model"] = "claude-imaginary-9"
    with pytest.raises(UnknownModel, match="claude-imaginary-9"):
        import_anthropic_usage(app, OPERATOR, org["id"], document, key_map(org))
    assert event_count(app, org["id"]) == 0


def test_reconcile_shows_per_day_and_model_where_the_vendor_differs(app: App, org: dict[str, str]) -> None:
    import_anthropic_usage(app, OPERATOR, org["id"], report("anthropic_usage_report.json"), key_map(org))
    differences = reconcile_anthropic_cost(app, OPERATOR, org["id"], report("anthropic_cost_report.json"))
    rows = [(d.day, d.model, str(d.ours), str(d.theirs), str(d.delta)) for d in differences]
    assert rows == [
        (date(2026, 11, 2), "claude-haiku-4-5", "1.00", "1.00", "0.00"),
        (date(2026, 11, 2), "claude-sonnet-4-5", "1.014399", "1.014399", "0.00"),
        (date(2026, 11, 3), "(web_search)", "0.00", "0.12", "-0.12"),
        (date(2026, 11, 3), "claude-opus-4-6", "2.00", "2.05", "-0.05"),
    ]


def test_reconcile_before_any_import_shows_the_vendor_side_alone(app: App, org: dict[str, str]) -> None:
    differences = reconcile_anthropic_cost(app, OPERATOR, org["id"], report("anthropic_cost_report.json"))
    assert all(d.ours == Money.zero() for d in differences)
    assert sum((d.theirs for d in differences), Money.zero()) == Money.parse("4.184399")
