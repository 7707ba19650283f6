"""The price book: effective-dated versions of per-model token rates, and the cost of usage.

Rates are whole nano-USD per million tokens (USD 0.125/MTok is 125_000_000), so every published price is
exact. A version lists some models; the rate of a model at an instant is the one in the latest version,
effective at or before that instant, that lists the model. Models with long-context pricing carry bands:
the band is chosen by the request's prompt length (input + cache writes + cache reads) and prices the whole
request, output included.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seatmeter.domain.errors import InvalidRequest, UnknownModel
from seatmeter.domain.limits import TOKENS_PER_RATE_UNIT, Estimate
from seatmeter.domain.money import Money

__all__ = [
    "SERVICE_TIERS",
    "BatchPricer",
    "TOKEN_KINDS",
    "Band",
    "ModelPrice",
    "PriceBook",
    "PriceVersion",
    "Rates",
    "Usage",
]

TOKEN_KINDS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
SERVICE_TIERS = ("standard", "batch")
MAX_TOKENS_PER_KIND = 100_000_000  # more than any single request can carry; larger counts are input errors
_DATED_ID = re.compile(r"^(?P<base>.+)-\d{8}$")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request, by kind. Cached tokens are counted once, in their own kind."""

    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0

    def __post_init__(self) -> None:
        for kind in TOKEN_KINDS:
            value = getattr(self, kind)
            if type(value) is not int or value < 0 or value > MAX_TOKENS_PER_KIND:
                raise InvalidRequest(
                    f"{kind} tokens must be a whole number from 0 to {MAX_TOKENS_PER_KIND:,}, got {value!r}"
                )

    @property
    def prompt_tokens(self) -> int:
        return self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.input, self.cache_write_5m, self.cache_write_1h, self.cache_read, self.output)


@dataclass(frozen=True, slots=True)
class Rates:
    """Nano-USD per million tokens, per token kind."""

    input: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    output: int

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> Rates:
        missing = [k for k in TOKEN_KINDS if k not in raw]
        if missing:
            raise InvalidRequest(f"{where}: missing rates for {', '.join(missing)} (USD per million tokens)")
        unknown = sorted(set(raw) - set(TOKEN_KINDS))
        if unknown:
            raise InvalidRequest(f"{where}: unknown token kinds {', '.join(unknown)}")
        values = {}
        for kind in TOKEN_KINDS:
            money = Money.parse(raw[kind], field=f"{where}.{kind}")
            if money.nano < 0:
                raise InvalidRequest(f"{where}.{kind} must not be negative")
            values[kind] = money.nano
        return cls(**values)

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.input, self.cache_write_5m, self.cache_write_1h, self.cache_read, self.output)

    def to_json(self) -> dict[str, str]:
        return {kind: str(Money(getattr(self, kind))) for kind in TOKEN_KINDS}


@dataclass(frozen=True, slots=True)
class Band:
    """Rates that apply when the prompt has more than `above_prompt_tokens` tokens."""

    above_prompt_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    model: str
    bands: tuple[Band, ...]  # sorted by threshold, the first one at 0

    def rates_for(self, prompt_tokens: int) -> Rates:
        chosen = self.bands[0].rates
        for band in self.bands:
            if prompt_tokens > band.above_prompt_tokens:
                chosen = band.rates
        return chosen

    def to_json(self) -> dict[str, Any]:
        first, *rest = self.bands
        out: dict[str, Any] = dict(first.rates.to_json())
        if rest:
            out["bands"] = [{"above_prompt_tokens": b.above_prompt_tokens, **b.rates.to_json()} for b in rest]
        return out


