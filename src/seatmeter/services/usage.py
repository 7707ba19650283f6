"""Usage recorded after the fact (always accepted and billed), and the usage summary of a period."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from seatmeter.adapters import limits_repo, orgs_repo, summary_repo
from seatmeter.adapters.raw import Statement
from seatmeter.adapters.sql import bulk_insert, chunks
from seatmeter.adapters.tables import ledger_entries, members, usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import Conflict, InvalidRequest
from seatmeter.domain.ids import new_id
from seatmeter.domain.limits import CREDITS, ORGANIZATION, member_account
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization
from seatmeter.domain.periods import Period, period_containing
from seatmeter.domain.usage import UsageEvent, parse_event
from seatmeter.services import caps as caps_service
from seatmeter.services import notifications
from seatmeter.services.credits import CreditBalance

__all__ = ["MAX_BATCH", "record_usage", "usage_summary"]

MAX_BATCH = 10_000
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_RECORD_ATTEMPTS = 50


def record_usage(app: App, principal: Principal, org_id: str, body: Any) -> dict[str, int]:
    """Record a batch of events, all or none. Replays (same key, same payload) count as duplicates."""
    principal.require_usage_writer(org_id)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise InvalidRequest('the body must be {"events": [...]}')
    raw_events = body["events"]
    if not 1 <= len(raw_events) <= MAX_BATCH:
        raise InvalidRequest(f"a batch holds 1 to {MAX_BATCH:,} events, got {len(raw_events):,}")
    events = [parse_event(raw, i) for i, raw in enumerate(raw_events)]
    now = app.clock.now()
    for i, event in enumerate(events):
        if event.occurred_at > now + MAX_CLOCK_SKEW:
            raise InvalidRequest(
                f"events[{i}]: occurred_at {event.occurred_at.isoformat()} is in the future; "
                f"no event of this batch was recorded"
            )
    book = app.prices.get()
    if not all(book.knows(e.model) for e in events):
        book = app.prices.get(fresh=True)
    priced = [book.cost(e.model, e.usage, e.occurred_at, e.service_tier) for e in events]
    for _ in range(MAX_RECORD_ATTEMPTS - 1):
        try:
            return _record(app, org_id, events, priced, now)
        except IntegrityError:
            # Another batch recorded some of the same keys at the same moment: now they are replays. Each
            # failed attempt means another batch committed, so with many overlapping batches it can take
            # more than one retry.
            continue
    return _record(app, org_id, events, priced, now)


def _record(app: App, org_id: str, events: list[UsageEvent], priced: list[Any], now: datetime) -> dict[str, int]:
    with app.uow() as uow:
        conn = uow.conn
        org = orgs_repo.get_organization(conn, org_id)
        known_members = _existing_members(conn, org_id, {e.member_id for e in events})
        seen = _recorded_fingerprints(conn, org_id, sorted({e.idempotency_key for e in events}))
        rows: list[dict[str, Any]] = []
        amounts: dict[tuple[str, str], int] = defaultdict(int)
        duplicates = 0
        for i, (event, price) in enumerate(zip(events, priced, strict=True)):
            if event.member_id not in known_members:
                raise InvalidRequest(
                    f"events[{i}]: member {event.member_id!r} is not in this organization; "
                    f"no event of this batch was recorded"
                )
            print_ = event.fingerprint  # a hash: computed once per event
            previous = seen.get(event.idempotency_key)
            if previous is not None:
                if previous != print_:
                    raise Conflict(
                        f"events[{i}]: idempotency_key {event.idempotency_key!r} was already used for "
                        f"a different event; no event of this batch was recorded",
                        resume="Send a new idempotency_key for a new event.",
                    )
                duplicates += 1
                continue
            seen[event.idempotency_key] = print_
            period = period_containing(event.occurred_at, org.timezone, org.billing_anchor_day).key
            rows.append(
                {
                    "organization_id": org_id,
                    "id": new_id("evt"),
                    "idempotency_key": event.idempotency_key,
                    "fingerprint": print_,
                    "member_id": event.member_id,
                    "model": price.model,
                    "surface": event.surface,
                    "service_tier": event.service_tier,
                    "occurred_at": event.occurred_at,
                    "period": period,
                    "input_tokens": event.usage.input,
                    "output_tokens": event.usage.output,
                    "cache_write_5m_tokens": event.usage.cache_write_5m,
                    "cache_write_1h_tokens": event.usage.cache_write_1h,
                    "cache_read_tokens": event.usage.cache_read,
                    "cost_nano": price.cost.nano,
                    "price_version": price.version_id,
                    "hold_id": None,
                    "exceeded_hold": False,
                    "recorded_at": now,
                }
            )
            amounts[(ORGANIZATION, period)] += price.cost.nano
            amounts[(member_account(event.member_id), period)] += price.cost.nano
            if org.prepaid:
                amounts[(CREDITS, "")] += price.cost.nano
        if rows:
            # Insert in key order: concurrent batches that share keys then wait on each other in one order
            # and cannot deadlock on the unique index.
            rows.sort(key=lambda row: row["idempotency_key"])
            bulk_insert(conn, usage_events, rows)
            total = sum(r["cost_nano"] for r in rows)
            if total:
                batch_id = new_id("batch")
                conn.execute(
                    ledger_entries.insert().values(
                        organization_id=org_id,
                        id=new_id("le"),
                        kind="usage",
                        debit_account=CREDITS if org.prepaid else "receivable",
                        credit_account="revenue",
                        amount_nano=total,
                        reference=batch_id,
                        created_at=now,
                    )
                )
            limits_repo.post(conn, org_id, amounts)
            notifications.spend_posted(conn, org_id, amounts, now)
        uow.commit()
    return {"accepted": len(rows), "duplicates": duplicates}


# On PostgreSQL, one probe of the unique index per key. A plain `IN (...)` list is planned from statistics that
# a table just grown by bulk inserts does not have yet, and was seen scanning the whole table per chunk.
_RECORDED_PG = Statement(
    "SELECT e.idempotency_key, e.fingerprint FROM unnest(CAST(:keys AS text[])) AS k(key) "
    "JOIN usage_events e ON e.organization_id = :org AND e.idempotency_key = k.key"
)


def _recorded_fingerprints(conn: Any, org_id: str, keys: list[str]) -> dict[str, str]:
    """Idempotency key -> fingerprint, for the keys already recorded."""
    if conn.dialect.name == "postgresql":
        return {r.idempotency_key: r.fingerprint for r in _RECORDED_PG.run(conn, {"org": org_id, "keys": keys})}
    seen: dict[str, str] = {}
    for chunk in chunks(keys, 1000):
        seen.update(
            (key, print_)
            for key, print_ in conn.execute(
                select(usage_events.c.idempotency_key, usage_events.c.fingerprint).where(
                    usage_events.c.organization_id == org_id, usage_events.c.idempotency_key.in_(chunk)
                )
            )
        )
    return seen


def _existing_members(conn: Any, org_id: str, member_ids: set[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunks(sorted(member_ids), 1000):
        found.update(
            conn.execute(
                select(members.c.id).where(members.c.organization_id == org_id, members.c.id.in_(chunk))
            ).scalars()
        )
    return found


def usage_summary(app: App, principal: Principal, org_id: str, period_key: str | None = None) -> dict[str, Any]:
    """Spend of the period: total, credits, caps, and per member (members see only themselves)."""
    principal.require_member_of(org_id)
    now = app.clock.now()
    with app.uow() as uow:
        org = orgs_repo.get_organization(uow.conn, org_id)
        period = caps_service.period_of(org, now, period_key)
        sees_everyone = principal.is_operator or principal.is_owner
        rows = summary_repo.read(uow.conn, org_id, period.key, None if sees_everyone else principal.member_id)
    return _summary(org, period, rows)


def _summary(org: Organization, period: Period, rows: summary_repo.SummaryRows) -> dict[str, Any]:
    """Built after the transaction, as plain dicts, each distinct amount formatted once."""
    text = caps_service.MoneyText()
    caps_view, member_caps = caps_service.caps_view(period, rows, text)
    limits = rows.limits
    listed = []
    for (mid, email, name), cap in zip(rows.members, member_caps, strict=True):
        if cap is not None:  # the member's cap entry already shows their spend and held, from the same row
            spend, held, limit, status = cap["spent"], cap["held"], cap["limit"], cap["status"]
        else:
            state = limits.get("member:" + mid)
            spend, held = (text[0], text[0]) if state is None else (text[state[1]], text[state[2]])
            limit, status = None, "ok"
        listed.append(
            {
                "member_id": mid,
                "email": email,
                "name": name,
                "spend": spend,
                "held": held,
                "cap": limit,
                "cap_status": status,
            }
        )
    org_row = limits.get(ORGANIZATION)
    out: dict[str, Any] = {
        "period": period.key,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "total": text[0 if org_row is None else org_row[1]],
        "caps": caps_view,
        "members": listed,
    }
    credit_row = limits.get(CREDITS)
    if org.self_serve and credit_row is not None:
        limit_nano, posted_nano, held_nano = credit_row
        balance = Money((limit_nano or 0) - posted_nano)
        out["credits"] = CreditBalance(balance, Money(held_nano), balance - Money(held_nano)).to_json()
    return out
