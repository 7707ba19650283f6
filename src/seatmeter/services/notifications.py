"""Spend notifications: created in the transaction that moves spend (the outbox), delivered later by the worker.

The core services call three hooks, each inside their own unit of work where the limit rows are already
locked by the update that changed them:

- `spend_posted` after posted spend grew (a hold settled, usage recorded): creates `threshold_crossed`
  and `low_balance` notifications for every threshold the movement crossed;
- `limits_changed` after a ceiling changed (a cap set or cleared, credits bought): re-arms the thresholds
  of those limits and, where usage had been stopped and now has room, creates `usage_resumed`;
- `usage_refused`, in a transaction of its own after a refusal rolled back, creates `usage_stopped` the
  first time a limit stops usage in a period (and again only after `limits_changed` re-armed it).

Every notification gets one delivery per target (the webhook URL, each email address) as it is created.
`deliver_due` (run by `seatmeter worker` and `seatmeter notify deliver`) sends what is due and records
every attempt; failures are retried with exponential backoff and finally marked failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, select, update

from seatmeter.adapters.email import Mailer
from seatmeter.adapters.raw import Statement
from seatmeter.adapters.sql import insert_ignore
from seatmeter.adapters.tables import limit_accounts, members, organizations
from seatmeter.adapters.tables_notify import (
    notification_arming,
    notification_attempts,
    notification_deliveries,
    notifications,
)
from seatmeter.adapters.webhooks import WebhookSender
from seatmeter.domain.ids import new_id
from seatmeter.domain.limits import CREDITS, ORGANIZATION, member_account
from seatmeter.domain.money import Money
from seatmeter.domain.periods import period_containing
from seatmeter.domain.retries import RetryPolicy
from seatmeter.domain.thresholds import DEFAULT_THRESHOLDS_PERCENT, crossed_low_balance, crossed_percentages

if TYPE_CHECKING:
    from seatmeter.bootstrap import App

__all__ = [
    "DeliveryReport",
    "cap_changed",
    "Key",
    "NotifySettings",
    "deliver_due",
    "deliver_once",
    "describe_limits",
    "limits_changed",
    "read_settings",
    "spend_posted",
    "usage_refused",
]

Key = tuple[str, str]  # (account, period), as in limit_accounts

# Which limit account a refusal code names.
_REFUSED_ACCOUNT = {
    "credits_exhausted": CREDITS,
    "organization_cap_reached": ORGANIZATION,
    "member_cap_reached": "member",
}
CLAIM_LEASE = timedelta(minutes=2)  # a claimed delivery is not picked again until a crashed worker's lease ends


@dataclass(frozen=True, slots=True)
class NotifySettings:
    thresholds_percent: tuple[int, ...]
    low_balance: Money | None
    webhook_url: str | None
    webhook_secret: str | None
    emails: tuple[str, ...]

    def targets(self) -> list[tuple[str, str]]:
        found = [("webhook", self.webhook_url)] if self.webhook_url else []
        return found + [("email", address) for address in self.emails]


_READ_SETTINGS = Statement(
    "SELECT thresholds_percent, low_balance_nano, webhook_url, webhook_secret, emails FROM notification_settings "
    "WHERE organization_id = :org"
)


def read_settings(conn: Connection, org_id: str) -> NotifySettings:
    row = _READ_SETTINGS.run(conn, {"org": org_id}).first()  # on every settle that moves credits: kept lean
    if row is None:
        return NotifySettings(DEFAULT_THRESHOLDS_PERCENT, None, None, None, ())
    return NotifySettings(
        tuple(json.loads(row.thresholds_percent)),
        None if row.low_balance_nano is None else Money(row.low_balance_nano),
        row.webhook_url,
        row.webhook_secret,
        tuple(json.loads(row.emails)),
    )


def _generations(conn: Connection, org_id: str, keys: Iterable[Key]) -> dict[Key, int]:
    wanted = set(keys)
    rows = conn.execute(
        select(notification_arming.c.account, notification_arming.c.period, notification_arming.c.generation).where(
            notification_arming.c.organization_id == org_id,
            notification_arming.c.account.in_(sorted({account for account, _ in wanted})),
        )
    )
    return {(r.account, r.period): r.generation for r in rows if (r.account, r.period) in wanted}


def _enqueue(
    conn: Connection,
    org_id: str,
    settings: NotifySettings,
    *,
    kind: str,
    key: Key,
    threshold: int,
    generation: int,
    data: dict[str, Any],
    now: datetime,
) -> bool:
    """Insert one notification and its deliveries, unless it exists already. True when it was new."""
    notification_id = new_id("ntf")
    account, period = key
    payload = {
        "type": kind,
        "timestamp": now.isoformat(),
        "data": {
            "id": notification_id,
            "organization_id": org_id,
            "account": account,
            "member_id": account.removeprefix("member:") if account.startswith("member:") else None,
            "period": period or None,
            **data,
        },
    }
    inserted = conn.execute(
        insert_ignore(conn, notifications)
        .values(
            organization_id=org_id,
            id=notification_id,
            kind=kind,
            account=account,
            period=period,
            threshold=threshold,
            generation=generation,
            payload=json.dumps(payload),
            created_at=now,
        )
        .returning(notifications.c.id)
    ).scalar_one_or_none()
    if inserted is None:  # it exists already: this crossing was announced before
        return False
    # The arming row is what a later change of this limit bumps, so that its thresholds can fire anew.
    conn.execute(
        insert_ignore(conn, notification_arming).values(
            organization_id=org_id, account=account, period=period, generation=generation, stopped=False
        )
    )
    targets = settings.targets()
    if targets:
        conn.execute(
            notification_deliveries.insert(),
            [
                {
                    "organization_id": org_id,
                    "notification_id": notification_id,
                    "channel": channel,
                    "target": target,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": "",
                }
                for channel, target in targets
            ],
        )
    return True


def spend_posted(
    conn: Connection, org_id: str, amounts: Mapping[Key, int], now: datetime, rows: Mapping[Key, Any] | None = None
) -> None:
    """Create the notifications for thresholds crossed by posting `amounts` (already applied to the rows).

    Call it in the same transaction, after the update: the rows are locked by it, so posted - amount is
    exactly what this transaction moved from. `rows`, when the caller has them, are the rows after the update.
    """
    moved = {key: amount for key, amount in amounts.items() if amount > 0}
    if not moved:
        return
    if rows is None:
        rows = {
            (r.account, r.period): r
            for r in conn.execute(
                select(limit_accounts).where(
                    limit_accounts.c.organization_id == org_id,
                    limit_accounts.c.account.in_(sorted({account for account, _ in moved})),
                )
            )
            if (r.account, r.period) in moved
        }
    settings: NotifySettings | None = None
    generations: dict[Key, int] | None = None
    for key in sorted(moved):
        row = rows.get(key)
        if row is None or row.limit_nano is None or row.limit_nano <= 0:
            continue
        if key[0] != CREDITS and (row.posted_nano - moved[key]) * 100 // row.limit_nano == (
            row.posted_nano * 100 // row.limit_nano
        ):
            continue  # still in the same whole percent of the cap: no threshold (whole percents) can be crossed
        after = Money(row.posted_nano)
        before = Money(row.posted_nano - moved[key])
        limit = Money(row.limit_nano)
        if settings is None:
            settings = read_settings(conn, org_id)
        crossings = crossed_percentages(limit, before, after, settings.thresholds_percent)
        low = crossed_low_balance(limit, before, after, settings.low_balance) if key[0] == CREDITS else None
        if not crossings and low is None:
            continue
        if generations is None:
            generations = _generations(conn, org_id, moved)
        generation = generations.get(key, 0)
        for crossing in crossings:
            _enqueue(
                conn,
                org_id,
                settings,
                kind="threshold_crossed",
                key=key,
                threshold=crossing.percent or 0,
                generation=generation,
                now=now,
                data={"threshold_percent": crossing.percent, "limit": str(limit), "spent": str(after)},
            )
        if low is not None:
            _enqueue(
                conn,
                org_id,
                settings,
                kind="low_balance",
                key=key,
                threshold=0,
                generation=generation,
                now=now,
                data={"low_balance": str(low.limit), "balance": str(limit - after)},
            )


def limits_changed(conn: Connection, org_id: str, period: str, accounts: Sequence[str] | None, now: datetime) -> None:
    """Re-arm the thresholds of changed limits (`accounts`, or every member account when None) in `period`
    ('' for credits), and announce `usage_resumed` where a stopped limit now has room."""
    arming = notification_arming.c
    where = and_(arming.organization_id == org_id, arming.period == period)
    if accounts is not None:
        where = and_(where, arming.account.in_(list(accounts)))
    else:
        where = and_(where, arming.account.like("member:%"))
    stopped = conn.execute(select(arming.account, arming.generation).where(where, arming.stopped.is_(True))).all()
    resumed: list[str] = []
    if stopped:
        settings = read_settings(conn, org_id)
        rooms = {
            r.account: r
            for r in conn.execute(
                select(limit_accounts).where(
                    limit_accounts.c.organization_id == org_id,
                    limit_accounts.c.period == period,
                    limit_accounts.c.account.in_([s.account for s in stopped]),
                )
            )
        }
        for account, generation in stopped:
            row = rooms.get(account)
            if row is not None and row.limit_nano is not None and row.posted_nano + row.held_nano >= row.limit_nano:
                continue  # still no room: the stop goes on
            limit = None if row is None or row.limit_nano is None else str(Money(row.limit_nano))
            _enqueue(
                conn,
                org_id,
                settings,
                kind="usage_resumed",
                key=(account, period),
                threshold=0,
                generation=generation,
                now=now,
                data={"limit": limit},
            )
            resumed.append(account)
    conn.execute(update(notification_arming).where(where).values(generation=arming.generation + 1))
    if resumed:
        conn.execute(update(notification_arming).where(where, arming.account.in_(resumed)).values(stopped=False))


def cap_changed(conn: Connection, org_id: str, period: str, scope: str, member_id: str | None, now: datetime) -> None:
    """`limits_changed` for a cap: 'organization', 'member' (one member) or 'member_default' (every member)."""
    if scope == "organization":
        accounts: list[str] | None = [ORGANIZATION]
    elif scope == "member":
        accounts = [member_account(member_id or "")]
    else:
        accounts = None
    limits_changed(conn, org_id, period, accounts, now)


def usage_refused(engine: Engine, org_id: str, member_id: str | None, code: str, now: datetime) -> bool:
    """Record that a limit refused usage; the first refusal per limit per period (and arming) creates
    `usage_stopped`. Runs in its own transaction: the refused one has rolled back. True when it was the first."""
    account = _REFUSED_ACCOUNT.get(code)
    if account is None:
        return False  # seat and allowance refusals are not limits of spend
    if account == "member":
        if member_id is None:
            return False
        account = member_account(member_id)
    with engine.connect() as conn:
        org = conn.execute(select(organizations).where(organizations.c.id == org_id)).one_or_none()
        if org is None:
            return False
        period = "" if account == CREDITS else period_containing(now, org.timezone, org.billing_anchor_day).key
        arming = notification_arming.c
        stopped = conn.execute(
            select(arming.stopped).where(
                arming.organization_id == org_id, arming.account == account, arming.period == period
            )
        ).scalar_one_or_none()
    if stopped:
        return False  # announced already: repeated refusals of a stopped limit write nothing
    with engine.begin() as conn:
        conn.execute(
            insert_ignore(conn, notification_arming).values(
                organization_id=org_id, account=account, period=period, generation=0, stopped=False
            )
        )
        first = conn.execute(
            update(notification_arming)
            .where(
                notification_arming.c.organization_id == org_id,
                notification_arming.c.account == account,
                notification_arming.c.period == period,
                notification_arming.c.stopped.is_(False),
            )
            .values(stopped=True)
            .returning(notification_arming.c.generation)
        ).scalar_one_or_none()
        if first is None:
            return False
        return _enqueue(
            conn,
            org_id,
            read_settings(conn, org_id),
            kind="usage_stopped",
            key=(account, period),
            threshold=0,
            generation=first,
            now=now,
            data={"reason": code},
        )


# -- delivery --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed

    def to_json(self) -> dict[str, int]:
        return {"delivered": self.delivered, "retrying": self.retrying, "failed": self.failed}


def _claim(engine: Engine, now: datetime, batch: int) -> list[Any]:
    """Take up to `batch` due deliveries, each by a guarded update, so concurrent workers never share one."""
    d = notification_deliveries.c
    claimed = []
    with engine.begin() as conn:
        due = conn.execute(
            select(notification_deliveries)
            .where(d.status == "pending", d.next_attempt_at <= now)
            .order_by(d.next_attempt_at)
            .limit(batch)
        ).all()
        for row in due:
            taken = conn.execute(
                update(notification_deliveries)
                .where(
                    d.organization_id == row.organization_id,
                    d.notification_id == row.notification_id,
                    d.channel == row.channel,
                    d.target == row.target,
                    d.status == "pending",
                    d.next_attempt_at == row.next_attempt_at,
                )
                .values(next_attempt_at=now + CLAIM_LEASE)
            )
            if taken.rowcount == 1:
                claimed.append(row)
    return claimed


def _email_text(payload: dict[str, Any], org_name: str, who: str) -> tuple[str, str]:
    data = payload["data"]
    kind = payload["type"]
    period = data.get("period") or "credits"
    if kind == "threshold_crossed":
        subject = f"{org_name}: {who} at {data['threshold_percent']}% ({data['spent']} of {data['limit']} USD)"
    elif kind == "low_balance":
        subject = f"{org_name}: credit balance below {data['low_balance']} USD (now {data['balance']} USD)"
    elif kind == "usage_stopped":
        subject = f"{org_name}: usage stopped by {who} ({data['reason']})"
    else:
        subject = f"{org_name}: usage resumed for {who}"
    body = (
        f"{subject}\n\nOrganization: {org_name}\nLimit: {who}\nPeriod: {period}\n"
        f"Notification: {data['id']}\n\nSee the Usage page of your seatmeter dashboard at /app.\n"
    )
    return subject, body


def describe_limits(conn: Connection, org_id: str, accounts: Iterable[str]) -> dict[str, str]:
    """A name a person reads for each limit account: "the credit balance", "the cap of alice@example.com"."""
    wanted = set(accounts)
    member_ids = [a.removeprefix("member:") for a in wanted if a.startswith("member:")]
    emails = (
        dict(
            conn.execute(
                select(members.c.id, members.c.email).where(
                    members.c.organization_id == org_id, members.c.id.in_(member_ids)
                )
            ).all()
        )
        if member_ids
        else {}
    )
    names = {CREDITS: "the credit balance", ORGANIZATION: "the organization cap"}
    return {a: names.get(a) or f"the cap of {emails.get(a.removeprefix('member:'), a)}" for a in wanted}


def deliver_once(app: App, *, policy: RetryPolicy | None = None) -> DeliveryReport:
    """What `seatmeter worker` (and `seatmeter notify deliver`) calls on every tick: send every due delivery,
    by webhook and by email, with the SMTP server of the settings (SEATMETER_SMTP_HOST/PORT/FROM)."""
    sender = WebhookSender(allow_private=app.settings.webhook_allow_private)
    try:
        return deliver_due(app.engine, app.clock.now(), sender=sender, mailer=Mailer.from_env(), policy=policy)
    finally:
        sender.close()


def deliver_due(
    engine: Engine,
    now: datetime,
    *,
    sender: WebhookSender,
    mailer: Mailer,
    policy: RetryPolicy | None = None,
    batch: int = 100,
) -> DeliveryReport:
    """Send every delivery due at `now`, record each attempt, and schedule or give up on failures."""
    policy = policy or RetryPolicy()
    delivered = retrying = failed = 0
    for row in _claim(engine, now, batch):
        with engine.connect() as conn:
            note = conn.execute(
                select(notifications).where(
                    notifications.c.organization_id == row.organization_id, notifications.c.id == row.notification_id
                )
            ).one()
            settings = read_settings(conn, row.organization_id)
            org_name = conn.execute(
                select(organizations.c.name).where(organizations.c.id == row.organization_id)
            ).scalar_one()
            who = describe_limits(conn, row.organization_id, [note.account])[note.account]
        if row.channel == "webhook":
            secret = settings.webhook_secret or ""
            result = sender.send(row.target, secret, f"msg_{note.id}", note.payload.encode())
            ok, status_code, error = result.ok, result.status_code, result.error
        else:
            subject, text = _email_text(json.loads(note.payload), org_name, who)
            sent = mailer.send(row.target, subject, text, message_id=note.id)
            ok, status_code, error = sent.ok, None, sent.error
        attempts = row.attempts + 1
        delay = None if ok else policy.delay_after(attempts)
        status = "delivered" if ok else ("pending" if delay is not None else "failed")
        d = notification_deliveries.c
        with engine.begin() as conn:
            conn.execute(
                notification_attempts.insert().values(
                    organization_id=row.organization_id,
                    notification_id=row.notification_id,
                    channel=row.channel,
                    target=row.target,
                    attempt=attempts,
                    attempted_at=now,
                    ok=ok,
                    status_code=status_code,
                    error=error[:500],
                )
            )
            conn.execute(
                update(notification_deliveries)
                .where(
                    d.organization_id == row.organization_id,
                    d.notification_id == row.notification_id,
                    d.channel == row.channel,
                    d.target == row.target,
                )
                .values(
                    status=status,
                    attempts=attempts,
                    last_error=error[:500],
                    next_attempt_at=now + delay if delay is not None else now,
                    delivered_at=now if ok else None,
                )
            )
        if ok:
            delivered += 1
        elif delay is not None:
            retrying += 1
        else:
            failed += 1
    return DeliveryReport(delivered, retrying, failed)
