"""The registry of benchmark functions and the shape of a result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REGISTRY", "Result", "Size", "register"]


@dataclass(frozen=True)
class Size:
    """How big a run is: `quick` for smoke runs (seconds), the full size for figures."""

    quick: bool
    postgres_url: str

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Result:
    name: str
    value: float | None
    unit: str
    raw_limit: float | None
    ratio: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def throughput(cls, name: str, value: float, raw: float | None, unit: str, **extra: Any) -> Result:
        ratio = round(value / raw, 3) if raw else None
        return cls(name, round(value, 1), unit, None if raw is None else round(raw, 1), ratio, extra)

    @classmethod
    def latency(cls, name: str, value_ms: float, raw_ms: float | None, unit: str = "ms", **extra: Any) -> Result:
        ratio = round(raw_ms / value_ms, 3) if raw_ms and value_ms else None
        return cls(name, _figures(value_ms), unit, None if raw_ms is None else _figures(raw_ms), ratio, extra)

    @classmethod
    def skipped(cls, name: str, unit: str, reason: str) -> Result:
        return cls(name, None, unit, None, None, {"skipped": reason})

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "raw_limit": self.raw_limit,
                "ratio": self.ratio, **self.extra}


def _figures(value: float) -> float:
    """Four significant figures: a latency in seconds from a quick run (a few milliseconds) is not rounded to 0."""
    return float(f"{value:.4g}")


Benchmark = Callable[[Size], Result]
REGISTRY: dict[str, Benchmark] = {}


def register(name: str) -> Callable[[Benchmark], Benchmark]:
    def wrap(fn: Benchmark) -> Benchmark:
        REGISTRY[name] = fn
        return fn

    return wrap
