"""The dashboard at /app: sign in with an API key, then the organization's Usage page.

Server-rendered with Jinja2; every action is a plain form POST (with a CSRF token) that redirects back, so
the page works without JavaScript. Actions go through the same services as the API, with the signed-in
member as the principal: a member's forms are never shown, and a member's POST is refused by the service.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from seatmeter.adapters import orgs_repo
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import SeatmeterError, Unauthenticated
from seatmeter.domain.ids import hash_key
from seatmeter.domain.money import Money
from seatmeter.entrypoints.api.deps import app_of, get_app
from seatmeter.entrypoints.api.routes_notify import router as notify_router
from seatmeter.entrypoints.web import session as sessions
from seatmeter.entrypoints.web.charts import PALETTE, Series, render_daily_chart
from seatmeter.services import billing, caps, credits, dashboard, notification_settings, organizations
from seatmeter.services.notifications import read_settings

__all__ = ["install", "router"]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(prefix="/app", include_in_schema=False)
AppDep = Annotated[App, Depends(get_app)]


def install(api: FastAPI) -> None:
    """Add the notifications API, the dashboard and its static files to the application."""
    api.include_router(notify_router)
    api.include_router(router)
    api.add_exception_handler(SignInRequired, _to_sign_in)
    api.mount("/app/static", StaticFiles(directory=str(HERE / "static")), name="web-static")


def _secret(app: App) -> bytes:
    return sessions.session_secret(app.settings.session_secret, app.settings.operator_key)


class Viewer:
    """The signed-in member and what the page needs to act for them."""

    def __init__(self, principal: Principal, cookie: str, secret: bytes) -> None:
        self.principal = principal
        self.csrf = sessions.csrf_token(secret, cookie)

    @property
    def org_id(self) -> str:
        return self.principal.organization_id or ""

    @property
    def is_owner(self) -> bool:
        return self.principal.is_owner


class SignInRequired(Exception):
    """No valid session: the dashboard answers with the sign-in page."""


async def _to_sign_in(_: Request, __: Exception) -> Response:
    return RedirectResponse("/app/login", status_code=303)


def viewer(request: Request) -> Viewer:
    app = app_of(request)
    cookie = request.cookies.get(sessions.COOKIE)
    found = sessions.decode(_secret(app), cookie, int(time.time()))
    if found is None or cookie is None:
        raise SignInRequired
    try:
        principal = organizations.principal_for_key_hash(app.uow(), found.key_hash)
    except Unauthenticated:
        raise SignInRequired from None
    if principal.kind is not PrincipalKind.MEMBER:
        raise SignInRequired
    return Viewer(principal, cookie, _secret(app))


ViewerDep = Annotated[Viewer, Depends(viewer)]


def _check_csrf(who: Viewer, token: str) -> None:
    if not secrets.compare_digest(token, who.csrf):
        raise SeatmeterError("the form has expired: reload the page and try again", code="forbidden")


def _back(message: str = "", error: str = "", anchor: str = "") -> RedirectResponse:
    query = urlencode({k: v for k, v in (("msg", message), ("err", error)) if v})
    return RedirectResponse(f"/app/usage{'?' + query if query else ''}{anchor}", status_code=303)


def _act(action: Any, success: str, anchor: str = "") -> RedirectResponse:
    try:
        action()
    except SeatmeterError as error:
        return _back(error=f"{error.message} {error.resume}".strip(), anchor=anchor)
    return _back(message=success, anchor=anchor)


# -- sign in and out ---------------------------------------------------------------------------------
@router.get("", response_class=HTMLResponse)
def home(request: Request) -> Response:
    try:
        viewer(request)
    except SignInRequired:
        return RedirectResponse("/app/login", status_code=303)
    return RedirectResponse("/app/usage", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": ""})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, app: AppDep, api_key: Annotated[str, Form()] = "") -> Response:
    key = api_key.strip()
    try:
        principal = organizations.authenticate(app.uow(), key, app.settings.operator_key)
        if principal.kind is not PrincipalKind.MEMBER:
            raise Unauthenticated("the dashboard is for members and owners: sign in with a member's API key")
    except SeatmeterError as error:
        return templates.TemplateResponse(request, "login.html", {"error": error.message}, status_code=401)
    expires = int(time.time()) + sessions.SESSION_TTL_S
    cookie = sessions.encode(_secret(app), sessions.Session(hash_key(key), expires))
    response = RedirectResponse("/app/usage", status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        cookie,
        max_age=sessions.SESSION_TTL_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/app",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/app/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/app")
    return response


# -- the Usage page ----------------------------------------------------------------------------------
@router.get("/usage", response_class=HTMLResponse)
def usage_page(
    request: Request,
    app: AppDep,
    who: ViewerDep,
    q: str = "",
    sort: str = "spend",
    dir: str = "desc",
    page: int = 1,
    size: int = 50,
    by: str = "member",  # noqa: A002
    msg: str = "",
    err: str = "",
) -> Response:
    now = app.clock.now()
    principal = who.principal
    with app.uow(read_only=True) as uow:  # reads only: on SQLite a snapshot that never makes holds wait
        conn = uow.conn
        org, period = dashboard.current_period(conn, who.org_id, now)
        credit = dashboard.credits_view(conn, org, now) if org.self_serve else None
        org_cap = dashboard.organization_cap(conn, org, period, now)
        members = dashboard.member_page(
            conn, principal, org, period, now, search=q, sort=sort, descending=dir != "asc", page=page, size=size
        )
        chart_data = dashboard.chart(conn, principal, org, period, "model" if by == "model" else "member")
        invoices = dashboard.recent_invoices(conn, org.id) if who.is_owner else []
        settings = read_settings(conn, org.id) if who.is_owner else None
        default_cap = dashboard.default_member_cap(conn, org.id)
        me = orgs_repo.get_member(conn, org.id, principal.member_id or "")
        extra_usage = billing.extra_usage_enabled(conn, org.id) if org.plan == "seat_based" else None
    log = notification_settings.list_notifications(app.uow(), principal, org.id, limit=20)
    series = [Series(label, by_day) for label, by_day in chart_data.series]
    by_used = "model" if by == "model" or not who.is_owner else "member"
    svg = render_daily_chart(chart_data.days, series, f"Daily spend in {period.key} by {by_used}")
    totals = [sum(s.by_day.get(i, 0) for s in series) for i in range(len(chart_data.days))]

    def link(**changes: Any) -> str:
        params = {
            "q": members.search,
            "sort": members.sort,
            "dir": "desc" if members.descending else "asc",
            "page": members.page,
            "size": members.size,
            "by": by_used,
        }
        params.update(changes)
        return "/app/usage?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    context = {
        "who": who,
        "org": org,
        "period": period,
        "now": now,
        "credit": credit,
        "org_cap": org_cap,
        "members": members,
        "svg": svg,
        "legend": list(zip(PALETTE, [s.label for s in series], strict=False)),
        "days": list(zip(chart_data.days, (Money(t) for t in totals), strict=True)),
        "by": by_used,
        "invoices": invoices,
        "settings": settings,
        "me": me,
        "extra_usage": extra_usage,
        "default_cap": default_cap,
        "log": log,
        "link": link,
        "message": msg[:300],
        "error": err[:300],
        "idempotency_key": secrets.token_urlsafe(16),
        "Money": Money,
    }
    return templates.TemplateResponse(request, "usage.html", context)


# -- owner actions -----------------------------------------------------------------------------------
Csrf = Annotated[str, Form()]


@router.post("/credits")
def buy_credits(
    app: AppDep,
    who: ViewerDep,
    csrf: Csrf,
    amount: Annotated[str, Form()] = "",
    idempotency_key: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(who, csrf)
    return _act(
        lambda: credits.buy_credits(
            app.uow(), who.principal, who.org_id, amount.strip(), idempotency_key, app.clock.now()
        ),
        f"Bought {amount.strip()} USD of credits.",
        "#credits",
    )


@router.post("/caps/organization")
def set_organization_cap(
    app: AppDep, who: ViewerDep, csrf: Csrf, limit: Annotated[str, Form()] = "", action: Annotated[str, Form()] = "set"
) -> Response:
    _check_csrf(who, csrf)
    value = None if action == "clear" else limit.strip()
    return _act(
        lambda: caps.set_cap(app.uow(), who.principal, who.org_id, "organization", value, app.clock.now()),
        "The organization cap is now " + (f"{value} USD." if value else "unlimited."),
        "#org-cap",
    )


@router.post("/caps/member-default")
def set_default_cap(
    app: AppDep, who: ViewerDep, csrf: Csrf, limit: Annotated[str, Form()] = "", action: Annotated[str, Form()] = "set"
) -> Response:
    _check_csrf(who, csrf)
    value = None if action == "clear" else limit.strip()
    return _act(
        lambda: caps.set_cap(app.uow(), who.principal, who.org_id, "member_default", value, app.clock.now()),
        "The default member cap is now " + (f"{value} USD." if value else "unlimited."),
        "#members",
    )


@router.post("/caps/members/{member_id}")
def set_member_cap(
    member_id: str,
    app: AppDep,
    who: ViewerDep,
    csrf: Csrf,
    limit: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "set",
) -> Response:
    _check_csrf(who, csrf)
    now = app.clock.now()
    if action == "clear":
        return _act(
            lambda: caps.clear_member_cap(app.uow(), who.principal, who.org_id, member_id, now),
            "The member's own cap is removed; the default cap applies.",
            "#members",
        )
    value = limit.strip()
    return _act(
        lambda: caps.set_cap(app.uow(), who.principal, who.org_id, "member", value, now, member_id=member_id),
        f"The member's cap is now {value} USD.",
        "#members",
    )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").replace("\n", ",").split(",") if part.strip()]


@router.post("/notification-settings")
def save_notification_settings(
    app: AppDep,
    who: ViewerDep,
    csrf: Csrf,
    thresholds: Annotated[str, Form()] = "",
    webhook_url: Annotated[str, Form()] = "",
    emails: Annotated[str, Form()] = "",
    low_balance: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(who, csrf)

    def save() -> None:
        percents: list[Any] = [int(part) if part.isdigit() else part for part in _split(thresholds)]
        body = {
            "thresholds_percent": percents,
            "webhook_url": webhook_url.strip() or None,
            "emails": _split(emails),
            "low_balance": low_balance.strip() or None,
        }
        notification_settings.put_settings(app.uow(), who.principal, who.org_id, body, app.clock.now())

    return _act(save, "Notification settings saved.", "#notifications")


@router.get("/invoices/{invoice_id}.csv")
def invoice_csv(invoice_id: str, app: AppDep, who: ViewerDep) -> Response:
    text = billing.invoice_csv(app, who.principal, who.org_id, invoice_id)
    return Response(
        text, media_type="text/csv", headers={"content-disposition": f'attachment; filename="{invoice_id}.csv"'}
    )


@router.get("/invoices/{invoice_id}.html", response_class=HTMLResponse)
def invoice_html(invoice_id: str, app: AppDep, who: ViewerDep) -> Response:
    return HTMLResponse(billing.invoice_html(app, who.principal, who.org_id, invoice_id))


@router.post("/extra-usage")
def set_extra_usage(app: AppDep, who: ViewerDep, csrf: Csrf, enabled: Annotated[str, Form()] = "") -> Response:
    _check_csrf(who, csrf)
    on = enabled == "on"
    return _act(
        lambda: billing.set_extra_usage(app, who.principal, who.org_id, {"enabled": on}),
        "Extra usage is now "
        + (
            "enabled: usage beyond the seat allowances is billed at API rates."
            if on
            else "disabled: usage stops at the seat allowances."
        ),
        "#extra-usage",
    )
