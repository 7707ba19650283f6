"""Fault tests. The slow ones (a real server killed or its database restarted) run with SEATMETER_SLOW=1, which
`make faults` sets; `make test` runs the fast ones (authorization matrix, OpenAPI fuzz, read-only SQLite)."""

from __future__ import annotations

import os

import pytest

SLOW = os.environ.get("SEATMETER_SLOW") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SLOW:
        return
    skip = pytest.mark.skip(reason="a slow fault test: run `make faults` (SEATMETER_SLOW=1)")
    for item in items:
        if "slow" in item.keywords and "tests/faults" in str(item.fspath):
            item.add_marker(skip)
