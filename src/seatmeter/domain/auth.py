"""Who is calling, and what they may do. Pure rules; keys are resolved to a Principal by services/access.py."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from seatmeter.domain.errors import Forbidden

__all__ = ["OWNER_ROLES", "Principal", "PrincipalKind"]

OWNER_ROLES = frozenset({"owner", "primary_owner"})


class PrincipalKind(Enum):
    OPERATOR = "operator"
    MEMBER = "member"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    organization_id: str | None = None
    member_id: str | None = None
    role: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind is PrincipalKind.OPERATOR

    @property
    def is_owner(self) -> bool:
        return self.kind is PrincipalKind.MEMBER and self.role in OWNER_ROLES

    def in_org(self, organization_id: str) -> bool:
        return self.is_operator or self.organization_id == organization_id

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Forbidden(
                "only the operator (the vendor's account manager) can do this", resume="Use the operator key."
            )

    def require_owner(self, organization_id: str) -> None:
        """Owners, the primary owner, and the operator (who administers every organization)."""
        if self.is_operator:
            return
        if not (self.in_org(organization_id) and self.is_owner):
            raise Forbidden(
                "only an owner or the primary owner of this organization can do this",
                resume="Ask an owner of the organization.",
            )

    def require_member_of(self, organization_id: str) -> None:
        """Anyone who belongs to the organization as a person: members, owners, and the operator."""
        if self.is_operator:
            return
        if not (self.in_org(organization_id) and self.kind is PrincipalKind.MEMBER):
            raise Forbidden("this needs the key of a member of this organization")

    def require_usage_writer(self, organization_id: str, member_id: str | None = None) -> None:
        """Holds, settles, voids and usage: the organization's service key, or a member acting for themself."""
        if self.is_operator:
            return
        if not self.in_org(organization_id):
            raise Forbidden("this key belongs to another organization")
        if self.kind is PrincipalKind.SERVICE:
            return
        if member_id is None or self.member_id != member_id:
            raise Forbidden(
                "a member key can only record usage for its own member",
                resume="Use the organization's service key to act for other members.",
            )

    def can_see_member(self, organization_id: str, member_id: str) -> bool:
        return self.is_operator or (self.in_org(organization_id) and (self.is_owner or self.member_id == member_id))
