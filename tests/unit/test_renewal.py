from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import Money
from seatmeter.domain.proration import Term
from seatmeter.domain.renewal import compare_costs, plan_renewal
from seatmeter.domain.seats import SeatAllowance

TERM = Term.starting(date(2024, 1, 1))
PRICES = {"enterprise": Money.parse("60.00"), "chat": Money.parse("30.00"), "chat_code": Money.parse("150.00")}


def test_a_usage_based_renewal_rolls_the_term_and_charges_the_year_up_front():
    renewal = plan_renewal(
        plan="usage_based",
        term=TERM,
        quantities={"enterprise": 5},
        reductions={},
        member_seats={"a": "enterprise"},
        seat_prices=PRICES,
    )
    assert renewal.term == Term(date(2025, 1, 1), date(2026, 1, 1))
    assert [str(line.amount) for line in renewal.charge_lines] == ["3600.00"]
    assert renewal.refund_lines == ()


def test_a_scheduled_reduction_applies_but_never_unseats_a_member():
    renewal = plan_renewal(
        plan="usage_based",
        term=TERM,
        quantities={"enterprise": 5},
        reductions={"enterprise": 4},
        member_seats={"a": "enterprise", "b": "enterprise", "c": None},
        seat_prices=PRICES,
    )
    assert renewal.quantities == {"enterprise": 2}
    assert any("stops at 2 seats" in note for note in renewal.notes)


def test_a_legacy_organization_moves_every_seated_member_to_the_enterprise_seat():
    renewal = plan_renewal(
        plan="usage_based_legacy",
        term=TERM,
        quantities={"chat": 3, "chat_code": 2},
        reductions={"chat": 1},
        member_seats={"a": "chat", "b": "chat_code", "c": None},
        seat_prices=PRICES,
    )
    assert renewal.plan == "usage_based"
    assert renewal.quantities == {"enterprise": 4}
    assert renewal.member_seats == {"a": "enterprise", "b": "enterprise", "c": None}


def test_a_seat_based_organization_moves_to_usage_based():
    renewal = plan_renewal(
        plan="seat_based",
        term=TERM,
        quantities={"standard": 2, "premium": 1},
        reductions={},
        member_seats={"a": "standard", "b": "premium"},
        seat_prices=PRICES,
    )
    assert renewal.plan == "usage_based"
    assert renewal.quantities == {"enterprise": 3}
    assert renewal.refund_lines == ()  # seat-based seats were billed monthly: nothing unused to refund


def test_an_early_migration_starts_a_new_term_and_refunds_the_unused_days():
    renewal = plan_renewal(
        plan="usage_based_legacy",
        term=TERM,
        quantities={"chat": 10},
        reductions={},
        member_seats={},
        seat_prices=PRICES,
        effective=date(2024, 4, 1),
    )
    assert renewal.term == Term(date(2024, 4, 1), date(2025, 4, 1))
    assert [str(line.amount) for line in renewal.refund_lines] == ["-2704.92"]  # 3600 × 275/366


def test_a_migration_needs_an_enterprise_seat_price():
    with pytest.raises(InvalidRequest, match="enterprise"):
        plan_renewal(
            plan="seat_based",
            term=TERM,
            quantities={"standard": 1},
            reductions={},
            member_seats={"a": "standard"},
            seat_prices={},
        )


def test_a_dry_run_compares_the_same_months_under_both_plans():
    allowances = {"standard": SeatAllowance("standard", Money.parse("25.00"), Money.parse("10.00"))}
    comparison = compare_costs(
        plan="seat_based",
        quantities={"standard": 2},
        member_seats={"a": "standard", "b": "standard"},
        seat_prices={"enterprise": Money.parse("20.00")},
        allowances=allowances,
        monthly_spend=[
            ("2024-01", {"a": Money.parse("15.00"), "b": Money.parse("3.00")}),
            ("2024-02", {"a": Money.parse("0.005")}),
        ],
    )
    assert [(m.period, str(m.current), str(m.new)) for m in comparison.months] == [
        ("2024-01", "55.00", "58.00"),  # 2 × 25 + 5 extra; 2 × 20 + 18 usage
        ("2024-02", "50.00", "40.01"),
    ]
    assert str(comparison.current_total) == "105.00"


seat_types = st.sampled_from(["chat", "chat_code", None])


@given(
    st.dictionaries(st.text(min_size=1, max_size=5), seat_types, max_size=30), st.integers(0, 40), st.integers(0, 40)
)
def test_a_renewal_keeps_every_member_and_every_seated_member_keeps_a_seat(members, extra, reduction):
    quantities = {
        "chat": sum(s == "chat" for s in members.values()) + extra,
        "chat_code": sum(s == "chat_code" for s in members.values()),
    }
    renewal = plan_renewal(
        plan="usage_based_legacy",
        term=TERM,
        quantities=quantities,
        reductions={"chat": reduction},
        member_seats=members,
        seat_prices=PRICES,
    )
    assert set(renewal.member_seats) == set(members)
    seated = sum(s is not None for s in renewal.member_seats.values())
    assert seated == sum(s is not None for s in members.values())
    assert renewal.quantities.get("enterprise", 0) >= seated
