import pytest

from seatmeter.domain.errors import (
    AllowanceExhausted,
    Conflict,
    Forbidden,
    InvalidRequest,
    NoSeat,
    SurfaceNotInSeat,
)
from seatmeter.domain.money import Money
from seatmeter.domain.seats import (
    SURFACES,
    check_allowance,
    check_assignable,
    check_entitlement,
    check_reduction,
    check_seat_type,
    extra_usage,
)


def test_each_plan_has_its_own_seat_types():
    check_seat_type("usage_based", "enterprise")
    check_seat_type("usage_based_legacy", "chat_code")
    check_seat_type("seat_based", "premium")
    with pytest.raises(InvalidRequest, match="chat, chat_code"):
        check_seat_type("usage_based_legacy", "enterprise")


def test_a_member_without_a_seat_is_refused_with_no_seat_and_told_how_to_resume():
    with pytest.raises(NoSeat) as refused:
        check_entitlement(None, "web")
    assert refused.value.code == "no_seat"
    assert "assigns a seat" in refused.value.resume


def test_a_chat_seat_does_not_include_claude_code():
    with pytest.raises(SurfaceNotInSeat) as refused:
        check_entitlement("chat", "claude_code")
    assert refused.value.code == "surface_not_in_seat"
    assert "chat_code" in refused.value.resume


@pytest.mark.parametrize("seat_type", ["enterprise", "chat_code", "standard", "premium"])
@pytest.mark.parametrize("surface", SURFACES)
def test_every_other_seat_includes_every_surface(seat_type, surface):
    check_entitlement(seat_type, surface)


def test_an_unknown_surface_is_an_invalid_request():
    with pytest.raises(InvalidRequest):
        check_entitlement("enterprise", "fax")


def test_self_serve_cannot_remove_seats_mid_term_but_can_schedule_it_for_renewal():
    with pytest.raises(Conflict) as refused:
        check_reduction("self_serve", by_operator=False, at_renewal=False)
    assert refused.value.code == "seat_removal_not_allowed"
    assert "renewal" in refused.value.resume
    check_reduction("self_serve", by_operator=False, at_renewal=True)


def test_on_sales_assisted_only_the_operator_changes_seats_mid_term():
    with pytest.raises(Forbidden):
        check_reduction("sales_assisted", by_operator=False, at_renewal=False)
    check_reduction("sales_assisted", by_operator=True, at_renewal=False)


def test_assigned_seats_never_exceed_purchased_seats():
    check_assignable("enterprise", purchased=2, assigned=2)
    with pytest.raises(InvalidRequest, match="all 2 enterprise seats are assigned"):
        check_assignable("enterprise", purchased=2, assigned=3)


def test_usage_beyond_the_allowance_is_refused_unless_extra_usage_is_enabled():
    allowance = Money.parse("20.00")
    check_allowance(allowance, Money.parse("19.00"), Money.parse("1.00"), extra_usage_enabled=False)
    with pytest.raises(AllowanceExhausted) as refused:
        check_allowance(allowance, Money.parse("19.00"), Money.parse("1.01"), extra_usage_enabled=False)
    assert refused.value.code == "allowance_exhausted"
    check_allowance(allowance, Money.parse("19.00"), Money.parse("100.00"), extra_usage_enabled=True)


def test_extra_usage_is_only_what_goes_past_the_allowance():
    assert extra_usage(Money.parse("25.50"), Money.parse("20.00")) == Money.parse("5.50")
    assert extra_usage(Money.parse("5.00"), Money.parse("20.00")) == Money.zero()
