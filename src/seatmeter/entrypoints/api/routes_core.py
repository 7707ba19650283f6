"""Organizations, members, keys, credits, caps, holds, usage and the price book, as API.md lays them out."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from seatmeter.adapters import metrics
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import InvalidRequest, UsageRefused
from seatmeter.entrypoints.api import schemas
from seatmeter.entrypoints.api.deps import get_app, principal
from seatmeter.services import billing, caps, credits, holds, organizations, price_book, usage

router = APIRouter(prefix="/v1")
AppDep = Annotated[App, Depends(get_app)]
Who = Annotated[Principal, Depends(principal)]


def _org_json(org: Any) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "timezone": org.timezone,
        "plan": org.plan,
        "channel": org.channel,
        "term_start": org.term_start.isoformat(),
        "billing_anchor_day": org.billing_anchor_day,
        "seat_prices": {k: str(v) for k, v in org.seat_prices.items()},
    }


def _dump(body: schemas.Body) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude_unset=True)


# -- organizations, members, keys ------------------------------------------------------------------
@router.post("/organizations", status_code=201, tags=["organizations"])
def create_organization(body: schemas.OrganizationCreate, app: AppDep, who: Who) -> dict[str, Any]:
    org, owner = organizations.create_organization(app.uow(), who, _dump(body), app.clock.now())
    return {**_org_json(org), "primary_owner": {"id": owner.id, "email": owner.email, "api_key": owner.api_key}}


@router.get("/organizations", tags=["organizations"])
def list_organizations(app: AppDep, who: Who) -> dict[str, Any]:
    return {"data": [_org_json(o) for o in organizations.list_organizations(app.uow(), who)]}


@router.get("/organizations/{org}", tags=["organizations"])
def get_organization(org: str, app: AppDep, who: Who) -> dict[str, Any]:
    return _org_json(organizations.get_organization(app.uow(), who, org))


@router.post("/organizations/{org}/members", status_code=201, tags=["organizations"])
def add_member(org: str, body: schemas.MemberCreate, app: AppDep, who: Who) -> dict[str, Any]:
    m = organizations.add_member(app.uow(), who, org, _dump(body), app.clock.now())
    return {"id": m.id, "email": m.email, "name": m.name, "role": m.role, "api_key": m.api_key}


@router.get("/organizations/{org}/members", tags=["organizations"])
def list_members(org: str, app: AppDep, who: Who) -> dict[str, Any]:
    return {"data": organizations.list_members(app.uow(), who, org)}


@router.post("/organizations/{org}/service-keys", status_code=201, tags=["organizations"])
def create_service_key(org: str, app: AppDep, who: Who) -> dict[str, str]:
    return {"api_key": organizations.create_service_key(app.uow(), who, org, app.clock.now())}


# -- credits and caps ------------------------------------------------------------------------------
@router.post("/organizations/{org}/credits/purchases", status_code=201, tags=["credits"])
def buy_credits(org: str, body: schemas.CreditPurchase, app: AppDep, who: Who) -> dict[str, Any]:
    balance, invoice = credits.buy_credits(app.uow(), who, org, body.amount, body.idempotency_key, app.clock.now())
    return {**balance.to_json(), "invoice": invoice}


@router.get("/organizations/{org}/credits", tags=["credits"])
def get_credits(org: str, app: AppDep, who: Who) -> dict[str, str]:
    return credits.get_credits(app.uow(), who, org).to_json()


@router.put("/organizations/{org}/caps/organization", tags=["caps"])
def set_organization_cap(org: str, body: schemas.CapSet, app: AppDep, who: Who) -> dict[str, Any]:
    return caps.set_cap(app.uow(), who, org, "organization", body.limit, app.clock.now())


@router.put("/organizations/{org}/caps/member-default", tags=["caps"])
def set_member_default_cap(org: str, body: schemas.CapSet, app: AppDep, who: Who) -> dict[str, Any]:
    return caps.set_cap(app.uow(), who, org, "member_default", body.limit, app.clock.now())


@router.put("/organizations/{org}/caps/members/{member}", tags=["caps"])
def set_member_cap(org: str, member: str, body: schemas.CapSet, app: AppDep, who: Who) -> dict[str, Any]:
    return caps.set_cap(app.uow(), who, org, "member", body.limit, app.clock.now(), member_id=member)


@router.delete("/organizations/{org}/caps/members/{member}", status_code=204, tags=["caps"])
def clear_member_cap(org: str, member: str, app: AppDep, who: Who) -> None:
    """Remove the member's own cap, so the default member cap applies to them again."""
    caps.clear_member_cap(app.uow(), who, org, member, app.clock.now())


