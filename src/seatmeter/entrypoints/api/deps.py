"""Request dependencies: the wired App, and the principal behind the request's key."""

from __future__ import annotations

from fastapi import Request

from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.services.organizations import authenticate

__all__ = ["get_app", "principal"]


def get_app(request: Request) -> App:
    app: App = request.app.state.seatmeter
    return app


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key")


def principal(request: Request) -> Principal:
    app = get_app(request)
    return authenticate(app.uow(), bearer(request), app.settings.operator_key)
