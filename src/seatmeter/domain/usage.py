"""Usage events and hold requests as validated values, with the fingerprints that make replays safe."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.money import Money
from seatmeter.domain.organization import SURFACES, choose
from seatmeter.domain.pricing import MAX_TOKENS_PER_KIND, SERVICE_TIERS, Usage

__all__ = [
    "SETTLED_HOLD_KEY_PREFIX",
    "USAGE_FIELDS",
    "HoldRequest",
    "UsageEvent",
    "fingerprint",
    "parse_event",
    "parse_time",
    "parse_usage",
    "text_field",
]

USAGE_FIELDS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_write_5m_tokens": "cache_write_5m",
    "cache_write_1h_tokens": "cache_write_1h",
    "cache_read_tokens": "cache_read",
}
# A settled hold records its event under "hold:<hold id>"; keys of recorded usage may not take that form,
# or an event recorded first would make the hold impossible to settle.
SETTLED_HOLD_KEY_PREFIX = "hold:"
_EVENT_FIELDS = {"idempotency_key", "member_id", "model", "surface", "occurred_at", "service_tier", *USAGE_FIELDS}


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def text_field(raw: Mapping[str, Any], name: str, max_len: int = 200) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise InvalidRequest(f"{name} must be a string of 1 to {max_len} characters")
    return value


def _tokens(raw: Mapping[str, Any], name: str, required: bool) -> int:
    if name not in raw or raw[name] is None:
        if required:
            raise InvalidRequest(f"{name} is required")
        return 0
    value = raw[name]
    if type(value) is not int or not 0 <= value <= MAX_TOKENS_PER_KIND:
        raise InvalidRequest(f"{name} must be a whole number from 0 to {MAX_TOKENS_PER_KIND:,}, got {value!r}")
    return value


def _is_mapping(value: Any) -> bool:
    # JSON bodies are dicts: the exact type check answers first, and the ABC check (slow) only for the rest.
    return type(value) is dict or isinstance(value, Mapping)


def parse_usage(raw: Any, *, required: tuple[str, ...] = ()) -> Usage:
    if not _is_mapping(raw):
        raise InvalidRequest("usage must be an object of token counts")
    if not raw.keys() <= USAGE_FIELDS.keys():
        unknown = sorted(set(raw) - set(USAGE_FIELDS))
        raise InvalidRequest(f"usage has unknown fields: {', '.join(unknown)}")
    return Usage(**{kind: _tokens(raw, name, name in required) for name, kind in USAGE_FIELDS.items()})


def parse_time(raw: Any, name: str) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequest(f"{name} must be an ISO 8601 date-time, got {raw!r}") from None
    else:
        raise InvalidRequest(f"{name} must be an ISO 8601 date-time string")
    if value.tzinfo is None:
        raise InvalidRequest(
            f"{name} must carry a time zone (e.g. 2026-11-27T10:00:00Z); times without one are "
            f"ambiguous and are refused"
        )
    return value


@dataclass(frozen=True, slots=True)
class UsageEvent:
    idempotency_key: str
    member_id: str
    model: str
    surface: str
    occurred_at: datetime
    service_tier: str
    usage: Usage

    @property
    def fingerprint(self) -> str:
        return fingerprint(
            self.member_id,
            self.model,
            self.surface,
            self.occurred_at.timestamp(),
            self.service_tier,
            *self.usage.as_tuple(),
        )


def parse_event(raw: Any, index: int) -> UsageEvent:
    where = f"events[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{where} must be an object")
    try:
        unknown = sorted(set(raw) - _EVENT_FIELDS)
        if unknown:
            raise InvalidRequest(f"unknown fields {', '.join(unknown)}")
        key = text_field(raw, "idempotency_key")
        if key.startswith(SETTLED_HOLD_KEY_PREFIX):
            raise InvalidRequest(
                f"idempotency_key may not start with {SETTLED_HOLD_KEY_PREFIX!r}, "
                f"which names the events of settled holds"
            )
        return UsageEvent(
            idempotency_key=key,
            member_id=text_field(raw, "member_id", 40),
            model=text_field(raw, "model", 100),
            surface=choose(raw.get("surface"), SURFACES, "surface"),
            occurred_at=parse_time(raw.get("occurred_at"), "occurred_at"),
            service_tier=choose(raw.get("service_tier", "standard"), SERVICE_TIERS, "service_tier"),
            usage=parse_usage(
                {k: raw[k] for k in USAGE_FIELDS if k in raw}, required=("input_tokens", "output_tokens")
            ),
        )
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}: {exc.message}; no event of this batch was recorded") from None


@dataclass(frozen=True, slots=True)
class HoldRequest:
    idempotency_key: str
    member_id: str
    model: str
    surface: str
    amount: Money | None
    input_tokens: int
    max_output_tokens: int
    allow_partial: bool

    @classmethod
    def parse(cls, raw: Any) -> HoldRequest:
        if not _is_mapping(raw):
            raise InvalidRequest("the body must be a JSON object")
        estimate = raw.get("estimate")
        if not _is_mapping(estimate):
            raise InvalidRequest(
                'estimate must be {"amount": "0.40"} or {"input_tokens": 1200, "max_output_tokens": 4096}'
            )
        allow_partial = raw.get("allow_partial", False)
        if not isinstance(allow_partial, bool):
            raise InvalidRequest("allow_partial must be true or false")
        amount: Money | None = None
        input_tokens = max_output = 0
        if "amount" in estimate:
            if set(estimate) != {"amount"}:
                raise InvalidRequest("estimate takes either amount or token counts, not both")
            amount = Money.parse(estimate["amount"], field="estimate.amount")
            if amount.nano <= 0:
                raise InvalidRequest("estimate.amount must be more than 0")
        else:
            input_tokens = _tokens(estimate, "input_tokens", True)
            max_output = _tokens(estimate, "max_output_tokens", True)
            if max_output < 1:
                raise InvalidRequest("estimate.max_output_tokens must be at least 1")
        return cls(
            idempotency_key=text_field(raw, "idempotency_key"),
            member_id=text_field(raw, "member_id", 40),
            model=text_field(raw, "model", 100),
            surface=choose(raw.get("surface", "api"), SURFACES, "surface"),
            amount=amount,
            input_tokens=input_tokens,
            max_output_tokens=max_output,
            allow_partial=allow_partial,
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint(
            self.member_id,
            self.model,
            self.surface,
            self.amount,
            self.input_tokens,
            self.max_output_tokens,
            self.allow_partial,
        )
