"""Usage events and hold requests as validated values, with the fingerprints that make replays safe."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
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
    "EventFields",
    "event_fingerprint",
    "fingerprint",
    "parse_event",
    "parse_events",
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
_EVENT_FIELDS = frozenset(
    {"idempotency_key", "member_id", "model", "surface", "occurred_at", "service_tier", *USAGE_FIELDS}
)
_SURFACE_SET = frozenset(SURFACES)
_TIER_SET = frozenset(SERVICE_TIERS)

# One event of a batch as a plain tuple, in this order: idempotency_key, member_id, model, surface, occurred_at,
# service_tier, input, output, cache_write_5m, cache_write_1h, cache_read tokens. A batch of 10,000 events is
# validated into these instead of UsageEvent objects: the per-event objects were a third of the batch's time.
EventFields = tuple[str, str, str, str, datetime, str, int, int, int, int, int]


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def event_fingerprint(
    member_id: str,
    model: str,
    surface: str,
    timestamp: str,
    service_tier: str,
    input_tokens: int,
    cache_write_5m_tokens: int,
    cache_write_1h_tokens: int,
    cache_read_tokens: int,
    output_tokens: int,
) -> str:
    """`UsageEvent.fingerprint` without the event object: the same parts, the same hash, the same text.

    `timestamp` is `str(occurred_at.timestamp())`, which a batch computes once per distinct instant.
    """
    text = (
        f"{member_id}\x1f{model}\x1f{surface}\x1f{timestamp}\x1f{service_tier}\x1f{input_tokens}\x1f"
        f"{cache_write_5m_tokens}\x1f{cache_write_1h_tokens}\x1f{cache_read_tokens}\x1f{output_tokens}"
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


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


def parse_events(raw_events: Sequence[Any]) -> list[EventFields]:
    """`parse_event` for every event of a batch, as tuples, with exactly its errors (the first bad event's).

    The loop checks the common shape (a dict of exact types) inline. Anything it does not accept, it hands to
    `parse_event`, which raises the precise error or, for shapes only it accepts (a Mapping that is not a dict,
    a datetime object, a str subclass), returns the event. So the fast checks may be stricter than
    `parse_event`, never looser, and every message comes from one place.
    """
    times: dict[str, datetime] = {}  # occurred_at text -> parsed: a batch often repeats its instants
    fields, surfaces, tiers, max_tokens = _EVENT_FIELDS, _SURFACE_SET, _TIER_SET, MAX_TOKENS_PER_KIND
    hold_prefix = SETTLED_HOLD_KEY_PREFIX
    out: list[EventFields] = []
    append = out.append
    for index, raw in enumerate(raw_events):
        if type(raw) is dict and raw.keys() <= fields:
            get = raw.get
            key = get("idempotency_key")
            member_id = get("member_id")
            model = get("model")
            surface = get("surface")
            tier = get("service_tier", "standard")
            input_tokens = get("input_tokens")
            output_tokens = get("output_tokens")
            write_5m = get("cache_write_5m_tokens")
            write_1h = get("cache_write_1h_tokens")
            read = get("cache_read_tokens")
            if write_5m is None:
                write_5m = 0
            if write_1h is None:
                write_1h = 0
            if read is None:
                read = 0
            at_raw = get("occurred_at")
            at = times.get(at_raw) if type(at_raw) is str else None
            if at is None and type(at_raw) is str:
                try:
                    parsed = datetime.fromisoformat(at_raw.replace("Z", "+00:00"))
                except ValueError:
                    parsed = None
                if parsed is not None and parsed.tzinfo is not None:
                    at = times[at_raw] = parsed
            if (
                at is not None
                and type(key) is str
                and 0 < len(key) <= 200
                and not key.startswith(hold_prefix)
                and type(member_id) is str
                and 0 < len(member_id) <= 40
                and type(model) is str
                and 0 < len(model) <= 100
                and type(surface) is str
                and surface in surfaces
                and type(tier) is str
                and tier in tiers
                and type(input_tokens) is int
                and 0 <= input_tokens <= max_tokens
                and type(output_tokens) is int
                and 0 <= output_tokens <= max_tokens
                and type(write_5m) is int
                and 0 <= write_5m <= max_tokens
                and type(write_1h) is int
                and 0 <= write_1h <= max_tokens
                and type(read) is int
                and 0 <= read <= max_tokens
            ):
                append(
                    (
                        key,
                        member_id,
                        model,
                        surface,
                        at,
                        tier,
                        input_tokens,
                        output_tokens,
                        write_5m,
                        write_1h,
                        read,
                    )
                )
                continue
        event = parse_event(raw, index)
        usage = event.usage
        append(
            (
                event.idempotency_key,
                event.member_id,
                event.model,
                event.surface,
                event.occurred_at,
                event.service_tier,
                usage.input,
                usage.output,
                usage.cache_write_5m,
                usage.cache_write_1h,
                usage.cache_read,
            )
        )
    return out


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
