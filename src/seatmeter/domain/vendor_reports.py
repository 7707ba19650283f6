"""The Anthropic Admin API's reports, read into seatmeter's terms, and their comparison with seatmeter's costs.

`usage_report/messages` answers `{"data": [bucket, ...], "has_more", "next_page"}`; a bucket has `starting_at`,
`ending_at` and `results`, one per group (`api_key_id`, `model`, `service_tier`, `workspace_id`, ... when the
report was grouped by them) with `uncached_input_tokens`, `cache_creation.ephemeral_5m_input_tokens`,
`cache_creation.ephemeral_1h_input_tokens`, `cache_read_input_tokens` and `output_tokens`.

`cost_report` has the same buckets; each result has `amount`, a decimal string in the currency's lowest unit
(cents: "123.45" is USD 1.2345), and, when grouped by description, `model`, `service_tier`, `cost_type` and
`token_type`.

A file may hold one response or a list of pages of responses. Nothing is accepted partly: a bad row makes the
whole file an `InvalidRequest` naming the row.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import NANO_PER_CENT, Money
from seatmeter.domain.pricing import Usage

__all__ = [
    "CostRow",
    "Difference",
    "UsageRow",
    "bucket_windows",
    "cents_to_money",
    "compare_costs",
    "parse_cost_report",
    "parse_usage_report",
]


@dataclass(frozen=True, slots=True)
class UsageRow:
    starting_at: datetime
    ending_at: datetime
    api_key_id: str | None
    workspace_id: str | None
    model: str
    service_tier: str
    context_window: str | None
    usage: Usage

    @property
    def idempotency_key(self) -> str:
        """The same row of the same report always gives the same key, so re-importing counts once."""
        parts = (
            self.starting_at.isoformat(),
            self.ending_at.isoformat(),
            self.api_key_id or "",
            self.workspace_id or "",
            self.model,
            self.service_tier,
            self.context_window or "",
        )
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
        return f"anthropic-usage:{self.starting_at:%Y-%m-%dT%H:%M}:{digest}"


@dataclass(frozen=True, slots=True)
class CostRow:
    day: date
    model: str | None  # None for costs that are not tokens (web search, code execution)
    service_tier: str | None
    cost_type: str | None
    token_type: str | None
    amount: Money


@dataclass(frozen=True, slots=True)
class Difference:
    day: date
    model: str
    ours: Money
    theirs: Money

    @property
    def delta(self) -> Money:
        return self.ours - self.theirs


def _pages(document: Any) -> Iterator[Mapping[str, Any]]:
    pages = document if isinstance(document, list) else [document]
    for i, page in enumerate(pages):
        if not isinstance(page, Mapping) or not isinstance(page.get("data"), list):
            raise InvalidRequest(f"page {i} of the report must be an object with a `data` list of time buckets")
        yield page


def _buckets(document: Any) -> Iterator[tuple[str, datetime, datetime, list[Any]]]:
    for p, page in enumerate(_pages(document)):
        for b, bucket in enumerate(page["data"]):
            where = f"page {p} bucket {b}"
            if not isinstance(bucket, Mapping):
                raise InvalidRequest(f"{where} must be an object")
            starting_at = _instant(bucket.get("starting_at"), f"{where}.starting_at")
            ending_at = _instant(bucket.get("ending_at"), f"{where}.ending_at")
            if ending_at <= starting_at:
                raise InvalidRequest(f"{where} ends before it starts")
            results = bucket.get("results")
            if not isinstance(results, list):
                raise InvalidRequest(f"{where}.results must be a list")
            yield where, starting_at, ending_at, results


def bucket_windows(document: Any) -> list[tuple[datetime, datetime]]:
    """The `[starting_at, ending_at)` of every bucket of a report."""
    return [(starting_at, ending_at) for _, starting_at, ending_at, _ in _buckets(document)]


def _instant(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where} must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{where} must be an RFC 3339 timestamp, got {value!r}") from None
    if parsed.tzinfo is None:
        raise InvalidRequest(f"{where} must carry a time zone, got {value!r}")
    return parsed


def _tokens(result: Mapping[str, Any], name: str, where: str) -> int:
    value = result.get(name, 0)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise InvalidRequest(f"{where}.{name} must be a whole number of tokens, got {value!r}")
    return value


def _optional_str(result: Mapping[str, Any], name: str, where: str) -> str | None:
    value = result.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{where}.{name} must be a string or null")
    return value


def parse_usage_report(document: Any) -> list[UsageRow]:
    """Rows of a `usage_report/messages` response (or a list of its pages), grouped by `api_key_id` and `model`."""
    rows: list[UsageRow] = []
    for bucket_where, starting_at, ending_at, results in _buckets(document):
        for r, result in enumerate(results):
            where = f"{bucket_where} result {r}"
            if not isinstance(result, Mapping):
                raise InvalidRequest(f"{where} must be an object")
            model = _optional_str(result, "model", where)
            if not model:
                raise InvalidRequest(f"{where} has no model: export the report grouped by model and api_key_id")
            tier = result.get("service_tier") or "standard"
            if tier not in ("standard", "batch"):
                raise InvalidRequest(f"{where}.service_tier {tier!r} has no price in seatmeter (standard, batch)")
            cache_creation = result.get("cache_creation")
            if cache_creation is None:
                # The flattened spelling some exports use.
                cache_creation = {
                    "ephemeral_5m_input_tokens": result.get("cache_creation_5m_input_tokens", 0),
                    "ephemeral_1h_input_tokens": result.get("cache_creation_1h_input_tokens", 0),
                }
            if not isinstance(cache_creation, Mapping):
                raise InvalidRequest(f"{where}.cache_creation must be an object")
            usage = Usage(
                input=_tokens(result, "uncached_input_tokens", where),
                output=_tokens(result, "output_tokens", where),
                cache_write_5m=_tokens(cache_creation, "ephemeral_5m_input_tokens", f"{where}.cache_creation"),
                cache_write_1h=_tokens(cache_creation, "ephemeral_1h_input_tokens", f"{where}.cache_creation"),
                cache_read=_tokens(result, "cache_read_input_tokens", where),
            )
            rows.append(
                UsageRow(
                    starting_at,
                    ending_at,
                    _optional_str(result, "api_key_id", where),
                    _optional_str(result, "workspace_id", where),
                    model,
                    tier,
                    _optional_str(result, "context_window", where),
                    usage,
                )
            )
    return rows


def cents_to_money(text: Any, where: str) -> Money:
    """A decimal string of cents ("123.45") as Money, exact to the nano-dollar (rounded once, half-up, beyond)."""
    if not isinstance(text, str):
        raise InvalidRequest(f'{where} must be a decimal string of cents such as "123.45"')
    try:
        cents = Fraction(text.strip())
    except ValueError:
        raise InvalidRequest(f"{where} must be a decimal string of cents, got {text!r}") from None
    return Money.from_ratio(cents * NANO_PER_CENT)


def parse_cost_report(document: Any) -> list[CostRow]:
    """Rows of a `cost_report` response (or a list of its pages). Amounts are in cents; only USD is accepted."""
    rows: list[CostRow] = []
    for bucket_where, starting_at, _ending_at, results in _buckets(document):
        for r, result in enumerate(results):
            where = f"{bucket_where} result {r}"
            if not isinstance(result, Mapping):
                raise InvalidRequest(f"{where} must be an object")
            currency = result.get("currency", "USD")
            if currency != "USD":
                raise InvalidRequest(f"{where}.currency must be USD, got {currency!r}")
            rows.append(
                CostRow(
                    day=starting_at.date(),
                    model=_optional_str(result, "model", where),
                    service_tier=_optional_str(result, "service_tier", where),
                    cost_type=_optional_str(result, "cost_type", where),
                    token_type=_optional_str(result, "token_type", where),
                    amount=cents_to_money(result.get("amount"), f"{where}.amount"),
                )
            )
    return rows


def compare_costs(
    ours: Mapping[tuple[date, str], Money], theirs: Iterable[tuple[date, str, Money]]
) -> list[Difference]:
    """Per day and model, seatmeter's cost next to the vendor's; every key of either side, sorted."""
    vendor: dict[tuple[date, str], Money] = defaultdict(Money.zero)
    for day, model, amount in theirs:
        vendor[(day, model)] += amount
    keys = sorted(set(ours) | set(vendor))
    return [
        Difference(day, model, ours.get((day, model), Money.zero()), vendor.get((day, model), Money.zero()))
        for day, model in keys
    ]
