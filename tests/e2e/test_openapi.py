"""/openapi.json describes the contract of API.md, errors included, as the server really sends them."""

from __future__ import annotations

from seatmeter.domain.errors import CODES
from tests.conftest import Api

API_MD_PATHS = {
    ("post", "/v1/organizations"),
    ("get", "/v1/organizations/{org}"),
    ("post", "/v1/organizations/{org}/members"),
    ("get", "/v1/organizations/{org}/members"),
    ("post", "/v1/organizations/{org}/service-keys"),
    ("post", "/v1/organizations/{org}/seats"),
    ("post", "/v1/organizations/{org}/seats/reductions"),
    ("put", "/v1/organizations/{org}/members/{member}/seat"),
    ("get", "/v1/organizations/{org}/seats"),
    ("post", "/v1/organizations/{org}/credits/purchases"),
    ("get", "/v1/organizations/{org}/credits"),
    ("put", "/v1/organizations/{org}/caps/organization"),
    ("put", "/v1/organizations/{org}/caps/members/{member}"),
    ("put", "/v1/organizations/{org}/caps/member-default"),
    ("get", "/v1/organizations/{org}/caps"),
    ("post", "/v1/organizations/{org}/holds"),
    ("post", "/v1/organizations/{org}/holds/{hold}/settle"),
    ("post", "/v1/organizations/{org}/holds/{hold}/void"),
    ("post", "/v1/organizations/{org}/usage"),
    ("get", "/v1/organizations/{org}/usage/summary"),
    ("get", "/v1/organizations/{org}/invoices"),
    ("get", "/v1/organizations/{org}/invoices/{invoice}"),
    ("post", "/v1/organizations/{org}/periods/{period}/close"),
    ("post", "/v1/organizations/{org}/renewal"),
    ("get", "/v1/price-book"),
    ("post", "/v1/price-book/versions"),
    ("put", "/v1/organizations/{org}/notification-settings"),
    ("get", "/v1/organizations/{org}/notifications"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("post", "/gateway/anthropic/v1/messages"),
}


def test_every_path_of_the_contract_is_in_the_document(api: Api) -> None:
    spec = api.get("/openapi.json", key=None)
    present = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert API_MD_PATHS - present == set()


def test_errors_are_documented_as_sent_with_the_envelope_and_400_for_invalid_input(api: Api) -> None:
    spec = api.get("/openapi.json", key=None)
    envelope = spec["components"]["schemas"]["Error"]
    assert set(envelope["properties"]["error"]["properties"]["code"]["enum"]) == set(CODES)
    hold = spec["paths"]["/v1/organizations/{org}/holds"]["post"]["responses"]
    assert {"400", "401", "402", "403", "404", "409", "429", "503"} <= set(hold)
    assert hold["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert all("422" not in op["responses"] for ops in spec["paths"].values() for op in ops.values())
    # And the server does answer invalid input with 400 in that envelope.
    body = api.post("/v1/organizations", {"name": 3}, expect=400)
    assert set(body["error"]) == {"code", "message", "resume"} and body["error"]["code"] == "invalid_request"
