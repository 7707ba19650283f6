"""Seats, invoices (one invoice, as JSON, CSV or a printable page), period close, renewal, seat-based settings."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.entrypoints.api.deps import get_app, principal
from seatmeter.services import billing, renewals, seats

__all__ = ["router"]

router = APIRouter(prefix="/v1")
AppDep = Annotated[App, Depends(get_app)]
Who = Annotated[Principal, Depends(principal)]
SeatType = Literal["enterprise", "chat", "chat_code", "standard", "premium"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeatPurchase(_Body):
    seat_type: SeatType
    quantity: StrictInt = Field(ge=1, le=seats.MAX_SEATS_PER_CHANGE)
    effective_date: date | None = Field(None, description="Operator only, when other than today.")


class SeatReduction(_Body):
    seat_type: SeatType
    quantity: StrictInt = Field(ge=1, le=seats.MAX_SEATS_PER_CHANGE)
    at: Literal["now", "renewal"] = Field("now", description='Self-serve: only "renewal" during the term.')


class SeatAssignment(_Body):
    seat_type: SeatType | None = Field(..., description="null takes the member's seat back.")


class Renewal(_Body):
    dry_run: StrictBool = False
    effective_date: date | None = Field(None, description="Before the term's end: migrate early.")
    seat_prices: dict[str, StrictStr] | None = Field(None, description="Prices of the new plan's seats, if new.")


class Allowances(_Body):
    included_usage: dict[str, StrictStr]


class ExtraUsage(_Body):
    enabled: StrictBool


def _dump(body: _Body) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude_unset=True)


@router.post("/organizations/{org}/seats", status_code=201, tags=["seats"])
def add_seats(org: str, body: SeatPurchase, app: AppDep, who: Who) -> dict[str, Any]:
    return seats.add_seats(app, who, org, _dump(body))


@router.get("/organizations/{org}/seats", tags=["seats"])
def list_seats(org: str, app: AppDep, who: Who) -> dict[str, Any]:
    return seats.list_seats(app, who, org)


@router.post("/organizations/{org}/seats/reductions", tags=["seats"])
def reduce_seats(org: str, body: SeatReduction, app: AppDep, who: Who) -> dict[str, Any]:
    return seats.reduce_seats(app, who, org, _dump(body))


@router.put("/organizations/{org}/members/{member}/seat", tags=["seats"])
def assign_seat(org: str, member: str, body: SeatAssignment, app: AppDep, who: Who) -> dict[str, Any]:
    return seats.assign_seat(app, who, org, member, body.model_dump(mode="json"))


@router.get(
    "/organizations/{org}/invoices/{invoice}",
    tags=["billing"],
    responses={
        200: {
            "content": {"text/csv": {}, "text/html": {}},
            "description": "JSON; CSV with a .csv suffix or Accept: text/csv; a printable page with .html",
        }
    },
)
def get_invoice(org: str, invoice: Annotated[str, Path(max_length=60)], request: Request, app: AppDep, who: Who) -> Any:
    accept = request.headers.get("accept", "")
    if invoice.endswith(".csv") or (accept.startswith("text/csv")):
        invoice_id = invoice.removesuffix(".csv")
        return PlainTextResponse(
            billing.invoice_csv(app, who, org, invoice_id),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{invoice_id}.csv"'},
        )
    if invoice.endswith(".html") or accept.startswith("text/html"):
        return HTMLResponse(billing.invoice_html(app, who, org, invoice.removesuffix(".html")))
    return billing.get_invoice(app, who, org, invoice).to_json()


class CreditNote(_Body):
    positions: list[StrictInt] | None = Field(None, description="Lines to reverse (1-based); all when absent.")
    reason: StrictStr | None = None


@router.post("/organizations/{org}/invoices/{invoice}/credit-notes", status_code=201, tags=["billing"])
def issue_credit_note(org: str, invoice: str, body: CreditNote, app: AppDep, who: Who) -> dict[str, Any]:
    return billing.issue_credit_note(app, who, org, invoice, _dump(body))


@router.post("/organizations/{org}/periods/{period}/close", tags=["billing"])
def close_period(
    org: str, period: Annotated[str, Path(pattern=r"^\d{4}-\d{2}$")], app: AppDep, who: Who
) -> dict[str, Any]:
    return billing.close_period(app, who, org, period)


@router.post("/organizations/{org}/renewal", tags=["billing"])
def renew(org: str, body: Renewal, app: AppDep, who: Who) -> dict[str, Any]:
    return renewals.renew(app, who, org, _dump(body))


@router.put("/organizations/{org}/seat-allowances", tags=["seats"])
def set_allowances(org: str, body: Allowances, app: AppDep, who: Who) -> dict[str, Any]:
    return billing.set_allowances(app, who, org, _dump(body))


@router.put("/organizations/{org}/extra-usage", tags=["seats"])
def set_extra_usage(org: str, body: ExtraUsage, app: AppDep, who: Who) -> dict[str, Any]:
    return billing.set_extra_usage(app, who, org, _dump(body))
