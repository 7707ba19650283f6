"""Request bodies as the OpenAPI document shows them. Strict types: a float for money or a string for a
token count is a 400, not a silent conversion. The services validate the business rules again, so the CLI
and the API share one set of rules."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

MoneyStr = StrictStr  # a decimal string of USD, up to 9 decimals: "901.64"
Tokens = StrictInt


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrimaryOwner(Body):
    email: StrictStr
    name: StrictStr | None = None


class OrganizationCreate(Body):
    name: StrictStr
    timezone: StrictStr = "UTC"
    plan: Literal["usage_based", "usage_based_legacy", "seat_based"] = "usage_based"
    channel: Literal["self_serve", "sales_assisted"] = "self_serve"
    term_start: date | None = None
    billing_anchor_day: StrictInt = 1
    seat_prices: dict[str, MoneyStr] = Field(default_factory=dict)
    primary_owner: PrimaryOwner


class MemberCreate(Body):
    email: StrictStr
    name: StrictStr | None = None
    role: Literal["owner", "member"] = "member"


class CreditPurchase(Body):
    amount: MoneyStr = Field(examples=["500.00"])
    idempotency_key: StrictStr


class CapSet(Body):
    limit: MoneyStr | None = Field(description="USD per billing period, or null for unlimited", examples=["250.00"])


class AmountEstimate(Body):
    amount: MoneyStr


class TokenEstimate(Body):
    input_tokens: Tokens
    max_output_tokens: Tokens


class HoldCreate(Body):
    idempotency_key: StrictStr
    member_id: StrictStr
    model: StrictStr = Field(examples=["claude-sonnet-4-5"])
    surface: Literal["web", "desktop", "mobile", "claude_code", "api"] = "api"
    estimate: AmountEstimate | TokenEstimate
    allow_partial: StrictBool = False


class TokenUsage(Body):
    input_tokens: Tokens
    output_tokens: Tokens
    cache_write_5m_tokens: Tokens = 0
    cache_write_1h_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0


class HoldSettle(Body):
    usage: TokenUsage
    service_tier: Literal["standard", "batch"] = "standard"


class UsageEventIn(Body):
    idempotency_key: StrictStr
    member_id: StrictStr
    model: StrictStr
    surface: Literal["web", "desktop", "mobile", "claude_code", "api"]
    occurred_at: AwareDatetime
    service_tier: Literal["standard", "batch"] = "standard"
    input_tokens: Tokens
    output_tokens: Tokens
    cache_write_5m_tokens: Tokens = 0
    cache_write_1h_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0


class UsageBatch(Body):
    events: list[UsageEventIn]


class PriceBookVersion(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: StrictStr
    effective_from: AwareDatetime
    models: dict[str, dict[str, object]]
    aliases: dict[str, StrictStr] = Field(default_factory=dict)
    note: StrictStr = ""
