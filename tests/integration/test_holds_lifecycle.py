"""Holds from grant to their one ending: settle, void or expiry, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from seatmeter.adapters.clock import FixedClock
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import Conflict, CreditsExhausted, Forbidden, UnknownModel
from seatmeter.services import credits, holds, organizations, price_book, seats, usage

OPERATOR = Principal(PrincipalKind.OPERATOR)


@pytest.fixture
def org(app: App) -> dict[str, str]:
    created, owner = organizations.create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Acme",
            "timezone": "UTC",
            "plan": "usage_based",
            "channel": "self_serve",
            "term_start": "2026-01-01",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "olive@acme.test", "name": "Olive"},
        },
        app.clock.now(),
    )
    seats.add_seats(app, OPERATOR, created.id, {"seat_type": "enterprise", "quantity": 2})
    seats.assign_seat(app, OPERATOR, created.id, owner.id, {"seat_type": "enterprise"})
    credits.buy_credits(app.uow(), OPERATOR, created.id, "10.00", "p1", app.clock.now())
    return {"id": created.id, "owner": owner.id}


def authorize(app: App, org: dict[str, str], key: str, amount: str = "4.00", **extra: Any) -> holds.HoldView:
    return holds.authorize(
        app,
        OPERATOR,
        org["id"],
        {
            "idempotency_key": key,
            "member_id": org["owner"],
            "model": "claude-haiku-4-5",
            "surface": "web",
            "estimate": {"amount": amount},
            **extra,
        },
    )


def available(app: App, org: dict[str, str]) -> str:
    return str(credits.get_credits(app.uow(), OPERATOR, org["id"]).available)


def test_an_unsettled_hold_expires_after_its_timeout_and_releases_its_amount(
    app: App, clock: FixedClock, org: dict[str, str]
) -> None:
    hold = authorize(app, org, "h1")
    assert hold.expires_at == clock.now().replace(minute=10)
    assert available(app, org) == "6.00"
    clock.advance(seconds=599)
    assert holds.expire_holds(app.uow(), clock.now()) == 0
    clock.advance(seconds=1)
    assert holds.expire_holds(app.uow(), clock.now()) == 1
    assert available(app, org) == "10.00"
    with pytest.raises(Conflict) as refused:
        holds.settle(app, OPERATOR, org["id"], hold.id, {"usage": {"input_tokens": 1, "output_tokens": 1}})
    assert refused.value.code == "hold_not_open" and "expired" in refused.value.message


def test_a_refused_authorization_first_releases_overdue_holds_of_its_organization(
    app: App, clock: FixedClock, org: dict[str, str]
) -> None:
    authorize(app, org, "h1", "9.00")
    with pytest.raises(CreditsExhausted):
        authorize(app, org, "h2", "9.00")
    clock.advance(minutes=11)  # h1 is overdue, and no sweep has run yet
    assert authorize(app, org, "h3", "9.00").amount.nano == 9_000_000_000


def test_a_hold_past_its_timeout_cannot_be_settled_even_before_the_sweep(
    app: App, clock: FixedClock, org: dict[str, str]
) -> None:
    hold = authorize(app, org, "h1")
    clock.advance(minutes=10)
    with pytest.raises(Conflict) as refused:
        holds.settle(app, OPERATOR, org["id"], hold.id, {"usage": {"input_tokens": 1, "output_tokens": 1}})
    assert refused.value.code == "hold_not_open"
    assert available(app, org) == "6.00"  # still held until the sweep releases it
    holds.expire_holds(app.uow(), clock.now())
    assert available(app, org) == "10.00"


def test_void_releases_everything_and_a_second_void_answers_the_same(app: App, org: dict[str, str]) -> None:
    hold = authorize(app, org, "h1")
    assert holds.void(app, OPERATOR, org["id"], hold.id).status == "voided"
    assert holds.void(app, OPERATOR, org["id"], hold.id).replayed
    assert available(app, org) == "10.00"
    with pytest.raises(Conflict):
        holds.settle(app, OPERATOR, org["id"], hold.id, {"usage": {"input_tokens": 1, "output_tokens": 1}})


def test_settling_above_the_hold_posts_the_real_cost_and_flags_it(app: App, org: dict[str, str]) -> None:
    hold = authorize(app, org, "h1", "0.01")
    # Haiku 4.5: 10,000 output tokens at 5 USD/MTok = 0.05, five times what was held.
    settled = holds.settle(app, OPERATOR, org["id"], hold.id, {"usage": {"input_tokens": 0, "output_tokens": 10_000}})
    assert str(settled.cost) == "0.05" and settled.exceeded_hold
    assert available(app, org) == "9.95"


def test_a_settle_sent_again_gets_its_own_first_answer_and_posts_nothing_more(app: App, org: dict[str, str]) -> None:
    first, second = authorize(app, org, "h1", "0.01"), authorize(app, org, "h2", "0.01")
    body = {"usage": {"input_tokens": 0, "output_tokens": 10_000}}  # 0.05: past the hold, so flagged
    answer = holds.settle(app, OPERATOR, org["id"], first.id, body)
    other = holds.settle(app, OPERATOR, org["id"], second.id, {"usage": {"input_tokens": 0, "output_tokens": 1_000}})
    assert answer.event_id != other.event_id
    # Each replay finds its hold's own event (by its key, hold:<id>): the same id, cost and flag, nothing posted.
    assert holds.settle(app, OPERATOR, org["id"], first.id, body) == answer
    assert (
        holds.settle(app, OPERATOR, org["id"], second.id, {"usage": {"input_tokens": 0, "output_tokens": 1_000}})
        == other
    )
    assert (str(answer.cost), answer.exceeded_hold, str(other.cost), other.exceeded_hold) == (
        "0.05",
        True,
        "0.005",
        False,
    )
    assert available(app, org) == "9.945"
    with pytest.raises(Conflict):  # the same hold with other usage is refused
        holds.settle(app, OPERATOR, org["id"], first.id, {"usage": {"input_tokens": 1, "output_tokens": 10_000}})


def test_a_member_key_cannot_settle_another_members_hold(app: App, org: dict[str, str]) -> None:
    other = organizations.add_member(app.uow(), OPERATOR, org["id"], {"email": "bob@acme.test"}, app.clock.now())
    hold = authorize(app, org, "h1")
    bob = Principal(PrincipalKind.MEMBER, org["id"], other.id, "member")
    with pytest.raises(Forbidden):
        holds.settle(app, bob, org["id"], hold.id, {"usage": {"input_tokens": 1, "output_tokens": 1}})
    assert available(app, org) == "6.00"


def test_an_unknown_model_is_refused_before_anything_is_held(app: App, org: dict[str, str]) -> None:
    with pytest.raises(UnknownModel):
        holds.authorize(
            app,
            OPERATOR,
            org["id"],
            {
                "idempotency_key": "h1",
                "member_id": org["owner"],
                "model": "claude-imaginary-9",
                "surface": "web",
                "estimate": {"input_tokens": 10, "max_output_tokens": 10},
            },
        )
    assert available(app, org) == "10.00"


def test_a_model_the_operator_adds_is_priced_at_once_and_past_prices_stay(
    app: App, clock: FixedClock, org: dict[str, str]
) -> None:
    price_book.add_version(
        app.uow(),
        OPERATOR,
        {
            "id": "new-model",
            "effective_from": "2026-01-01T00:00:00Z",
            "models": {
                "claude-newmodel-1": {
                    "input": "1",
                    "cache_write_5m": "1.25",
                    "cache_write_1h": "2",
                    "cache_read": "0.10",
                    "output": "5",
                }
            },
        },
        clock.now(),
    )
    event = {
        "idempotency_key": "e1",
        "member_id": org["owner"],
        "model": "claude-newmodel-1-20261101",
        "surface": "api",
        "occurred_at": "2026-11-02T00:00:00Z",
        "input_tokens": 1_000_000,
        "output_tokens": 0,
    }
    assert usage.record_usage(app, OPERATOR, org["id"], {"events": [event]}) == {"accepted": 1, "duplicates": 0}
    assert available(app, org) == "9.00"
    # Repricing a model that already has a price, in the past, would change recorded usage: refused.
    with pytest.raises(Exception, match="from now on"):
        price_book.add_version(
            app.uow(),
            OPERATOR,
            {
                "id": "cheaper-haiku",
                "effective_from": "2026-11-01T00:00:00Z",
                "models": {
                    "claude-haiku-4-5": {
                        "input": "0.5",
                        "cache_write_5m": "1",
                        "cache_write_1h": "1",
                        "cache_read": "0.05",
                        "output": "2",
                    }
                },
            },
            clock.now(),
        )


def test_overdue_holds_stay_released_when_the_authorization_that_found_them_is_still_refused(
    app: App, clock: FixedClock, org: dict[str, str]
) -> None:
    authorize(app, org, "h1", "4.00")
    clock.advance(minutes=11)
    with pytest.raises(CreditsExhausted):
        authorize(app, org, "h2", "20.00")
    assert available(app, org) == "10.00"


def test_the_database_refuses_a_hold_that_would_take_a_limit_past_its_ceiling(app: App, org: dict[str, str]) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    authorize(app, org, "h1", "6.00")
    # A bug that skipped the guarded UPDATE would still meet the CHECK constraint: 6.00 + 5.00 > 10.00.
    with pytest.raises(IntegrityError, match="within_limit"), app.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE limit_accounts SET held_nano = held_nano + 5000000000 "
                "WHERE organization_id = :o AND account = 'credits'"
            ),
            {"o": org["id"]},
        )
    assert available(app, org) == "4.00"


def test_spend_that_cannot_be_refused_goes_past_the_limit_as_overdraft(app: App, org: dict[str, str]) -> None:
    from sqlalchemy import text

    event = {
        "idempotency_key": "e1",
        "member_id": org["owner"],
        "model": "claude-haiku-4-5",
        "surface": "api",
        "occurred_at": "2026-11-15T11:00:00Z",
        "input_tokens": 12_000_000,
        "output_tokens": 0,
    }
    usage.record_usage(app, OPERATOR, org["id"], {"events": [event]})  # 12.00 on 10.00 of credits
    with pytest.raises(CreditsExhausted):
        authorize(app, org, "h2", "0.01")
    with app.engine.connect() as conn:
        overdraft = conn.execute(
            text("SELECT overdraft_nano FROM limit_accounts WHERE organization_id = :o AND account = 'credits'"),
            {"o": org["id"]},
        ).scalar_one()
    assert overdraft == 2_000_000_000
    assert available(app, org) == "-2.00"
