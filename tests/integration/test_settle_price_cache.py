"""A settle must not read the price book from inside its own transaction (on SQLite that waits on itself)."""

from __future__ import annotations

import pytest

from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.services import holds
from seatmeter.services.organizations import add_member, create_organization
from seatmeter.services.seats import add_seats, assign_seat

OPERATOR = Principal(PrincipalKind.OPERATOR)


def test_a_settle_with_a_stale_price_cache_completes_at_once(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    now = app.clock.now()
    org, _ = create_organization(
        app.uow(),
        OPERATOR,
        {
            "name": "Acme",
            "channel": "sales_assisted",
            "seat_prices": {"enterprise": "10.00"},
            "primary_owner": {"email": "owner@acme.test", "name": "Olive"},
        },
        now,
    )
    member = add_member(app.uow(), OPERATOR, org.id, {"email": "dev@acme.test", "name": "Dev", "role": "member"}, now)
    add_seats(app, OPERATOR, org.id, {"seat_type": "enterprise", "quantity": 1})
    assign_seat(app, OPERATOR, org.id, member.id, {"seat_type": "enterprise"})
    hold = holds.authorize(
        app,
        OPERATOR,
        org.id,
        {
            "idempotency_key": "k",
            "member_id": member.id,
            "model": "claude-haiku-4-5",
            "surface": "api",
            "estimate": {"amount": "0.01"},
        },
    )
    monkeypatch.setattr("seatmeter.services.price_book.REFRESH_S", 0.0)  # every read of the book is a refresh
    settled = holds.settle(app, OPERATOR, org.id, hold.id, {"usage": {"input_tokens": 10, "output_tokens": 10}})
    assert str(settled.cost) == "0.00006"
