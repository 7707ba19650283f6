"""The metering half of the Anthropic gateway: admit a request under a hold, then settle or void it.

admit: who is calling (a member key, or the organization's service key naming a member), is the model
priced, how much can the request cost at most (a bound of its input plus `max_tokens` of output), and a
hold with `allow_partial` for it. A partial grant comes back as fewer output tokens: the caller lowers
`max_tokens` to it. Everything here is synchronous and short; the HTTP layer runs it in a thread.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import Conflict, Forbidden, InvalidRequest
from seatmeter.domain.money import Money
from seatmeter.domain.pricing import Usage
from seatmeter.domain.prompt_size import input_tokens_bound, requested_max_tokens
from seatmeter.services import holds
from seatmeter.services.organizations import authenticate
from seatmeter.services.usage import record_usage

__all__ = ["Admission", "admit", "identify", "settle", "settle_at_most", "shape_request", "usage_body", "void"]

MIN_THINKING_BUDGET_TOKENS = 1_024  # the vendor refuses smaller extended-thinking budgets


@dataclass(frozen=True)
class Admission:
    principal: Principal
    organization_id: str
    member_id: str
    hold_id: str
    model: str
    surface: str
    admitted_at: datetime
    input_tokens_bound: int
    requested_max_tokens: int
    granted_max_tokens: int

    @property
    def lowered(self) -> bool:
        return self.granted_max_tokens < self.requested_max_tokens


def identify(app: App, key: str | None, member_header: str | None) -> tuple[Principal, str, str]:
    """The principal, organization and member a gateway request is made for."""
    principal = authenticate(app.uow(), key, app.settings.operator_key)
    if principal.kind is PrincipalKind.MEMBER and principal.organization_id and principal.member_id:
        if member_header and member_header != principal.member_id:
            raise Forbidden(
                "a member key can only make requests for its own member",
                resume="Leave out x-seatmeter-member, or use the organization's service key.",
            )
        return principal, principal.organization_id, principal.member_id
    if principal.kind is PrincipalKind.SERVICE and principal.organization_id:
        if not member_header:
            raise InvalidRequest(
                "a service key must name the member it calls for in the x-seatmeter-member header",
                resume="Add x-seatmeter-member: <member id>, or use the member's own key.",
            )
        return principal, principal.organization_id, member_header
    raise Forbidden(
        "the gateway meters calls of an organization's members; the operator key has no member",
        resume="Use a member key, or a service key with x-seatmeter-member.",
    )


def admit(app: App, key: str | None, body: Any, *, surface: str = "api", member_header: str | None = None) -> Admission:
    """Authenticate, check the model and the request, and hold its largest possible cost.

    The key is checked first, as the vendor does: a caller without a valid key learns nothing about the body.
    `body` is the parsed JSON, or None when it was not JSON.
    """
    principal, org_id, member_id = identify(app, key, member_header)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object of a Messages API request")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest('model is required, e.g. "claude-sonnet-4-5"')
    app.prices.resolving(model).resolve(model)  # unknown models are refused before anything is held or sent
    max_tokens = requested_max_tokens(body)
    bound = input_tokens_bound(body)
    hold = holds.authorize(
        app,
        principal,
        org_id,
        {
            "idempotency_key": f"gateway:{uuid.uuid4().hex}",
            "member_id": member_id,
            "model": model,
            "surface": surface,
            "estimate": {"input_tokens": bound, "max_output_tokens": max_tokens},
            "allow_partial": True,
        },
    )
    granted = hold.max_output_tokens if hold.max_output_tokens is not None else max_tokens
    admission = Admission(
        principal,
        org_id,
        member_id,
        hold.id,
        model,
        surface,
        app.clock.now(),
        bound,
        max_tokens,
        min(granted, max_tokens),
    )
    budget = _thinking_budget(body)
    if budget is not None and admission.granted_max_tokens <= MIN_THINKING_BUDGET_TOKENS < max_tokens:
        # Extended thinking needs max_tokens above its minimum budget: a grant this small cannot be used.
        void(app, admission)
        raise InvalidRequest(
            f"only {admission.granted_max_tokens} output tokens fit under this member's limits, fewer than extended "
            f"thinking needs ({MIN_THINKING_BUDGET_TOKENS + 1})",
            resume="Send the request without thinking, or ask an owner to raise the cap or buy credits.",
        )
    return admission


def _thinking_budget(body: dict[str, Any]) -> int | None:
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        return budget if type(budget) is int else None
    return None


def shape_request(body: dict[str, Any], admission: Admission) -> dict[str, Any]:
    """The body to forward: `max_tokens` lowered to the grant, and a thinking budget that still fits under it."""
    if not admission.lowered:
        return body
    shaped = {**body, "max_tokens": admission.granted_max_tokens}
    budget = _thinking_budget(body)
    if budget is not None and budget >= admission.granted_max_tokens:
        shaped["thinking"] = {
            **body["thinking"],
            "budget_tokens": max(MIN_THINKING_BUDGET_TOKENS, admission.granted_max_tokens - 1),
        }
    return shaped


def usage_body(usage: Usage, service_tier: str) -> dict[str, Any]:
    return {
        "usage": {
            "input_tokens": usage.input,
            "output_tokens": usage.output,
            "cache_write_5m_tokens": usage.cache_write_5m,
            "cache_write_1h_tokens": usage.cache_write_1h,
            "cache_read_tokens": usage.cache_read,
        },
        "service_tier": service_tier,
    }


def settle(app: App, admission: Admission, usage: Usage, service_tier: str = "standard") -> Money:
    """Settle the hold with the vendor's usage; returns the cost.

    A generation can outlast the hold's timeout. The usage still happened, so when the hold has expired it is
    recorded after the fact (always accepted and billed), once, under a key derived from the hold.
    """
    # Refresh the price-book cache now, outside the settle's transaction: on SQLite a refresh from inside it
    # would wait for the write lock that transaction holds (a stream outlasts the cache's refresh interval).
    app.prices.get()
    try:
        settled = holds.settle(
            app, admission.principal, admission.organization_id, admission.hold_id, usage_body(usage, service_tier)
        )
    except Conflict as refused:
        if refused.code != "hold_not_open":
            raise
        return _record_late(app, admission, usage, service_tier)
    return settled.cost


def _record_late(app: App, admission: Admission, usage: Usage, service_tier: str) -> Money:
    event = {
        "idempotency_key": f"gateway-late:{admission.hold_id}",
        "member_id": admission.member_id,
        "model": admission.model,
        "surface": admission.surface,
        "occurred_at": admission.admitted_at.isoformat(),
        **usage_body(usage, service_tier)["usage"],
        "service_tier": service_tier,
    }
    record_usage(app, Principal(PrincipalKind.OPERATOR), admission.organization_id, {"events": [event]})
    return app.prices.get().cost(admission.model, usage, admission.admitted_at, service_tier).cost


def settle_at_most(app: App, admission: Admission) -> Money:
    """When the vendor's usage cannot be read, bill the request's bound: the member paid for at most this."""
    return settle(app, admission, Usage(input=admission.input_tokens_bound, output=admission.granted_max_tokens))


def void(app: App, admission: Admission) -> None:
    holds.void(app, admission.principal, admission.organization_id, admission.hold_id)
