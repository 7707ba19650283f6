"""Owners' side of notifications: the settings (thresholds, low-balance amount, webhook and email targets) and
the notification log with every delivery attempt. Members read only the notifications about their own cap."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from seatmeter.adapters import orgs_repo
from seatmeter.adapters.sql import upsert
from seatmeter.adapters.tables_notify import (
    notification_attempts,
    notification_deliveries,
    notification_settings,
    notifications,
)
from seatmeter.adapters.webhooks import new_secret
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import InvalidRequest
from seatmeter.domain.limits import member_account
from seatmeter.domain.money import Money
from seatmeter.domain.thresholds import validate_thresholds
from seatmeter.services.notifications import NotifySettings, describe_limits, read_settings
from seatmeter.services.uow import UnitOfWork

__all__ = ["get_settings", "list_notifications", "put_settings", "settings_json"]

MAX_EMAILS = 20
_EMAIL = re.compile(r"^[^@\s,;<>]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z0-9-]{2,63}$")
_FIELDS = {"thresholds_percent", "webhook_url", "emails", "low_balance", "rotate_webhook_secret"}


def settings_json(settings: NotifySettings) -> dict[str, Any]:
    return {
        "thresholds_percent": list(settings.thresholds_percent),
        "low_balance": None if settings.low_balance is None else str(settings.low_balance),
        "webhook_url": settings.webhook_url,
        "webhook_secret": settings.webhook_secret,
        "emails": list(settings.emails),
    }


def _webhook_url(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > 2000:
        raise InvalidRequest("webhook_url must be an http or https URL of at most 2000 characters, or null")
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            f"webhook_url must be an http or https URL, got {raw!r}",
            resume="Send a URL such as https://example.com/hooks/seatmeter, or null for none.",
        )
    return raw.strip()


def _emails(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_EMAILS:
        raise InvalidRequest(f"emails must be a list of at most {MAX_EMAILS} addresses")
    found: list[str] = []
    for item in raw:
        if not isinstance(item, str) or len(item) > 320 or not _EMAIL.match(item.strip()):
            raise InvalidRequest(f"emails must hold email addresses, got {item!r}")
        if item.strip() not in found:
            found.append(item.strip())
    return tuple(found)


def _low_balance(raw: Any) -> Money | None:
    if raw is None or raw == "":
        return None
    amount = Money.parse(raw, field="low_balance")
    if amount.nano <= 0:
        raise InvalidRequest("low_balance must be more than 0.00 USD, or null for none")
    return amount


def get_settings(uow: UnitOfWork, principal: Principal, org_id: str) -> NotifySettings:
    principal.require_owner(org_id)
    with uow:
        orgs_repo.get_organization(uow.conn, org_id)
        return read_settings(uow.conn, org_id)


def put_settings(uow: UnitOfWork, principal: Principal, org_id: str, body: Any, now: datetime) -> NotifySettings:
    """Replace the fields given; fields left out keep their value. A webhook secret is made when a webhook URL is
    first set, and made anew with `rotate_webhook_secret: true`."""
    principal.require_owner(org_id)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = set(body) - _FIELDS
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    if "thresholds_percent" not in body:
        raise InvalidRequest("thresholds_percent is required, e.g. [50, 75, 90, 100]")
    if not isinstance(body["thresholds_percent"], list):
        raise InvalidRequest("thresholds_percent must be a list of whole percentages")
    thresholds = validate_thresholds(body["thresholds_percent"])
    with uow:
        conn = uow.conn
        orgs_repo.get_organization(conn, org_id)
        current = read_settings(conn, org_id)
        webhook_url = _webhook_url(body["webhook_url"]) if "webhook_url" in body else current.webhook_url
        emails = _emails(body["emails"]) if "emails" in body else current.emails
        low = _low_balance(body["low_balance"]) if "low_balance" in body else current.low_balance
        secret = current.webhook_secret
        if webhook_url and (secret is None or body.get("rotate_webhook_secret") is True):
            secret = new_secret()
        values = {
            "organization_id": org_id,
            "thresholds_percent": json.dumps(list(thresholds)),
            "low_balance_nano": None if low is None else low.nano,
            "webhook_url": webhook_url,
            "webhook_secret": secret,
            "emails": json.dumps(list(emails)),
            "updated_at": now,
        }
        conn.execute(
            upsert(
                conn,
                notification_settings,
                ["organization_id"],
                {k: v for k, v in values.items() if k != "organization_id"},
            ),
            values,
        )
        uow.commit()
    return NotifySettings(thresholds, low, webhook_url, secret, emails)


def _deliveries(conn: Connection, org_id: str, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    d, a = notification_deliveries.c, notification_attempts.c
    attempts: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in conn.execute(
        select(notification_attempts).where(a.organization_id == org_id, a.notification_id.in_(ids)).order_by(a.attempt)
    ):
        attempts.setdefault((r.notification_id, r.channel, r.target), []).append(
            {
                "attempt": r.attempt,
                "at": r.attempted_at.isoformat(),
                "ok": r.ok,
                "status_code": r.status_code,
                "error": r.error,
            }
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(
        select(notification_deliveries).where(d.organization_id == org_id, d.notification_id.in_(ids))
    ):
        out.setdefault(r.notification_id, []).append(
            {
                "channel": r.channel,
                "target": r.target,
                "status": r.status,
                "attempts": r.attempts,
                "next_attempt_at": r.next_attempt_at.isoformat() if r.status == "pending" else None,
                "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
                "last_error": r.last_error,
                "log": attempts.get((r.notification_id, r.channel, r.target), []),
            }
        )
    return out


def list_notifications(uow: UnitOfWork, principal: Principal, org_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first. Owners see every notification with its deliveries; members only those about their own cap."""
    principal.require_member_of(org_id)
    if not 1 <= limit <= 500:
        raise InvalidRequest("limit must be from 1 to 500")
    n = notifications.c
    owner = principal.is_owner or principal.is_operator
    with uow:
        conn = uow.conn
        orgs_repo.get_organization(conn, org_id)
        stmt = select(notifications).where(n.organization_id == org_id)
        if not owner:
            stmt = stmt.where(n.account == member_account(principal.member_id or ""))
        rows = conn.execute(stmt.order_by(n.created_at.desc(), n.id).limit(limit)).all()
        deliveries = _deliveries(conn, org_id, [r.id for r in rows]) if owner and rows else {}
        names = describe_limits(conn, org_id, {r.account for r in rows})
    listed = []
    for r in rows:
        payload = json.loads(r.payload)
        item = {
            "id": r.id,
            "type": r.kind,
            "account": r.account,
            "limit_name": names[r.account],
            "period": r.period or None,
            "created_at": r.created_at.isoformat(),
            "data": payload["data"],
        }
        if owner:
            item["deliveries"] = deliveries.get(r.id, [])
        listed.append(item)
    return listed
