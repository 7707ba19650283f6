"""The connection to the vendor's Messages API: one pooled async httpx client, the vendor key, the right headers.

The member's key never leaves seatmeter: the upstream sees the vendor key from settings. The client's
`anthropic-version` and `anthropic-beta` headers pass through, so features the SDK asks for keep working.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["DEFAULT_UPSTREAM", "Upstream"]

DEFAULT_UPSTREAM = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
_PASSED_REQUEST_HEADERS = ("anthropic-version", "anthropic-beta", "accept")


class Upstream:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 200,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        # Long generations stream for minutes: only connecting and waiting for a free connection are short.
        timeout = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=10.0)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.client = httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)

    @classmethod
    def from_settings(cls, settings: Any) -> Upstream:
        return cls(settings.anthropic_upstream or DEFAULT_UPSTREAM, settings.anthropic_api_key)

    def headers_for(self, incoming: Mapping[str, str]) -> dict[str, str]:
        headers = {name: incoming[name] for name in _PASSED_REQUEST_HEADERS if name in incoming}
        headers.setdefault("anthropic-version", DEFAULT_VERSION)
        headers["content-type"] = "application/json"
        headers["x-api-key"] = self.api_key
        return headers

    async def send(
        self, body: Mapping[str, Any], incoming: Mapping[str, str], query: str = "", *, stream: bool
    ) -> httpx.Response:
        """POST the body to /v1/messages. With `stream`, the response body is left unread for the caller."""
        url = f"{self.base_url}/v1/messages" + (f"?{query}" if query else "")
        request = self.client.build_request(
            "POST", url, content=json.dumps(body).encode(), headers=self.headers_for(incoming)
        )
        return await self.client.send(request, stream=True) if stream else await self.client.send(request)

    async def call(
        self,
        method: str,
        path: str,
        incoming: Mapping[str, str],
        query: str = "",
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Any other endpoint (`path` from /v1), read whole."""
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        content = json.dumps(body).encode() if body is not None else None
        return await self.client.request(method, url, content=content, headers=self.headers_for(incoming))

    async def close(self) -> None:
        await self.client.aclose()
