"""seatmeter benchmarks: each measures the engine and, in the same run on the same database, the raw limit.

`python -m benchmarks [NAME ...] [--quick]` runs them and writes bench-results.json: a list of
{"name", "value", "unit", "raw_limit", "ratio"}. For a throughput, ratio = value / raw_limit; for a latency,
ratio = raw_limit / value. Either way 1.0 means "as fast as the hand-written statements", higher is better.

Benchmarks register themselves with @register; modules from other branches (gateway_overhead) join the
registry by being listed in MODULES.
"""

from __future__ import annotations

from benchmarks.registry import REGISTRY, Result, Size, register

__all__ = ["REGISTRY", "Result", "Size", "register"]
