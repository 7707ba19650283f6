"""`/gateway/anthropic/v1/messages/batches`: Message Batches, admitted against the member's limits and billed at the
batch tier when their results are read (see services/gateway_batches.py).

The vendor's `results_url` points at the vendor; it is rewritten to this gateway so the SDK's
`client.messages.batches.results(id)` reads the results through seatmeter, which is where they are billed.
One vendor key serves every organization, so batches are not listed: a batch id (unguessable, returned only to
the caller that created it) is what gives access to the batch.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import httpx
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from seatmeter.domain.errors import SeatmeterError
from seatmeter.entrypoints.gateway.common import caller_key, passed_headers, seatmeter_app, upstream_for
from seatmeter.entrypoints.gateway.errors import anthropic_error, refusal_response, upstream_unreachable
from seatmeter.services import gateway_batches

__all__ = ["router"]

log = logging.getLogger("seatmeter.gateway")
router = APIRouter(prefix="/v1/messages/batches")


def _surface(request: Request) -> dict[str, Any]:
    return {
        "surface": request.headers.get("x-seatmeter-surface", "api"),
        "member_header": request.headers.get("x-seatmeter-member"),
    }


def _results_url(request: Request, batch_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/gateway/anthropic/v1/messages/batches/{batch_id}/results"


def _rewrite(request: Request, batch: Any) -> Any:
    if isinstance(batch, dict) and batch.get("type") == "message_batch" and batch.get("results_url"):
        return {**batch, "results_url": _results_url(request, str(batch["id"]))}
    return batch


def _relay(request: Request, response: httpx.Response) -> Response:
    """The vendor's answer, with every batch's results_url pointing here."""
    try:
        body = response.json()
    except ValueError:
        return Response(response.content, status_code=response.status_code, headers=passed_headers(response))
    if response.status_code == 200:
        body = _rewrite(request, body)
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            body = {**body, "data": [_rewrite(request, item) for item in body["data"]]}
    headers = passed_headers(response)
    headers.pop("content-type", None)
    return JSONResponse(body, status_code=response.status_code, headers=headers)


async def _call(request: Request, method: str, path: str, body: Any = None) -> httpx.Response | Response:
    try:
        return await upstream_for(request).call(method, path, request.headers, request.url.query, body)
    except httpx.HTTPError as exc:
        return upstream_unreachable(type(exc).__name__)


async def _caller(request: Request) -> gateway_batches.BatchCaller:
    return await run_in_threadpool(
        gateway_batches.caller, seatmeter_app(request), caller_key(request), **_surface(request)
    )


@router.post("", summary="Create a Message Batch (checked against the member's limits)")
async def create_batch(request: Request) -> Response:
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        body = None
    try:
        await run_in_threadpool(
            gateway_batches.admit_batch, seatmeter_app(request), caller_key(request), body, **_surface(request)
        )
    except SeatmeterError as refused:
        return refusal_response(refused)
    response = await _call(request, "POST", "/v1/messages/batches", body)
    return response if isinstance(response, Response) else _relay(request, response)


@router.get("", summary="Listing Message Batches is refused (the vendor account is shared by every organization)")
async def list_batches(request: Request) -> Response:
    try:
        await _caller(request)
    except SeatmeterError as refused:
        return refusal_response(refused)
    # One vendor key serves every organization: its list would show other organizations' batches.
    return anthropic_error(
        403,
        "listing batches through the gateway is not allowed: the vendor account is shared by every organization",
        code="forbidden",
        resume="Keep the id that creating a batch returns, and retrieve the batch by it.",
    )


@router.get("/{batch_id}", summary="Retrieve a Message Batch")
async def retrieve_batch(batch_id: str, request: Request) -> Response:
    try:
        await _caller(request)
    except SeatmeterError as refused:
        return refusal_response(refused)
    response = await _call(request, "GET", f"/v1/messages/batches/{batch_id}")
    return response if isinstance(response, Response) else _relay(request, response)


@router.post("/{batch_id}/cancel", summary="Cancel a Message Batch")
async def cancel_batch(batch_id: str, request: Request) -> Response:
    try:
        await _caller(request)
    except SeatmeterError as refused:
        return refusal_response(refused)
    response = await _call(request, "POST", f"/v1/messages/batches/{batch_id}/cancel")
    return response if isinstance(response, Response) else _relay(request, response)


@router.get("/{batch_id}/results", summary="Message Batch results, billed at the batch tier as they are read")
async def batch_results(batch_id: str, request: Request) -> Response:
    app = seatmeter_app(request)
    try:
        who = await _caller(request)
    except SeatmeterError as refused:
        return refusal_response(refused)
    batch = await _call(request, "GET", f"/v1/messages/batches/{batch_id}")
    if isinstance(batch, Response):
        return batch
    if batch.status_code != 200:
        return _relay(request, batch)
    stamp = batch.json().get("ended_at") or batch.json().get("created_at")
    results = await _call(request, "GET", f"/v1/messages/batches/{batch_id}/results")
    if isinstance(results, Response) or results.status_code != 200:
        return results if isinstance(results, Response) else _relay(request, results)
    try:
        ended_at = datetime.fromisoformat(str(stamp))
        recorded = await run_in_threadpool(
            gateway_batches.record_results, app, who, batch_id, ended_at, results.content
        )
        log.info("batch %s: %d results recorded for member %s", batch_id, recorded, who.member_id)
    except (ValueError, SeatmeterError) as exc:  # the member still gets the results; the operator the log line
        log.error("batch %s: results could not be recorded: %s", batch_id, exc)
    return Response(results.content, status_code=200, headers=passed_headers(results))
