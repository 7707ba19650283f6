"""Organizations, members and keys: create them, read them, and turn a key into a principal."""

from __future__ import annotations

import functools
import hmac
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from seatmeter.adapters import orgs_repo
from seatmeter.adapters.tables import api_keys, limit_accounts, members, organizations
from seatmeter.domain.auth import Principal, PrincipalKind
from seatmeter.domain.errors import Conflict, InvalidRequest, Unauthenticated
from seatmeter.domain.ids import hash_key, new_id, new_key
from seatmeter.domain.limits import CREDITS
from seatmeter.domain.organization import (
    CHANNELS,
    PLANS,
    Organization,
    choose,
    validate_email,
    validate_seat_prices,
    validate_timezone,
)
from seatmeter.services.key_cache import KeyCache
from seatmeter.services.uow import UnitOfWork

__all__ = [
    "CreatedMember",
    "add_member",
    "authenticate",
    "known_principal",
    "principal_for_key_hash",
    "create_organization",
    "create_service_key",
    "get_organization",
    "issue_member_key",
    "list_members",
    "list_organizations",
]

_ROLES_ADDABLE = ("owner", "member")


@dataclass(frozen=True)
class CreatedMember:
    id: str
    email: str
    name: str
    role: str
    api_key: str


def _text(value: Any, field: str, max_len: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidRequest(f"{field} must be a non-empty string of at most {max_len} characters")
    return value.strip()


def _store_key(uow: UnitOfWork, org_id: str, member_id: str | None, now: Any) -> str:
    """Issue a key: a member's when `member_id` is given, else the organization's service key. Only its hash is
    kept; the key itself is returned once."""
    key = new_key()
    uow.conn.execute(
        api_keys.insert().values(
            key_hash=hash_key(key),
            organization_id=org_id,
            member_id=member_id,
            kind="service" if member_id is None else "member",
            prefix=key[:10],
            created_at=now,
        )
    )
    return key


def _insert_member(uow: UnitOfWork, org_id: str, email: str, name: str, role: str, now: Any) -> CreatedMember:
    member_id = new_id("mem")
    try:
        with uow.conn.begin_nested():
            uow.conn.execute(
                members.insert().values(
                    organization_id=org_id, id=member_id, email=email, name=name, role=role, created_at=now
                )
            )
    except IntegrityError:
        raise Conflict(f"{email} is already a member of this organization", code="invalid_request") from None
    key = _store_key(uow, org_id, member_id, now)
    return CreatedMember(member_id, email, name, role, key)


def create_organization(
    uow: UnitOfWork, principal: Principal, body: dict[str, Any], now: Any
) -> tuple[Organization, CreatedMember]:
    principal.require_operator()
    name = _text(body.get("name"), "name")
    timezone = validate_timezone(body.get("timezone", "UTC"))
    plan = choose(body.get("plan", "usage_based"), PLANS, "plan")
    channel = choose(body.get("channel", "self_serve"), CHANNELS, "channel")
    try:
        term_start = date.fromisoformat(str(body.get("term_start", now.date().isoformat())))
    except ValueError:
        raise InvalidRequest("term_start must be a date, YYYY-MM-DD") from None
    anchor = body.get("billing_anchor_day", 1)
    if type(anchor) is not int or not 1 <= anchor <= 31:
        raise InvalidRequest("billing_anchor_day must be a whole number from 1 to 31")
    prices = validate_seat_prices(plan, body.get("seat_prices", {}))
    owner = body.get("primary_owner")
    if not isinstance(owner, dict):
        raise InvalidRequest("primary_owner must be an object with email and name")
    email = validate_email(owner.get("email"))
    owner_name = _text(owner.get("name", email), "primary_owner.name")
    org = Organization(new_id("org"), name, timezone, plan, channel, term_start, anchor, prices)
    with uow:
        uow.conn.execute(
            organizations.insert().values(
                id=org.id,
                name=name,
                timezone=timezone,
                plan=plan,
                channel=channel,
                term_start=term_start,
                billing_anchor_day=anchor,
                seat_prices=json.dumps({k: str(v) for k, v in prices.items()}),
                created_at=now,
            )
        )
        if org.self_serve:
            uow.conn.execute(
                limit_accounts.insert().values(
                    organization_id=org.id, account=CREDITS, period="", limit_nano=0, posted_nano=0, held_nano=0
                )
            )
        created = _insert_member(uow, org.id, email, owner_name, "primary_owner", now)
        uow.commit()
    return org, created


def get_organization(uow: UnitOfWork, principal: Principal, org_id: str) -> Organization:
    principal.require_member_of(org_id)
    with uow:
        return orgs_repo.get_organization(uow.conn, org_id)


def list_organizations(uow: UnitOfWork, principal: Principal) -> list[Organization]:
    principal.require_operator()
    with uow:
        rows = uow.conn.execute(select(organizations).order_by(organizations.c.created_at, organizations.c.id))
        return [orgs_repo.organization_from_row(r) for r in rows]


def add_member(uow: UnitOfWork, principal: Principal, org_id: str, body: dict[str, Any], now: Any) -> CreatedMember:
    principal.require_owner(org_id)
    email = validate_email(body.get("email"))
    name = _text(body.get("name", email), "name")
    role = choose(body.get("role", "member"), _ROLES_ADDABLE, "role")
    with uow:
        orgs_repo.get_organization(uow.conn, org_id)
        created = _insert_member(uow, org_id, email, name, role, now)
        uow.commit()
    return created


def list_members(uow: UnitOfWork, principal: Principal, org_id: str) -> list[dict[str, Any]]:
    principal.require_member_of(org_id)
    with uow:
        orgs_repo.get_organization(uow.conn, org_id)
        stmt = (
            select(members.c.id, members.c.email, members.c.name, members.c.role, members.c.seat_type)
            .where(members.c.organization_id == org_id)
            .order_by(members.c.created_at, members.c.id)
        )
        if not (principal.is_operator or principal.is_owner):
            stmt = stmt.where(members.c.id == principal.member_id)
        return [dict(r._mapping) for r in uow.conn.execute(stmt)]


def create_service_key(uow: UnitOfWork, principal: Principal, org_id: str, now: Any) -> str:
    principal.require_owner(org_id)
    with uow:
        orgs_repo.get_organization(uow.conn, org_id)
        key = _store_key(uow, org_id, None, now)
        uow.commit()
    return key


def issue_member_key(uow: UnitOfWork, principal: Principal, org_id: str, member_id: str, now: Any) -> str:
    """A new key for a member (keys are shown once; the old ones keep working)."""
    principal.require_owner(org_id)
    with uow:
        orgs_repo.get_member(uow.conn, org_id, member_id)
        key = _store_key(uow, org_id, member_id, now)
        uow.commit()
    return key


def authenticate(uow: UnitOfWork, key: str | None, operator_key: str, cache: KeyCache | None = None) -> Principal:
    digest, known = _without_database(key, operator_key, cache)
    if known is not None:
        return known
    if cache is None:
        return principal_for_key_hash(uow, digest)
    started = cache.read_started()  # before the read: the cache's bound counts from here
    found = principal_for_key_hash(uow, digest)
    cache.put(digest, found, started)
    return found


def known_principal(key: str | None, operator_key: str, cache: KeyCache | None = None) -> Principal | None:
    """The principal behind `key` when it is known without the database (the operator's key, or a key read less
    than the cache's bound ago), else None. Raises Unauthenticated when there is no key at all."""
    return _without_database(key, operator_key, cache)[1]


@functools.lru_cache(maxsize=4)
def _operator_digest(operator_key: str) -> str:
    """The operator key's hash: one setting per process, hashed once instead of on every request."""
    return hash_key(operator_key)


def _without_database(key: str | None, operator_key: str, cache: KeyCache | None) -> tuple[str, Principal | None]:
    if not key:
        raise Unauthenticated("no API key: send Authorization: Bearer <key>")
    digest = hash_key(key)
    if operator_key and hmac.compare_digest(digest, _operator_digest(operator_key)):
        return digest, Principal(PrincipalKind.OPERATOR)
    return digest, cache.get(digest) if cache is not None else None


def principal_for_key_hash(uow: UnitOfWork, digest: str) -> Principal:
    """The member or service key stored under `digest` (the dashboard's session keeps the hash, never the key)."""
    with uow:
        row = uow.conn.execute(
            select(api_keys.c.organization_id, api_keys.c.member_id, api_keys.c.kind, members.c.role)
            .select_from(
                api_keys.outerjoin(
                    members,
                    (members.c.organization_id == api_keys.c.organization_id) & (members.c.id == api_keys.c.member_id),
                )
            )
            .where(api_keys.c.key_hash == digest)
        ).one_or_none()
    if row is None:
        raise Unauthenticated("this API key is not valid", resume="Ask an owner for a new key.")
    if row.kind == "service":
        return Principal(PrincipalKind.SERVICE, row.organization_id)
    return Principal(PrincipalKind.MEMBER, row.organization_id, row.member_id, row.role)
