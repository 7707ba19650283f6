"""When to try a failed delivery again: exponential backoff with a ceiling, then give up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1-based) that failed is retried after `base_delay_s * factor**(n-1)` seconds, at most
    `max_delay_s`; after `max_attempts` failures the delivery is failed for good."""

    base_delay_s: float = 30.0
    factor: int = 2
    max_delay_s: float = 6 * 3600.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.factor < 1 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("a retry policy needs max_attempts >= 1, factor >= 1 and delays >= 0")

    def delay_after(self, failed_attempts: int) -> timedelta | None:
        """The wait before the next attempt, or None when no attempt is left."""
        if failed_attempts >= self.max_attempts:
            return None
        exponent = max(failed_attempts - 1, 0)
        return timedelta(seconds=min(self.base_delay_s * self.factor**exponent, self.max_delay_s))
