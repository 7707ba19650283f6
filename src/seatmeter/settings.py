"""Settings from the environment. Every name starts with SEATMETER_."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["Settings"]


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SEATMETER_{name}", default)


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", "sqlite:///./seatmeter.db"))
    operator_key: str = field(default_factory=lambda: _env("OPERATOR_KEY", ""))
    hold_timeout_s: int = field(default_factory=lambda: int(_env("HOLD_TIMEOUT_S", "600")))
    db_pool_size: int = field(default_factory=lambda: int(_env("DB_POOL_SIZE", "20")))
    key_cache_s: float = field(default_factory=lambda: float(_env("KEY_CACHE_S", "5")))
    session_secret: str = field(default_factory=lambda: _env("SESSION_SECRET", ""))
    anthropic_upstream: str = field(default_factory=lambda: _env("ANTHROPIC_UPSTREAM", "https://api.anthropic.com"))
    anthropic_api_key: str = field(default_factory=lambda: _env("ANTHROPIC_API_KEY", ""))
    # The largest request body accepted, in bytes (entrypoints/api/body_limit.py); larger ones get a 413.
    max_body_bytes: int = field(default_factory=lambda: int(_env("MAX_BODY_BYTES", str(32 * 1024 * 1024))))
    # Webhooks to non-public addresses (loopback, private networks): refused unless 1 (adapters/webhooks.py).
    webhook_allow_private: bool = field(default_factory=lambda: _env("WEBHOOK_ALLOW_PRIVATE", "0") == "1")
