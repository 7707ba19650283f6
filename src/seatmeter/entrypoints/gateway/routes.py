"""`POST /gateway/anthropic/v1/messages`: the Messages API, metered and capped.

Point an official SDK at it with no other change than the base URL and the key:
`anthropic.Anthropic(base_url="http://host:8000/gateway/anthropic", api_key=<member key>)`.
Each request is held at its largest possible cost before it is forwarded (with `max_tokens` lowered when only
part of it fits), and settled from the usage the vendor reports, or voided when the vendor fails.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from seatmeter.adapters import metrics
from seatmeter.bootstrap import App
from seatmeter.domain.errors import SeatmeterError
from seatmeter.domain.messages_usage import StreamMeter, service_tier_of, usage_from_message
from seatmeter.entrypoints.gateway.batches import router as batches_router
from seatmeter.entrypoints.gateway.common import caller_key, lifespan, passed_headers, seatmeter_app, upstream_for
from seatmeter.entrypoints.gateway.errors import anthropic_error, refusal_response, upstream_unreachable
from seatmeter.entrypoints.gateway.stream import MeteredStream, unless_disconnected
from seatmeter.services import gateway

__all__ = ["router"]

log = logging.getLogger("seatmeter.gateway")
REQUESTS = "seatmeter_gateway_requests_total"  # by outcome, at /metrics

router = APIRouter(prefix="/gateway/anthropic", tags=["gateway"], lifespan=lifespan)
router.include_router(batches_router)


def _passed_headers(upstream: httpx.Response, admission: gateway.Admission) -> dict[str, str]:
    headers = passed_headers(upstream)
    headers.pop("content-type", None)
    headers["x-seatmeter-hold"] = admission.hold_id
    headers["x-seatmeter-max-tokens"] = str(admission.granted_max_tokens)
    return headers


@router.post("/v1/messages", summary="Anthropic Messages API, metered (streaming and not)")
async def messages(request: Request) -> Response:
    app = seatmeter_app(request)
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        body = None  # refused by admit, once the key has been checked
    try:
        admission = await run_in_threadpool(
            gateway.admit,
            app,
            caller_key(request),
            body,
            surface=request.headers.get("x-seatmeter-surface", "api"),
            member_header=request.headers.get("x-seatmeter-member"),
        )
    except SeatmeterError as refused:
        metrics.count(REQUESTS, outcome="refused", code=refused.code)
        return refusal_response(refused)
    forwarded = gateway.shape_request(body, admission)
    upstream = upstream_for(request)
    unreachable: str | None = None
    answered, response = False, None
    try:
        answered, response = await unless_disconnected(
            request.receive,
            lambda: upstream.send(forwarded, request.headers, request.url.query, stream=bool(body.get("stream"))),
        )
    except* httpx.HTTPError as failed:
        unreachable = type(failed.exceptions[0]).__name__
    if unreachable is not None:
        metrics.count(REQUESTS, outcome="upstream_unreachable")
        await _release(app, admission)
        return upstream_unreachable(unreachable)
    if not answered or response is None:
        # The client left before the vendor answered: the request to the vendor was abandoned with it.
        metrics.count(REQUESTS, outcome="client_left")
        await _release(app, admission)
        return Response(status_code=499)
    if response.status_code != 200:
        content = await response.aread()
        await response.aclose()
        metrics.count(REQUESTS, outcome="upstream_error", status=str(response.status_code))
        await _release(app, admission)
        return Response(
            content,
            status_code=response.status_code,
            headers=_passed_headers(response, admission),
            media_type=response.headers.get("content-type", "application/json"),
        )
    metrics.count(
        REQUESTS,
        outcome="forwarded",
        stream=str(bool(body.get("stream"))).lower(),
        max_tokens_lowered=str(admission.lowered).lower(),
    )
    if body.get("stream"):
        return _stream(app, admission, response)
    return await _complete(app, admission, response)


@router.post("/v1/messages/count_tokens", summary="Count a request's input tokens (free; passed to the vendor)")
async def count_tokens(request: Request) -> Response:
    try:
        await run_in_threadpool(
            gateway.identify, seatmeter_app(request), caller_key(request), request.headers.get("x-seatmeter-member")
        )
        body: Any = json.loads(await request.body())
    except SeatmeterError as refused:
        return refusal_response(refused)
    except ValueError:
        return anthropic_error(400, "the body is not valid JSON", code="invalid_request")
    try:
        response = await upstream_for(request).call(
            "POST", "/v1/messages/count_tokens", request.headers, request.url.query, body
        )
    except httpx.HTTPError as exc:
        return upstream_unreachable(type(exc).__name__)
    return Response(response.content, status_code=response.status_code, headers=passed_headers(response))


async def _release(app: App, admission: gateway.Admission) -> None:
    """Void the hold; if that fails (the database is down), the hold expires on its own and the log says so."""
    try:
        await run_in_threadpool(gateway.void, app, admission)
    except SeatmeterError as exc:
        log.error("hold %s could not be voided: %s %s", admission.hold_id, exc.code, exc.message)


async def _complete(app: App, admission: gateway.Admission, response: httpx.Response) -> Response:
    """The vendor's answer goes back at once; the settle runs right after it is sent, off the member's latency.

    The hold already reserves the most the request can cost, so nothing can overspend in between.
    """
    content = await response.aread()
    try:
        usage_raw = json.loads(content)["usage"]
        usage, tier = usage_from_message(usage_raw), service_tier_of(usage_raw)
    except (ValueError, KeyError, TypeError, SeatmeterError):
        log.warning("hold %s: the upstream response carries no readable usage; billing its bound", admission.hold_id)
        usage, tier = None, "standard"

    def settle() -> None:
        try:
            if usage is None:
                gateway.settle_at_most(app, admission)
            else:
                gateway.settle(app, admission, usage, tier)
        except SeatmeterError as exc:  # the member has the answer; the operator gets the log line
            log.error("hold %s could not be settled: %s %s", admission.hold_id, exc.code, exc.message)

    return Response(
        content,
        status_code=200,
        headers=_passed_headers(response, admission),
        media_type="application/json",
        background=BackgroundTask(settle),
    )


def _stream(app: App, admission: gateway.Admission, response: httpx.Response) -> MeteredStream:
    meter = StreamMeter(max_output_tokens=admission.granted_max_tokens)

    async def finish(meter: StreamMeter, outcome: str) -> None:
        metrics.count(REQUESTS, outcome=f"stream_{outcome}")
        try:
            if meter.error is not None or not meter.started or outcome == "failed":
                await run_in_threadpool(gateway.void, app, admission)
            else:
                await run_in_threadpool(gateway.settle, app, admission, meter.usage, meter.service_tier)
        except SeatmeterError as exc:  # the response is gone; the hold expires on its own
            log.error("hold %s could not be closed after the stream %s: %s", admission.hold_id, outcome, exc)

    return MeteredStream(response, meter, finish, _passed_headers(response, admission))
