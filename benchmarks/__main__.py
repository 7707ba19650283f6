"""`python -m benchmarks [NAME ...] [--quick] [--out bench-results.json]`."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import DEFAULT_POSTGRES_URL
from benchmarks.registry import REGISTRY, Result, Size

# Each module registers its benchmarks on import. Modules that another branch may not have merged yet
# (gateway_overhead) are optional.
MODULES = ["holds", "http_bench", "ingest", "summary", "close_period"]
OPTIONAL_MODULES = ["gateway_overhead"]


def load() -> None:
    for name in MODULES:
        importlib.import_module(f"benchmarks.{name}")
    for name in OPTIONAL_MODULES:
        try:
            importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise


def _coerce(name: str, out: object) -> Result:
    """Benchmarks from other branches may return a plain dict; keep the common shape."""
    if isinstance(out, Result):
        return out
    if isinstance(out, dict):
        known = {k: out.get(k) for k in ("value", "unit", "raw_limit", "ratio")}
        extra = {k: v for k, v in out.items() if k not in known and k != "name"}
        return Result(name, known["value"], str(known["unit"] or ""), known["raw_limit"], known["ratio"], extra)
    raise TypeError(f"benchmark {name} returned {type(out).__name__}")


def main(argv: list[str] | None = None) -> int:
    load()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(REGISTRY)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    size = Size(quick=args.quick, postgres_url=args.postgres_url)
    results: list[Result] = []
    failed = False
    for name in args.names or list(REGISTRY):
        started = time.perf_counter()
        try:
            result = _coerce(name, REGISTRY[name](size))
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            result = Result(name, None, "", None, None, {"error": f"{exc.__class__.__name__}: {exc}"})
            failed = True
        took = time.perf_counter() - started
        results.append(result)
        if "skipped" in result.extra:
            print(f"{name:<24} skipped: {result.extra['skipped']}", flush=True)
        else:
            print(f"{name:<24} {result.value} {result.unit}  raw_limit {result.raw_limit}  ratio {result.ratio}"
                  f"  {dict(result.extra)}  ({took:.1f}s)", flush=True)
    Path(args.out).write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
