from datetime import UTC, datetime

from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.services.gateway import Admission, shape_request

BODY = {"model": "claude-sonnet-4-6", "max_tokens": 8000, "messages": [{"role": "user", "content": "hi"}]}


def admission(granted: int, requested: int = 8000) -> Admission:
    return Admission(
        Principal(PrincipalKind.MEMBER, "org", "mem", "member"),
        "org",
        "mem",
        "hold",
        "claude-sonnet-4-6",
        "api",
        datetime(2026, 11, 15, tzinfo=UTC),
        100,
        requested,
        granted,
    )


def test_a_full_grant_forwards_the_body_unchanged():
    assert shape_request(BODY, admission(8000)) is BODY


def test_a_partial_grant_lowers_max_tokens_and_leaves_the_rest():
    shaped = shape_request(BODY, admission(1500))
    assert shaped == {**BODY, "max_tokens": 1500}
    assert BODY["max_tokens"] == 8000  # the member's body is not changed in place


def test_a_thinking_budget_is_lowered_below_the_granted_max_tokens():
    body = {**BODY, "thinking": {"type": "enabled", "budget_tokens": 6000}}
    shaped = shape_request(body, admission(3000))
    assert shaped["max_tokens"] == 3000
    assert shaped["thinking"] == {"type": "enabled", "budget_tokens": 2999}


def test_a_thinking_budget_that_still_fits_is_kept():
    body = {**BODY, "thinking": {"type": "enabled", "budget_tokens": 2000}}
    assert shape_request(body, admission(3000))["thinking"]["budget_tokens"] == 2000
