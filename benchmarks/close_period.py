"""Period close for one organization of 10,000 members and 2,000,000 events, when billing has landed."""

from __future__ import annotations

import importlib

from benchmarks.registry import Result, Size, register

__all__ = ["close_period"]


@register("close_period")
def close_period(size: Size) -> Result:
    try:
        billing = importlib.import_module("seatmeter.services.billing")
    except ModuleNotFoundError:
        billing = None
    if billing is None or not hasattr(billing, "close_period"):
        return Result.skipped(
            "close_period", "s", "seatmeter.services.billing.close_period is not on this branch yet (issue 3)"
        )
    return Result.skipped("close_period", "s", "close_period exists but its benchmark is not written yet")
