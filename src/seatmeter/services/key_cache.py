"""A short in-process memory of authenticated keys, so that a request does not read `api_keys` every time.

The bound: an entry is trusted for `ttl_s` seconds counted from the moment *before* the database read that
produced it. A key whose row is deleted (revoked), or moved to another member or role, therefore stops working
(or changes role) at most `ttl_s` seconds after that change commits, in every worker process, whatever the
timing of the request that filled the entry. An entry is keyed by the sha256 of the whole key and holds exactly
the principal the database returned for that hash, so it can never answer for another key, organization or role.
Unknown keys are not remembered: each one is read from the database every time. `ttl_s = 0` turns it off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from seatmeter.domain.auth import Principal

__all__ = ["DEFAULT_TTL_S", "KeyCache"]

DEFAULT_TTL_S = 5.0
MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(
        self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_entries = max_entries
        # digest -> (principal, trusted until); plain dict operations, each atomic under the GIL, because the
        # event loop reads while threadpool workers write.
        self._entries: dict[str, tuple[Principal, float]] = {}

    def read_started(self) -> float:
        """Call before reading the key from the database; hand the result to `put`."""
        return self.clock()

    def get(self, digest: str) -> Principal | None:
        if self.ttl_s <= 0:
            return None
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, until = entry
        if self.clock() >= until:
            self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: str, principal: Principal, read_started: float) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare (more live keys than entries): start over rather than track recency
        self._entries[digest] = (principal, read_started + self.ttl_s)

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def __len__(self) -> int:
        return len(self._entries)