@dataclass(frozen=True, slots=True)
class PriceVersion:
    id: str
    effective_from: datetime
    models: Mapping[str, ModelPrice]
    aliases: Mapping[str, str] = field(default_factory=dict)
    note: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> PriceVersion:
        """Build a version from its JSON shape (the shipped file, the API and the CLI all use it)."""
        try:
            version_id = str(raw["id"])
            effective_from = datetime.fromisoformat(str(raw["effective_from"]))
            models_raw = raw["models"]
        except KeyError as missing:
            raise InvalidRequest(f"a price-book version needs {missing.args[0]!r}") from None
        except ValueError:
            raise InvalidRequest("effective_from must be an ISO 8601 date-time with a time zone") from None
        if effective_from.tzinfo is None:
            raise InvalidRequest("effective_from must carry a time zone, e.g. 2026-12-01T00:00:00Z")
        if not isinstance(models_raw, Mapping) or not models_raw:
            raise InvalidRequest("models must be an object of model id to rates, with at least one model")
        models: dict[str, ModelPrice] = {}
        for model, rates_raw in models_raw.items():
            if not isinstance(rates_raw, Mapping):
                raise InvalidRequest(f"models.{model} must be an object of rates")
            base = {k: v for k, v in rates_raw.items() if k != "bands"}
            bands = [Band(0, Rates.parse(base, f"models.{model}"))]
            for i, band_raw in enumerate(rates_raw.get("bands", [])):
                threshold = band_raw.get("above_prompt_tokens") if isinstance(band_raw, Mapping) else None
                if type(threshold) is not int or threshold <= 0:
                    raise InvalidRequest(f"models.{model}.bands[{i}].above_prompt_tokens must be a positive integer")
                rates = {k: v for k, v in band_raw.items() if k != "above_prompt_tokens"}
                bands.append(Band(threshold, Rates.parse(rates, f"models.{model}.bands[{i}]")))
            bands.sort(key=lambda b: b.above_prompt_tokens)
            models[model] = ModelPrice(model, tuple(bands))
        aliases = dict(raw.get("aliases", {}))
        return cls(version_id, effective_from, models, aliases, str(raw.get("note", "")))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "effective_from": self.effective_from.isoformat(),
            "note": self.note,
            "aliases": dict(self.aliases),
            "models": {name: price.to_json() for name, price in sorted(self.models.items())},
        }


@dataclass(frozen=True, slots=True)
class Priced:
    cost: Money
    version_id: str
    model: str


class PriceBook:
    """All versions, oldest first. Answers: which model is this id, and what did this usage cost then."""

    def __init__(self, versions: Iterable[PriceVersion]) -> None:
        self.versions: tuple[PriceVersion, ...] = tuple(sorted(versions, key=lambda v: v.effective_from))
        self._aliases: dict[str, str] = {}
        for version in self.versions:
            self._aliases.update(version.aliases)
        self._known = {m for v in self.versions for m in v.models}

    def resolve(self, model_id: str) -> str:
        """The price-book model for an API model id: dated ids and aliases resolve to their model."""
        candidate = self._aliases.get(model_id, model_id)
        if candidate in self._known:
            return candidate
        dated = _DATED_ID.match(model_id)
        if dated:
            base = self._aliases.get(dated["base"], dated["base"])
            if base in self._known:
                return base
        raise UnknownModel(
            f"model {model_id!r} is not in the price book, so its usage cannot be priced",
            resume="Use a model listed by GET /v1/price-book, or ask the operator to add this one.",
        )

    def knows(self, model_id: str) -> bool:
        try:
            self.resolve(model_id)
        except UnknownModel:
            return False
        return True

    def price_at(self, model_id: str, at: datetime) -> tuple[str, ModelPrice]:
        model = self.resolve(model_id)
        found: tuple[str, ModelPrice] | None = None
        for version in self.versions:
            if version.effective_from > at:
                break
            if model in version.models:
                found = (version.id, version.models[model])
        if found is None:
            raise UnknownModel(
                f"model {model!r} has no price in effect at {at.isoformat()}",
                resume="Ask the operator to add a price-book version covering that date.",
            )
        return found

    def cost(self, model_id: str, usage: Usage, at: datetime, service_tier: str = "standard") -> Priced:
        """Σ tokens × rate at the version in force at `at`, rounded half-up to the nano-dollar once."""
        version_id, price = self.price_at(model_id, at)
        rates = price.rates_for(usage.prompt_tokens)
        numerator = sum(t * r for t, r in zip(usage.as_tuple(), rates.as_tuple(), strict=True))
        return Priced(
            Money.from_ratio(numerator, TOKENS_PER_RATE_UNIT * _tier_divisor(service_tier)), version_id, price.model
        )

    def estimate(self, model_id: str, input_tokens: int, max_output_tokens: int, at: datetime) -> Estimate:
        """An upper bound for a request before it runs.

        Input tokens are priced at the dearest input-side rate (a 1-hour cache write costs more than plain
        input) in the band the input alone selects, so a settle within `max_output_tokens` never costs more
        than the estimate.
        """
        _, price = self.price_at(model_id, at)
        rates = price.rates_for(input_tokens)
        input_rate = max(rates.input, rates.cache_write_5m, rates.cache_write_1h, rates.cache_read)
        return Estimate(
            input_numerator=input_tokens * input_rate, output_rate=rates.output, max_output_tokens=max_output_tokens
        )


