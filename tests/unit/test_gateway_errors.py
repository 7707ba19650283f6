import json

import pytest

from seatmeter.domain.errors import CODES, MemberCapReached, UnknownModel
from seatmeter.entrypoints.gateway.errors import STATUS_BY_CODE, anthropic_error, refusal_response


def test_every_seatmeter_code_has_a_status():
    assert set(STATUS_BY_CODE) == set(CODES)


@pytest.mark.parametrize(
    "error, status, vendor_type",
    [
        (
            MemberCapReached("your monthly cap of $5.00 is reached", resume="An owner can raise it."),
            429,
            "rate_limit_error",
        ),
        (UnknownModel("model 'gpt-4' is not in the price book"), 400, "invalid_request_error"),
    ],
)
def test_refusals_have_the_anthropic_shape_with_our_code_and_resume(error, status, vendor_type):
    response = refusal_response(error)
    body = json.loads(response.body)
    assert response.status_code == status
    assert body == {
        "type": "error",
        "error": {"type": vendor_type, "message": error.message, "code": error.code, "resume": error.resume},
    }
    assert response.headers["x-should-retry"] == "false"


def test_credits_exhausted_is_a_billing_error():
    body = json.loads(anthropic_error(402, "no credits", code="credits_exhausted").body)
    assert body["error"]["type"] == "billing_error"


def test_only_unavailability_invites_a_retry():
    assert anthropic_error(503, "down", code="service_unavailable").headers["x-should-retry"] == "true"
