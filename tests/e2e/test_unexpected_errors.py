"""An error nobody foresaw still answers with the documented envelope, not a bare text/plain 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from seatmeter.bootstrap import App
from seatmeter.entrypoints.api.app import create_app
from seatmeter.services import organizations
from tests.conftest import OPERATOR_KEY


def test_an_unexpected_error_is_a_500_in_the_error_envelope(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(organizations, "list_organizations", broken)
    with TestClient(create_app(app), raise_server_exceptions=False) as client:
        response = client.get("/v1/organizations", headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "something nobody foresaw" not in error["message"]  # no internals leak to clients
    assert error["resume"]
