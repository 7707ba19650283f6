"""The hot routes (holds, settle, void, usage) are matched first; that is only safe because no other route of
the application can match one of their paths, which this checks on the templates themselves."""

from __future__ import annotations

from fastapi.routing import APIRoute

from seatmeter.bootstrap import App
from seatmeter.entrypoints.api.app import HOT_PATHS, create_app


def _overlap(a: str, b: str) -> bool:
    """Whether some URL path can match both templates (a `{param}` segment matches any one segment)."""
    x, y = a.strip("/").split("/"), b.strip("/").split("/")
    if len(x) != len(y):
        return any(s.endswith(":path}") for s in x + y)  # a catch-all can match any length
    return all(p == q or p.startswith("{") or q.startswith("{") for p, q in zip(x, y, strict=True))


def _routes(app: App) -> list[APIRoute]:
    api = create_app(app)
    found: list[APIRoute] = []
    for route in api.router.routes:
        original = getattr(route, "original_router", None)
        found.extend(r for r in (original.routes if original is not None else [route]) if isinstance(r, APIRoute))
    return found


def test_no_other_route_can_match_a_hot_routes_path(app: App) -> None:
    routes = _routes(app)
    hot = [r for r in routes if r.path in HOT_PATHS]
    assert sorted(r.path for r in hot) == sorted(HOT_PATHS)
    for h in hot:
        for other in routes:
            if other is not h and other.methods & h.methods:
                assert not _overlap(h.path, other.path), (h.path, other.path)


def test_the_hot_routes_come_first_and_the_others_keep_their_order(app: App) -> None:
    from seatmeter.entrypoints.api.routes_core import router

    create_app(app)  # twice: the reordering is idempotent
    paths = [getattr(r, "path", "") for r in router.routes]
    assert set(paths[: len(HOT_PATHS)]) == set(HOT_PATHS)
    rest = paths[len(HOT_PATHS) :]
    assert rest.index("/v1/organizations") < rest.index("/v1/organizations/{org}") < rest.index("/v1/price-book")
    assert "/v1/organizations/{org}/usage/summary" in rest