@router.get("/organizations/{org}/caps", tags=["caps"])
def list_caps(
    org: str, app: AppDep, who: Who, period: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None
) -> dict[str, Any]:
    return caps.list_caps(app.uow(), who, org, app.clock.now(), period)


# -- holds and usage -------------------------------------------------------------------------------
@router.post(
    "/organizations/{org}/holds",
    status_code=201,
    tags=["usage"],
    responses={402: {"description": "credits_exhausted"}, 429: {"description": "a cap is reached"}},
)
async def create_hold(org: str, body: schemas.HoldCreate, app: AppDep, who: Who) -> JSONResponse:
    return await hold_response(app, who, org, body)


async def hold_response(app: App, who: Principal, org: str, body: schemas.HoldCreate) -> JSONResponse:
    """The hold route's work once the body is valid and the caller known; the lean path (fastpath.py) calls it too."""
    try:
        # Group commit: decided with the concurrent holds of the organization, in a worker thread.
        view = await app.hold_batches.authorize_async(who, org, _dump(body))
    except UsageRefused as refused:
        metrics.count("seatmeter_holds_total", outcome=refused.code)
        raise
    metrics.count("seatmeter_holds_total", outcome="granted")
    return JSONResponse(view.to_json(), status_code=200 if view.replayed else 201)


@router.post("/organizations/{org}/holds/{hold}/settle", tags=["usage"])
def settle_hold(org: str, hold: str, body: schemas.HoldSettle, app: AppDep, who: Who) -> dict[str, Any]:
    return settle_json(app, who, org, hold, body)


def settle_json(app: App, who: Principal, org: str, hold: str, body: schemas.HoldSettle) -> dict[str, Any]:
    """The settle route's work (in the thread pool); the lean path calls it too."""
    return holds.settle(app, who, org, hold, _dump(body)).to_json()


@router.post("/organizations/{org}/holds/{hold}/void", tags=["usage"])
def void_hold(org: str, hold: str, app: AppDep, who: Who) -> dict[str, Any]:
    return holds.void(app, who, org, hold).to_json()


@router.post(
    "/organizations/{org}/usage",
    tags=["usage"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": schemas.UsageBatch.model_json_schema(ref_template="#/components/schemas/{model}")
                }
            },
        }
    },
)
async def record_usage(org: str, request: Request, app: AppDep, who: Who) -> dict[str, int]:
    # The body is parsed once, by the domain's own validation: batches of 10,000 events are the hot path.
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidRequest("the body is not valid JSON") from None
    result: dict[str, int] = await run_in_threadpool(usage.record_usage, app, who, org, body)
    metrics.count("seatmeter_usage_events_total", result["accepted"], outcome="accepted")
    metrics.count("seatmeter_usage_events_total", result["duplicates"], outcome="duplicate")
    return result


@router.get("/organizations/{org}/usage/summary", tags=["usage"])
def usage_summary(
    org: str, app: AppDep, who: Who, period: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None
) -> dict[str, Any]:
    return usage.usage_summary(app, who, org, period)


# -- invoices (read) and the price book --------------------------------------------------------------
@router.get("/organizations/{org}/invoices", tags=["billing"])
def list_invoices(org: str, app: AppDep, who: Who) -> dict[str, Any]:
    return billing.list_invoices(app, who, org)


@router.get("/price-book", tags=["price book"])
def get_price_book(app: AppDep) -> dict[str, Any]:
    book = app.prices.get(fresh=True)
    return {"versions": [v.to_json() for v in book.versions]}


@router.post("/price-book/versions", status_code=201, tags=["price book"])
def add_price_version(body: schemas.PriceBookVersion, app: AppDep, who: Who) -> dict[str, Any]:
    version = price_book.add_version(app.uow(), who, body.model_dump(mode="json"), app.clock.now())
    app.prices.get(fresh=True)
    return version.to_json()
