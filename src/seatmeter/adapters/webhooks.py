"""Signed webhooks, as the Standard Webhooks specification draws them.

Every request carries three headers: `webhook-id` (the message id, the same on every retry, so receivers
can drop duplicates), `webhook-timestamp` (seconds since the epoch) and `webhook-signature`: `v1,` and the
base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"` under the secret. Secrets are written `whsec_` and
base64 of at least 24 random bytes; the key is the decoded bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from seatmeter.domain.errors import InvalidRequest

__all__ = [
    "SECRET_PREFIX",
    "TOLERANCE_S",
    "WebhookResult",
    "WebhookSender",
    "WebhookVerificationError",
    "new_secret",
    "sign",
    "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300  # receivers refuse messages older or newer than five minutes: replay protection


class WebhookVerificationError(ValueError):
    """A message whose signature or timestamp does not check out."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise InvalidRequest("a webhook secret is 'whsec_' followed by base64") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256>`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: datetime | None = None) -> None:
    """Check a received message as a receiver would. Raises WebhookVerificationError when it does not check out.

    `headers` keys are matched case-insensitively. The signature header may list several space-separated
    signatures (during a secret rotation); one match is enough.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        offered = lowered["webhook-signature"].split(" ")
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook headers") from None
    current = int((now or datetime.now(UTC)).timestamp())
    if abs(current - timestamp) > TOLERANCE_S:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance window")
    expected = sign(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise WebhookVerificationError("no signature matches")


@dataclass(frozen=True, slots=True)
class WebhookResult:
    ok: bool
    status_code: int | None
    error: str


class WebhookSender:
    """Posts signed messages over httpx. A 2xx answer is delivery; anything else, or no answer, is a failure."""

    def __init__(self, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport, follow_redirects=False)

    def send(
        self, url: str, secret: str, message_id: str, body: bytes, *, timestamp: int | None = None
    ) -> WebhookResult:
        """POST one message. The timestamp is the wall-clock time of sending unless given: receivers check it
        against their own clock to refuse replays."""
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = signature_headers(secret, message_id, stamp, body)
        headers["user-agent"] = "seatmeter-webhooks/1"
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return WebhookResult(False, None, f"{type(error).__name__}: {error}"[:500])
        if 200 <= response.status_code < 300:
            return WebhookResult(True, response.status_code, "")
        return WebhookResult(False, response.status_code, f"receiver answered {response.status_code}")

    def close(self) -> None:
        self._client.close()
