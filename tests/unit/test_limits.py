"""decide_grant: all of an estimate, the most that fits, or a refusal naming the narrowest limit in the way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seatmeter.domain.errors import UsageRefused
from seatmeter.domain.limits import CREDITS, ORGANIZATION, Estimate, LimitState, decide_grant, member_account

PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)
CODE = {CREDITS: "credits_exhausted", ORGANIZATION: "organization_cap_reached", "member": "member_cap_reached"}
ORDER = {"member": 0, ORGANIZATION: 1, CREDITS: 2}


def _scope(state: LimitState) -> str:
    return "member" if state.is_member else state.account


limits = st.one_of(st.none(), st.integers(min_value=0, max_value=10**7))


@st.composite
def limit_states(draw: st.DrawFn) -> list[LimitState]:
    states = []
    for account in draw(
        st.sampled_from([[CREDITS, member_account("m"), ORGANIZATION], [member_account("m"), ORGANIZATION]])
    ):
        limit = draw(limits)
        posted = draw(st.integers(min_value=0, max_value=10**7))
        held = draw(st.integers(min_value=0, max_value=10**7))
        states.append(LimitState(account, limit, posted, held))
    return states


estimates = st.one_of(
    st.builds(Estimate, fixed_nano=st.integers(min_value=1, max_value=10**7)),
    st.builds(
        Estimate,
        input_numerator=st.integers(min_value=0, max_value=10**12),
        output_rate=st.integers(min_value=1, max_value=100_000_000),
        max_output_tokens=st.integers(min_value=1, max_value=200_000),
    ),
)


def _rooms(states: list[LimitState]) -> list[int]:
    return [s.room_nano for s in states if s.room_nano is not None]


@given(limit_states(), estimates, st.booleans())
def test_a_grant_never_exceeds_the_smallest_room_and_a_refusal_names_the_narrowest_blocking_limit(
    states: list[LimitState], estimate: Estimate, allow_partial: bool
) -> None:
    rooms = _rooms(states)
    try:
        grant = decide_grant(states, estimate, allow_partial=allow_partial, period_end=PERIOD_END)
    except UsageRefused as refused:
        blocking = [s for s in states if s.room_nano is not None and s.room_nano < estimate.full_nano]
        assert blocking, "refused although every limit had room"
        narrowest = min(blocking, key=lambda s: ORDER[_scope(s)])
        assert refused.code == CODE[_scope(narrowest)]
        assert refused.resume
        if allow_partial and not estimate.from_tokens:
            assert min(rooms) == 0
        return
    assert grant.amount_nano > 0
    assert grant.amount_nano <= estimate.full_nano
    if rooms:
        assert grant.amount_nano <= min(rooms)
    if not rooms or estimate.full_nano <= min(rooms):
        assert grant.amount_nano == estimate.full_nano
    else:
        assert allow_partial


@given(
    room=st.integers(min_value=1, max_value=10**7),
    input_numerator=st.integers(min_value=0, max_value=10**12),
    output_rate=st.integers(min_value=1, max_value=100_000_000),
    max_output=st.integers(min_value=1, max_value=200_000),
)
def test_a_partial_grant_has_the_largest_max_output_tokens_that_fits(
    room: int, input_numerator: int, output_rate: int, max_output: int
) -> None:
    estimate = Estimate(input_numerator=input_numerator, output_rate=output_rate, max_output_tokens=max_output)
    states = [LimitState(CREDITS, room, 0, 0)]
    try:
        grant = decide_grant(states, estimate, allow_partial=True, period_end=PERIOD_END)
    except UsageRefused:
        assert estimate.amount_for(1) > room
        return
    k = grant.max_output_tokens
    assert k is not None and 1 <= k <= max_output
    assert grant.amount_nano == estimate.amount_for(k) <= room
    if k < max_output:
        assert estimate.amount_for(k + 1) > room


def test_a_partial_grant_of_sonnet_output_tokens_is_exact() -> None:
    # 1,000 input at 6/MTok (6,000,000 nano·tokens/MTok) and output at 15/MTok; 0.01 USD of room:
    # 0.006 for the input leaves 0.004, which buys 266 output tokens (0.00399), not 267 (0.004005).
    estimate = Estimate(input_numerator=1_000 * 6_000_000_000, output_rate=15_000_000_000, max_output_tokens=4_096)
    grant = decide_grant([LimitState(CREDITS, 10_000_000, 0, 0)], estimate, allow_partial=True, period_end=PERIOD_END)
    assert grant.max_output_tokens == 266
    assert grant.amount_nano == 9_990_000


def test_an_amount_estimate_with_allow_partial_gets_the_room_left() -> None:
    states = [LimitState(member_account("m"), 500, 100, 150), LimitState(ORGANIZATION, None, 0, 0)]
    grant = decide_grant(states, Estimate(fixed_nano=1_000), allow_partial=True, period_end=PERIOD_END)
    assert (grant.amount_nano, grant.max_output_tokens) == (250, None)


@pytest.mark.parametrize(
    ("rooms", "code"),
    [
        ({CREDITS: 0, "member:m": 0, ORGANIZATION: 0}, "member_cap_reached"),
        ({CREDITS: 0, "member:m": 5_000, ORGANIZATION: 0}, "organization_cap_reached"),
        ({CREDITS: 0, "member:m": None, ORGANIZATION: None}, "credits_exhausted"),
        ({CREDITS: 5_000, "member:m": 100, ORGANIZATION: 5_000}, "member_cap_reached"),
    ],
)
def test_a_refusal_names_the_member_cap_before_the_organization_cap_before_credits(
    rooms: dict[str, int | None], code: str
) -> None:
    states = [LimitState(a, r, 0, 0) for a, r in sorted(rooms.items())]
    with pytest.raises(UsageRefused) as refused:
        decide_grant(states, Estimate(fixed_nano=1_000), allow_partial=False, period_end=PERIOD_END)
    assert refused.value.code == code
    if code != "credits_exhausted":
        assert "2026-12-01T00:00:00+00:00" in refused.value.resume


def test_unlimited_everywhere_grants_the_whole_estimate() -> None:
    states = [LimitState(member_account("m"), None, 10**12, 0), LimitState(ORGANIZATION, None, 10**12, 10**12)]
    grant = decide_grant(states, Estimate(fixed_nano=7), allow_partial=False, period_end=PERIOD_END)
    assert grant.amount_nano == 7
