"""Usage from the vendor's reports into seatmeter, and seatmeter's costs checked against the vendor's invoice lines.

Import: each row of an Admin API `usage_report/messages` export becomes one usage event of the member its API
key maps to, at the start of its time bucket, with the row's service tier. The idempotency key is derived from
the row, so importing the same report twice (or overlapping reports with the same buckets) counts once. The
whole file is checked first (shape, key map, models): a report that cannot be imported whole writes nothing.

Reconcile: per day (the cost report's UTC day buckets) and model, the sum of seatmeter's event costs next to the
vendor's amounts. Costs that are not tokens (web search, code execution) are listed under `(cost_type)`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select

from seatmeter.adapters.tables import members, usage_events
from seatmeter.bootstrap import App
from seatmeter.domain.auth import Principal
from seatmeter.domain.errors import InvalidRequest, UnknownModel
from seatmeter.domain.money import Money
from seatmeter.domain.vendor_reports import (
    Difference,
    UsageRow,
    bucket_windows,
    compare_costs,
    parse_cost_report,
    parse_usage_report,
)
from seatmeter.services.usage import MAX_BATCH, record_usage

__all__ = ["Imported", "import_anthropic_usage", "parse_key_map", "reconcile_anthropic_cost"]


@dataclass(frozen=True)
class Imported:
    rows: int
    accepted: int
    duplicates: int
    skipped_empty: int


def parse_key_map(raw: Any) -> dict[str, str]:
    """`{"apikey_...": "<member id or email>"}`; every key and value a non-empty string."""
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidRequest(
            "the key map must be a JSON object of vendor API key id to member, "
            'e.g. {"apikey_01Rj2N8SVvo6BePZj99NhmiT": "alice@acme.test"}'
        )
    for key, member in raw.items():
        if not isinstance(key, str) or not key or not isinstance(member, str) or not member:
            raise InvalidRequest(f"the key map entry {key!r}: {member!r} must map a key id to a member id or email")
    return dict(raw)


def _resolve_members(app: App, org_id: str, key_map: Mapping[str, str]) -> dict[str, str]:
    """Vendor key id -> member id; members may be named by id or by email."""
    with app.uow() as uow:
        rows = uow.conn.execute(select(members.c.id, members.c.email).where(members.c.organization_id == org_id)).all()
    by_id = {row.id for row in rows}
    by_email = {row.email.lower(): row.id for row in rows}
    resolved: dict[str, str] = {}
    unknown = []
    for key, member in key_map.items():
        member_id = member if member in by_id else by_email.get(member.lower())
        if member_id is None:
            unknown.append(member)
        else:
            resolved[key] = member_id
    if unknown:
        raise InvalidRequest(
            f"the key map names members that are not in organization {org_id}: "
            f"{', '.join(sorted(unknown))}; nothing was imported"
        )
    return resolved


def _check_rows(app: App, rows: list[UsageRow], key_members: Mapping[str, str]) -> None:
    unmapped = sorted({row.api_key_id or "(no api_key_id)" for row in rows if row.api_key_id not in key_members})
    if unmapped:
        raise InvalidRequest(
            f"the report has usage of API keys the key map does not name: {', '.join(unmapped)}; nothing was imported",
            resume="Add them to the key map (export the report grouped by api_key_id and model).",
        )
    book = app.prices.get(fresh=True)
    unknown = sorted({row.model for row in rows if not book.knows(row.model)})
    if unknown:
        raise UnknownModel(
            f"the report has usage of models the price book does not list: {', '.join(unknown)}; nothing was imported",
            resume="Ask the operator to add them to the price book, then import again.",
        )


def import_anthropic_usage(
    app: App, principal: Principal, org_id: str, document: Any, key_map: Mapping[str, str], surface: str = "api"
) -> Imported:
    rows = parse_usage_report(document)
    key_members = _resolve_members(app, org_id, key_map)
    _check_rows(app, rows, key_members)
    events = []
    for row in rows:
        usage = row.usage
        if not any(usage.as_tuple()):
            continue
        events.append(
            {
                "idempotency_key": row.idempotency_key,
                "member_id": key_members[row.api_key_id or ""],
                "model": row.model,
                "surface": surface,
                "occurred_at": row.starting_at.isoformat(),
                "service_tier": row.service_tier,
                "input_tokens": usage.input,
                "output_tokens": usage.output,
                "cache_write_5m_tokens": usage.cache_write_5m,
                "cache_write_1h_tokens": usage.cache_write_1h,
                "cache_read_tokens": usage.cache_read,
            }
        )
    accepted = duplicates = 0
    for start in range(0, len(events), MAX_BATCH):
        result = record_usage(app, principal, org_id, {"events": events[start : start + MAX_BATCH]})
        accepted += result["accepted"]
        duplicates += result["duplicates"]
    return Imported(len(rows), accepted, duplicates, len(rows) - len(events))


def reconcile_anthropic_cost(app: App, principal: Principal, org_id: str, document: Any) -> list[Difference]:
    principal.require_owner(org_id)
    cost_rows = parse_cost_report(document)
    book = app.prices.get(fresh=True)
    theirs: list[tuple[date, str, Money]] = []
    for row in cost_rows:
        if row.model is None:
            label = f"({row.cost_type or 'other'})"
        else:
            label = book.resolve(row.model) if book.knows(row.model) else row.model
        theirs.append((row.day, label, row.amount))
    ours: dict[tuple[date, str], Money] = defaultdict(Money.zero)
    windows = sorted(set(bucket_windows(document)))
    with app.uow() as uow:
        for starting_at, ending_at in windows:
            totals = uow.conn.execute(
                select(usage_events.c.model, func.sum(usage_events.c.cost_nano))
                .where(
                    usage_events.c.organization_id == org_id,
                    usage_events.c.occurred_at >= starting_at,
                    usage_events.c.occurred_at < ending_at,
                )
                .group_by(usage_events.c.model)
            ).all()
            for model, cost_nano in totals:
                ours[(starting_at.date(), model)] += Money(int(cost_nano))
    return compare_costs(ours, theirs)
