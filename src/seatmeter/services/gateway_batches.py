"""Message Batches through the gateway: admitted if they fit now, billed at the batch tier when their results are read.

A batch runs for up to 24 hours, far longer than a hold lives, so nothing stays held for it. At submission
the whole batch is checked against the member's limits as one hold of its largest possible cost at the batch
tier (each request's input bound plus its `max_tokens`, at half the standard rates), voided at once: a batch
that could not be paid for now is refused with the limit's code. When its results are read through the
gateway, each succeeded request becomes a usage event of the reading member at the batch tier, keyed by batch
and `custom_id`, so reading the results again records nothing twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import InvalidRequest, SeatmeterError
from seatmeter.domain.limits import TOKENS_PER_RATE_UNIT
from seatmeter.domain.messages_usage import usage_from_message
from seatmeter.domain.money import Money, Rounding
from seatmeter.domain.prompt_size import input_tokens_bound, requested_max_tokens
from seatmeter.services import holds
from seatmeter.services.gateway import identify, usage_body
from seatmeter.services.usage import MAX_BATCH, record_usage

__all__ = ["BatchCaller", "admit_batch", "caller", "record_results"]

MAX_REQUESTS = 100_000  # the vendor's limit per batch
SYSTEM = Principal(PrincipalKind.OPERATOR)  # the gateway records what the vendor reports, as the system


@dataclass(frozen=True)
class BatchCaller:
    principal: Principal
    organization_id: str
    member_id: str
    surface: str


def caller(app: App, key: str | None, *, surface: str = "api", member_header: str | None = None) -> BatchCaller:
    principal, org_id, member_id = identify(app, key, member_header)
    return BatchCaller(principal, org_id, member_id, surface)


def admit_batch(
    app: App, key: str | None, body: Any, *, surface: str = "api", member_header: str | None = None
) -> tuple[BatchCaller, Money]:
    """Check the caller, every request, and that the batch's largest cost at the batch tier fits now."""
    who = caller(app, key, surface=surface, member_header=member_header)
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS:
        raise InvalidRequest(f"requests must be a list of 1 to {MAX_REQUESTS:,} batch requests")
    now = app.clock.now()
    numerator = 0  # nano-USD x tokens / MTok, summed exactly and rounded once
    models = []
    for i, item in enumerate(requests):
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(params, dict) or not isinstance(item.get("custom_id"), str):
            raise InvalidRequest(f"requests[{i}] must be an object with a custom_id and params")
        model = params.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest(f"requests[{i}].params.model is required")
        try:
            book = app.prices.resolving(model)
            estimate = book.estimate(model, input_tokens_bound(params), requested_max_tokens(params), now)
        except SeatmeterError as bad:
            raise type(bad)(f"requests[{i}]: {bad.message}", resume=bad.resume, code=bad.code) from None
        numerator += estimate.input_numerator + estimate.max_output_tokens * estimate.output_rate
        models.append(model)
    at_batch_tier = Money.from_ratio(numerator, TOKENS_PER_RATE_UNIT * 2, rounding=Rounding.UP)
    hold = holds.authorize(
        app,
        who.principal,
        who.organization_id,
        {
            "idempotency_key": f"gateway-batch:{uuid.uuid4().hex}",
            "member_id": who.member_id,
            "model": models[0],
            "surface": surface,
            "estimate": {"amount": str(at_batch_tier)},
        },
    )
    holds.void(app, who.principal, who.organization_id, hold.id)
    return who, at_batch_tier


def record_results(app: App, who: BatchCaller, batch_id: str, ended_at: datetime, content: bytes) -> int:
    """Record each succeeded result of a batch's JSON-lines results; returns how many events were new."""
    events = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            result = item["result"]
            if result.get("type") != "succeeded":
                continue  # errored, canceled and expired requests are not billed
            message = result["message"]
            usage = usage_from_message(message["usage"])
            events.append(
                {
                    "idempotency_key": f"anthropic-batch:{batch_id}:{item['custom_id']}",
                    "member_id": who.member_id,
                    "model": message["model"],
                    "surface": who.surface,
                    "occurred_at": ended_at.isoformat(),
                    **usage_body(usage, "batch")["usage"],
                    "service_tier": "batch",
                }
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidRequest(f"line {number} of the results of {batch_id} is not a batch result: {exc}") from None
    accepted = 0
    for start in range(0, len(events), MAX_BATCH):
        accepted += record_usage(app, SYSTEM, who.organization_id, {"events": events[start : start + MAX_BATCH]})[
            "accepted"
        ]
    return accepted