class BatchPricer:
    """`PriceBook.cost` for the many events of one batch, with the same results and the same errors.

    Per model id, the versions that price it are looked up once and an event's version is found by bisection
    on its instant; `Money.from_ratio` stays the one rounding function, called once per distinct ratio.
    """

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        # model id -> (effective_from of each version listing the model, those (version id, price) in order)
        self._models: dict[str, tuple[list[datetime], list[tuple[str, ModelPrice]]]] = {}
        self._rounded: dict[tuple[int, int], int] = {}  # (numerator, denominator) -> nano-USD

    def cost(
        self,
        model_id: str,
        at: datetime,
        service_tier: str,
        input_tokens: int,
        output_tokens: int,
        cache_write_5m_tokens: int,
        cache_write_1h_tokens: int,
        cache_read_tokens: int,
    ) -> tuple[int, str, str]:
        """(cost in nano-USD, price version id, price-book model) of one event: `PriceBook.cost` in parts."""
        versions = self._models.get(model_id)
        if versions is None:
            model = self.book.resolve(model_id)  # raises UnknownModel exactly as PriceBook.cost does
            listed = [(v.effective_from, v.id, v.models[model]) for v in self.book.versions if model in v.models]
            versions = self._models[model_id] = ([s for s, _, _ in listed], [(i, p) for _, i, p in listed])
        starts, prices = versions
        # The last version effective at or before `at`; among equal starts, the later one, as price_at picks.
        index = bisect_right(starts, at) - 1
        # Before the first version listing the model: price_at raises its "no price in effect" error.
        version_id, price = prices[index] if index >= 0 else self.book.price_at(model_id, at)
        if len(price.bands) == 1:
            rates = price.bands[0].rates
        else:
            rates = price.rates_for(input_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens)
        numerator = (
            input_tokens * rates.input
            + cache_write_5m_tokens * rates.cache_write_5m
            + cache_write_1h_tokens * rates.cache_write_1h
            + cache_read_tokens * rates.cache_read
            + output_tokens * rates.output
        )
        ratio = (numerator, TOKENS_PER_RATE_UNIT * _tier_divisor(service_tier))
        nano = self._rounded.get(ratio)
        if nano is None:
            nano = self._rounded[ratio] = Money.from_ratio(*ratio).nano
        return nano, version_id, price.model


def _tier_divisor(service_tier: str) -> int:
    if service_tier == "standard":
        return 1
    if service_tier == "batch":
        return 2  # the batch tier is 50% of standard
    raise InvalidRequest(f"service_tier must be one of {', '.join(SERVICE_TIERS)}, got {service_tier!r}")
