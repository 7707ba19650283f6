"""Usage recorded after the fact (always accepted and billed), and the usage summary of a period."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy.exc import IntegrityError

from seatmeter.adapters import close_fence, limits_repo, orgs_repo, summary_repo
from seatmeter.adapters.raw import Statement, to_db_time
from seatmeter.adapters.sql import chunks, insert_made_rows
from seatmeter.adapters.tables import ledger_entries, usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import Conflict, InvalidRequest, SeatmeterError
from seatmeter.domain.ids import new_id, new_ids
from seatmeter.domain.limits import CREDITS, ORGANIZATION, member_account
from seatmeter.domain.money import Money
from seatmeter.domain.organization import Organization
from seatmeter.domain.periods import Period, period_containing, zone
from seatmeter.domain.pricing import BatchPricer
from seatmeter.domain.usage import EventFields, event_fingerprint, parse_events
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
    events = parse_events(raw_events)
    now = app.clock.now()
    latest = now + MAX_CLOCK_SKEW
    if any(at > latest for at in {e[4] for e in events}):
        for i, event in enumerate(events):
            if event[4] > latest:
                raise InvalidRequest(
                    f"events[{i}]: occurred_at {event[4].isoformat()} is in the future; "
                    f"no event of this batch was recorded"
                )
    book = app.prices.get()
    if not all(book.knows(model) for model in {e[2] for e in events}):
        book = app.prices.get(fresh=True)
    cost = BatchPricer(book).cost
    priced = [cost(e[2], e[4], e[5], e[6], e[7], e[8], e[9], e[10]) for e in events]
    probe_all = False  # the first attempt looks up three of the batch's keys (see _record)
    for _ in range(MAX_RECORD_ATTEMPTS - 1):
        try:
            return _record(app, org_id, events, priced, now, probe_all=probe_all)
        except IntegrityError:
            # Some keys were recorded already: by an earlier batch that the first attempt's lookup missed, or by
            # another batch at the same moment. Now they are replays. Each failed attempt after the first means
            # another batch committed, so with many overlapping batches it can take more than one retry.
            pass
        except (InvalidRequest, Conflict):
            if probe_all:
                raise
            # A bad batch, found without looking up every key: a recorded key the first attempt did not look up
            # may make an earlier event bad (a conflict), and the answer is the first bad event's error.
        probe_all = True
    return _record(app, org_id, events, priced, now, probe_all=True)


# The tuples _record builds, in the order of the table's columns (checked when the module loads).
_ROW_COLUMNS = (
    "organization_id",
    "id",
    "idempotency_key",
    "fingerprint",
    "member_id",
    "model",
    "surface",
    "service_tier",
    "occurred_at",
    "period",
    "input_tokens",
    "output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "cost_nano",
    "price_version",
    "hold_id",
    "exceeded_hold",
    "recorded_at",
)
if tuple(usage_events.c.keys()) != _ROW_COLUMNS:
    raise RuntimeError("services.usage builds usage_events rows in an order that no longer matches the table")


def _record(
    app: App,
    org_id: str,
    events: list[EventFields],
    priced: list[tuple[int, str, str]],
    now: datetime,
    *,
    probe_all: bool,
) -> dict[str, int]:
    with app.uow() as uow:
        conn = uow.conn
        close_fence.lock_for_writer(conn, org_id)
        org = orgs_repo.get_organization(conn, org_id)
        known_members = _existing_members(conn, org_id, {e[1] for e in events})
        keys = sorted({e[0] for e in events})
        # The keys already recorded, with their fingerprints. A batch sent again is found by any of its keys, so
        # the first attempt looks up three: with none recorded, the batch is inserted without looking up the
        # rest (on PostgreSQL the lookup of 10,000 keys cost a sixth of the batch), and a key recorded after all
        # fails the insert, which is then retried looking up every key.
        looked_up = keys if probe_all else _sample(keys)
        seen = _recorded_fingerprints(conn, org_id, looked_up)
        if seen and len(looked_up) < len(keys):
            seen = _recorded_fingerprints(conn, org_id, keys)
        # Never below the last close's cutoff: an event committed after a close goes on the next document.
        recorded_at = to_db_time(conn, close_fence.clamp_recorded_at(conn, org_id, now))
        new = _NewRows(org_id, org, conn, events, priced, known_members, seen, recorded_at)
        # Inserted in key order: concurrent batches that share keys then wait on each other in one order and cannot
        # deadlock on the unique index. On PostgreSQL the rows go into the COPY as they are made, so the server
        # stores the first while the next are made (10,000 events: ~40 ms of the batch's ~230 ms).
        if len(seen) == len(keys):  # every key is recorded: nothing to insert, replays and conflicts to tell
            new.write_rows(lambda _row: None)
        else:
            insert_made_rows(conn, usage_events, new.write_rows)
        if new.accepted:
            spend = new.spend
            amounts: dict[tuple[str, str], int] = defaultdict(int)
            for (member_id, period), nano in spend.items():
                amounts[(ORGANIZATION, period)] += nano
                amounts[(member_account(member_id), period)] += nano
            total = sum(spend.values())
            if org.prepaid:
                amounts[(CREDITS, "")] += total
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
    return {"accepted": new.accepted, "duplicates": new.duplicates}


class _NewRows:
    """The rows of a batch's new events, made in key order, and what they add up to once made.

    `write_rows(write)` calls `write` with each new event's row of usage_events; replays (same key, same
    fingerprint) are counted, not written. The answer for a bad batch is its first bad event's error, as if the
    events were checked in their order: a key's events are checked in their order (the sort is stable), and
    whether an event is bad depends only on its own key's earlier events, so the error of the lowest index is the
    one. Once an event is bad, no more rows are written, the rest are still checked for an earlier error, and the
    error is raised at the end: the insert that took the rows fails with it, and nothing of the batch is written.
    """

    def __init__(
        self,
        org_id: str,
        org: Organization,
        conn: Any,
        events: list[EventFields],
        priced: list[tuple[int, str, str]],
        known_members: set[str],
        seen: dict[str, str],
        recorded_at: Any,
    ) -> None:
        self._org_id, self._org, self._conn = org_id, org, conn
        self._events, self._priced, self._known, self._seen = events, priced, known_members, seen
        self._recorded_at = recorded_at
        self.spend: dict[tuple[str, str], int] = defaultdict(int)  # (member, period) -> nano-USD
        self.accepted = 0
        self.duplicates = 0

    def write_rows(self, write: Callable[[tuple[Any, ...]], object]) -> None:
        events, priced, known, seen, org_id = self._events, self._priced, self._known, self._seen, self._org_id
        conn, org, recorded_at, spend = self._conn, self._org, self._recorded_at, self.spend
        # Per distinct instant of the batch: the fingerprint's timestamp text, the period, the value to bind.
        instants: dict[datetime, tuple[str, str, Any]] = {}
        org_zone = zone(org.timezone)
        periods: dict[date, str] = {}  # local date -> period key
        ids = new_ids("evt", len(events))
        failures: list[tuple[int, SeatmeterError]] = []
        keys = [e[0] for e in events]
        for key, i, event, (cost_nano, version_id, model) in sorted(
            zip(keys, range(len(events)), events, priced, strict=True), key=itemgetter(0)
        ):
            _, member_id, model_id, surface, at, tier, input_tokens, output_tokens, write_5m, write_1h, read = event
            if member_id not in known:
                failures.append((i, _unknown_member(i, member_id)))
                continue
            instant = instants.get(at)
            if instant is None:
                # The period depends only on the local date (period_containing reads nothing else), so it is
                # computed once per local day even when every event has an instant of its own.
                day = at.astimezone(org_zone).date()
                period = periods.get(day)
                if period is None:
                    period = periods[day] = period_containing(at, org.timezone, org.billing_anchor_day).key
                instant = instants[at] = (str(at.timestamp()), period, to_db_time(conn, at))
            timestamp, period, occurred_at = instant
            print_ = event_fingerprint(
                member_id, model_id, surface, timestamp, tier, input_tokens, write_5m, write_1h, read, output_tokens
            )
            previous = seen.get(key)
            if previous is not None:
                if previous != print_:
                    failures.append((i, _key_conflict(i, key)))
                else:
                    self.duplicates += 1
                continue
            seen[key] = print_
            if failures:
                continue
            spend[(member_id, period)] += cost_nano
            write(
                (
                    org_id,
                    ids[i],
                    key,
                    print_,
                    member_id,
                    model,
                    surface,
                    tier,
                    occurred_at,
                    period,
                    input_tokens,
                    output_tokens,
                    write_5m,
                    write_1h,
                    read,
                    cost_nano,
                    version_id,
                    None,
                    False,
                    recorded_at,
                )
            )
        if failures:
            raise min(failures, key=itemgetter(0))[1]
        self.accepted = len(events) - self.duplicates


def _unknown_member(i: int, member_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"events[{i}]: member {member_id!r} is not in this organization; no event of this batch was recorded"
    )


def _key_conflict(i: int, key: str) -> Conflict:
    return Conflict(
        f"events[{i}]: idempotency_key {key!r} was already used for a different event; "
        f"no event of this batch was recorded",
        resume="Send a new idempotency_key for a new event.",
    )


# One probe of the unique index per key, in one statement. On PostgreSQL, a plain `IN (...)` list is planned from
# statistics that a table just grown by bulk inserts does not have yet, and was seen scanning the whole table per
# chunk. On SQLite, the keys travel as one JSON array: Core's chunked `IN` lists spent more time compiling 10,000
# bound parameters than SQLite spent answering.
_RECORDED_PG = Statement(
    "SELECT e.idempotency_key, e.fingerprint FROM unnest(CAST(:keys AS text[])) AS k(key) "
    "JOIN usage_events e ON e.organization_id = :org AND e.idempotency_key = k.key"
)
_RECORDED_SQLITE = Statement(
    "SELECT idempotency_key, fingerprint FROM usage_events "
    "WHERE organization_id = :org AND idempotency_key IN (SELECT value FROM json_each(:keys))"
)
_RECORDED_SQLITE_BOUND = (
    "SELECT idempotency_key, fingerprint FROM usage_events WHERE organization_id = ? AND idempotency_key IN ("
)
_MEMBERS_PG = Statement(
    "SELECT m.id FROM unnest(CAST(:ids AS text[])) AS i(id) JOIN members m ON m.organization_id = :org AND m.id = i.id"
)
_MEMBERS_SQLITE = Statement(
    "SELECT id FROM members WHERE organization_id = :org AND id IN (SELECT value FROM json_each(:ids))"
)


def _sample(keys: list[str]) -> list[str]:
    """The first, middle and last of the sorted keys (all of them, for three or fewer)."""
    return sorted({keys[0], keys[len(keys) // 2], keys[-1]})


def _recorded_fingerprints(conn: Any, org_id: str, keys: list[str]) -> dict[str, str]:
    """Idempotency key -> fingerprint, for the keys already recorded."""
    if conn.dialect.name == "postgresql":
        return dict(_RECORDED_PG.run(conn, {"org": org_id, "keys": keys}).tuples())
    if "\x00" in "".join(keys):
        # SQLite's JSON functions end a string at an escaped NUL, so such keys would never be found: bind them.
        seen: dict[str, str] = {}
        for chunk in chunks(keys, 500):
            sql = _RECORDED_SQLITE_BOUND + ", ".join("?" * len(chunk)) + ")"
            seen.update((key, print_) for key, print_ in conn.exec_driver_sql(sql, (org_id, *chunk)))
        return seen
    return dict(_RECORDED_SQLITE.run(conn, {"org": org_id, "keys": json.dumps(keys)}).tuples())


def _existing_members(conn: Any, org_id: str, member_ids: set[str]) -> set[str]:
    ids = sorted(member_ids)
    if conn.dialect.name == "postgresql":
        rows = _MEMBERS_PG.run(conn, {"org": org_id, "ids": ids})
    else:
        rows = _MEMBERS_SQLITE.run(conn, {"org": org_id, "ids": json.dumps(ids)})
    return {member_id for (member_id,) in rows.tuples()}


def usage_summary(app: App, principal: Principal, org_id: str, period_key: str | None = None) -> dict[str, Any]:
    """Spend of the period: total, credits, caps, and per member (members see only themselves)."""
    principal.require_member_of(org_id)
    now = app.clock.now()
    with app.uow(read_only=True) as uow:
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
            state = limits.get(member_account(mid))
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
