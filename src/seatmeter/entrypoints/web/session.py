"""Dashboard sessions: a signed cookie naming the API key (by its hash, never the key) that signed in.

The cookie is `base64url(json) "." base64url(HMAC-SHA256)`, HttpOnly and SameSite=Lax. The key is looked
up again on every request, so a deleted key or a changed role takes effect at once. Forms carry a CSRF
token derived from the cookie's signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

__all__ = ["COOKIE", "SESSION_TTL_S", "Session", "csrf_token", "decode", "encode", "session_secret"]

COOKIE = "seatmeter_session"
SESSION_TTL_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    key_hash: str
    expires_at: int  # seconds since the epoch


def session_secret(configured: str, operator_key: str) -> bytes:
    """SEATMETER_SESSION_SECRET; else derived from the operator key (stable across workers and restarts);
    else random for this process (sessions then end when it restarts)."""
    if configured:
        return configured.encode()
    if operator_key:
        return hmac.new(operator_key.encode(), b"seatmeter dashboard sessions", hashlib.sha256).digest()
    return _PROCESS_SECRET


_PROCESS_SECRET = secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def encode(secret: bytes, session: Session) -> str:
    body = _b64(json.dumps({"k": session.key_hash, "exp": session.expires_at}, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body)}"


def decode(secret: bytes, cookie: str | None, now_s: int) -> Session | None:
    """The session in a cookie, or None when it is missing, tampered with or expired."""
    if not cookie or "." not in cookie:
        return None
    body, _, mac = cookie.partition(".")
    if not hmac.compare_digest(mac, _mac(secret, body)):
        return None
    try:
        data = json.loads(_unb64(body))
        session = Session(str(data["k"]), int(data["exp"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires_at > now_s else None


def csrf_token(secret: bytes, cookie: str) -> str:
    return _mac(secret, "csrf:" + cookie)
