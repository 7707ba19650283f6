"""Process-local counters, served at /metrics in the Prometheus text format."""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["count", "render"]

_lock = threading.Lock()
_counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
_HELP = {
    "seatmeter_http_requests_total": "HTTP requests answered, by route and status code.",
    "seatmeter_holds_total": "Hold requests, by outcome (granted, partial, refused code).",
    "seatmeter_usage_events_total": "Usage events, by outcome (accepted, duplicate).",
    "seatmeter_hold_batches_relocked_total": (
        "Batches of holds decided again under the lock (PostgreSQL), by reason: refused, seat_based, "
        "rows_missing (a period row to create), failed (a grant no longer fit, a key taken, a deadlock)."
    ),
}


def count(name: str, value: int = 1, **labels: str) -> None:
    with _lock:
        _counters[(name, tuple(sorted(labels.items())))] += value


def render() -> str:
    with _lock:
        items = sorted(_counters.items())
    lines: list[str] = []
    seen: set[str] = set()
    for (name, labels), value in items:
        if name not in seen:
            seen.add(name)
            lines.append(f"# HELP {name} {_HELP.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
        label_text = ",".join(f'{k}="{v}"' for k, v in labels)
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return "\n".join(lines) + "\n"
