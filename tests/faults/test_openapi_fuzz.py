"""A hand-written fuzz over /openapi.json (schemathesis is not in the lock): every operation, with the keys of
every role, gets well-formed and malformed bodies, odd path parameters and odd queries. No answer may be a 5xx,
and every error must be the documented envelope {"error": {"code", "message", "resume"}}."""

from __future__ import annotations

import random
from typing import Any

from fastapi.testclient import TestClient

from seatmeter.bootstrap import App
from seatmeter.entrypoints.api.app import create_app
from seatmeter.entrypoints.api.errors import STATUS
from tests.conftest import OPERATOR_KEY, Api, add_member, create_org

ODD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    2**63,
    -(2**63),
    1.5,
    "",
    "x" * 5000,
    "0.1",
    "-5.00",
    "1e400",
    [],
    {},
    [1, 2],
    {"a": {"b": None}},
    "2026-11-15T12:00:00",
    "2026-13-45",
    "\u0000",
    "💥",
    "NaN",
]
ODD_PATH = ["x", "org_does_not_exist", "%00", "..", "a" * 300, "🙂", "hold_0000"]


def _schema_body(spec: dict[str, Any], schema: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return _schema_body(spec, rng.choice(schema[union]), rng, depth + 1)
    kind = schema.get("type")
    if depth > 4 or rng.random() < 0.1:
        return rng.choice(ODD_VALUES)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        out = {name: _schema_body(spec, sub, rng, depth + 1) for name, sub in props.items() if rng.random() < 0.85}
        if rng.random() < 0.1:
            out["unexpected_field"] = rng.choice(ODD_VALUES)
        return out
    if kind == "array":
        return [_schema_body(spec, schema.get("items", {}), rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "integer":
        return rng.choice([0, 1, 100, 4096, -1, 10**12])
    if kind == "number":
        return rng.choice([0, 1.5, -2])
    if kind == "boolean":
        return rng.choice([True, False])
    if kind == "string":
        if "enum" in schema:
            return rng.choice(schema["enum"])
        return rng.choice(["claude-sonnet-4-5", "api", "1.00", "2026-11-15T11:00:00Z", "k-1", "UTC", "a@b.test", ""])
    return rng.choice(ODD_VALUES)


def _check(method: str, path: str, response: Any) -> str | None:
    if path.startswith("/gateway/") and "/../" not in path:  # ".." leaves the gateway's routes
        return _check_gateway(method, path, response)
    if response.status_code >= 500:
        return f"{method} {path}: {response.status_code} {response.text[:200]}"
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            assert set(error) == {"code", "message", "resume"} and error["code"] in STATUS and error["message"]
        except Exception:  # noqa: BLE001 - any deviation from the envelope is the finding
            return f"{method} {path}: {response.status_code} not in the envelope: {response.text[:200]}"
    return None


def _check_gateway(method: str, path: str, response: Any) -> str | None:
    """The gateway answers as the Messages API does, {"type": "error", "error": {...}}, with seatmeter's code and
    resume inside. With no upstream in this test, forwarding fails with a clean 503 service_unavailable."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
        error = body["error"]
        assert body["type"] == "error" and error["type"] and error["message"]
        assert error["code"] in STATUS and "resume" in error
        assert response.status_code < 500 or error["code"] == "service_unavailable"
    except Exception:  # noqa: BLE001 - any deviation from the envelope is the finding
        return f"{method} {path}: {response.status_code} not in the gateway's envelope: {response.text[:200]}"
    return None


def test_fuzzed_requests_with_every_role_never_get_a_5xx_and_errors_keep_the_envelope(api: Api, app: App) -> None:
    org = create_org(api)
    member = add_member(api, org, "m@acme.test")
    owner = add_member(api, org, "o@acme.test", role="owner")
    api.post(
        f"/v1/organizations/{org.id}/credits/purchases",
        {"amount": "50.00", "idempotency_key": "c"},
        key=org.owner_key,
        expect=201,
    )
    keys = [OPERATOR_KEY, org.owner_key, owner["api_key"], member["api_key"], org.service_key, None, "sm_bogus"]
    hold = api.post(
        f"/v1/organizations/{org.id}/holds",
        {
            "idempotency_key": "h",
            "member_id": member["id"],
            "model": "claude-sonnet-4-5",
            "surface": "api",
            "estimate": {"amount": "0.01"},
        },
        key=org.service_key,
        expect=201,
    )["id"]
    good = {"org": org.id, "member": member["id"], "hold": hold, "invoice": "inv_x"}
    rng = random.Random(20261127)
    client = TestClient(create_app(app), raise_server_exceptions=False)
    spec = client.get("/openapi.json").json()
    problems: list[str] = []
    calls = 0
    for path, operations in spec["paths"].items():
        if path.startswith("/gateway/"):
            continue  # the gateway speaks the upstream's API and error shape (issue 5), and needs an upstream
        for method, op in operations.items():
            body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            for i in range(24):
                params = {
                    p: (good.get(p, "x") if rng.random() < 0.8 else rng.choice(ODD_PATH))
                    for p in [s.strip("{}") for s in path.split("/") if s.startswith("{")]
                }
                url = path.format(**params)
                query = {
                    q["name"]: rng.choice(["2026-11", "2026-1", "x", ""])
                    for q in op.get("parameters", [])
                    if q.get("in") == "query" and rng.random() < 0.5
                }
                key = keys[i % len(keys)]
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                kwargs: dict[str, Any] = {"headers": headers, "params": query}
                if body_schema is not None:
                    if rng.random() < 0.1:
                        kwargs["content"] = rng.choice([b"{", b"[]", b"null", b"\xff\xfe", b'{"a": 1e999}'])
                        headers["content-type"] = "application/json"
                    else:
                        kwargs["json"] = _schema_body(spec, body_schema, rng)
                response = client.request(method.upper(), url, **kwargs)
                calls += 1
                problem = _check(method.upper(), url, response)
                if problem:
                    problems.append(problem)
    assert calls > 200
    assert not problems, "\n".join(problems[:20])


def test_every_reference_in_the_openapi_document_resolves(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if isinstance(node.get("$ref"), str) else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    missing = sorted({r for r in refs if r.rsplit("/", 1)[1] not in spec["components"]["schemas"]})
    assert refs and not missing
