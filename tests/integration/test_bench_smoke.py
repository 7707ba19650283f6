"""`python -m benchmarks --quick` runs every benchmark at a tiny size and writes results in the agreed shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("SEATMETER_TEST_POSTGRES_URL", "")


@pytest.mark.slow
def test_every_benchmark_runs_quickly_and_writes_name_value_unit_raw_limit_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.json"
    # Without PostgreSQL configured, point at a port nothing listens on: those benchmarks must skip, not fail.
    pg = POSTGRES_URL or "postgresql+psycopg://postgres@127.0.0.1:1/none"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), "--postgres-url", pg],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    names = [r["name"] for r in results]
    assert {
        "holds_sqlite",
        "holds_postgres_hot_org",
        "holds_http",
        "ingest_sqlite",
        "ingest_postgres",
        "close_period",
        "summary_10k",
    } <= set(names)
    for r in results:
        assert {"name", "value", "unit", "raw_limit", "ratio"} <= set(r), r
        if "skipped" in r:
            assert r["value"] is None
            continue
        assert r["value"] > 0 and r["raw_limit"] > 0 and r["ratio"] > 0, r
        assert r.get("rows_over_limit", 0) == 0, r
        assert f"{r['name']:<24} {r['value']}" in done.stdout


def test_a_subset_runs_only_the_named_benchmarks(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.json"
    # The test database, never the default benchmark one: `make test` must not empty a developer's test_bench.
    pg = POSTGRES_URL or "postgresql+psycopg://postgres@127.0.0.1:1/none"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "close_period", "--quick", "--out", str(out), "--postgres-url", pg],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [r["name"] for r in json.loads(out.read_text())] == ["close_period"]


def test_an_unknown_benchmark_name_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "no_such_bench", "--out", str(tmp_path / "x.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "unknown benchmark" in done.stderr
