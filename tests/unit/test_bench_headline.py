"""holds_http's headline: the most holds/s among the closed loops that kept p99 within the bound, without error."""

from __future__ import annotations

from benchmarks.http_bench import P99_BOUND_MS, headline


def _run(done: int, p99_ms: float, errors: int = 0) -> dict[str, object]:
    # 100 latencies: 98 of 1 ms and two at p99_ms, so the 99th percentile is p99_ms.
    return {"done": done, "seconds": 1.0, "errors": errors, "latencies_ms": [1.0] * 98 + [p99_ms] * 2}


def test_the_fastest_run_within_the_bound_is_the_headline() -> None:
    runs = {16: _run(1800, 15.0), 24: _run(2300, 19.0), 32: _run(2600, P99_BOUND_MS + 0.1)}
    assert headline(runs) == 24


def test_a_run_with_errors_is_never_the_headline() -> None:
    runs = {16: _run(1800, 15.0), 24: _run(2300, 19.0, errors=1)}
    assert headline(runs) == 16


def test_when_no_run_stays_within_the_bound_the_lowest_p99_is_the_headline() -> None:
    runs = {16: _run(1200, 31.0), 24: _run(1500, 29.0), 32: _run(1600, 40.0)}
    assert headline(runs) == 24
