"""Signed webhooks, as the Standard Webhooks specification draws them.

Every request carries three headers: `webhook-id` (the message id, the same on every retry, so receivers
can drop duplicates), `webhook-timestamp` (seconds since the epoch) and `webhook-signature`: `v1,` and the
base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"` under the secret. Secrets are written `whsec_` and
base64 of at least 24 random bytes; the key is the decoded bytes.

An organization's owner chooses the URL, so the sender would otherwise be a way into the network it runs in: a
message goes only to public addresses (`public_address`: not loopback, private, link-local, carrier-grade NAT,
multicast or reserved, nor an IPv6 form carrying such an IPv4 address), every address the host resolves to is
checked, and the request is made to the addresses checked, with the URL's host in `Host` and in TLS's SNI and
certificate check, so a DNS answer that changes in between cannot move it (WebhookSender says how).
`SEATMETER_WEBHOOK_ALLOW_PRIVATE=1` lifts the rule, for receivers on a private network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from seatmeter.domain.errors import InvalidRequest

__all__ = [
    "SECRET_PREFIX",
    "TOLERANCE_S",
    "WebhookResult",
    "WebhookSender",
    "WebhookVerificationError",
    "new_secret",
    "public_address",
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


Resolver = Callable[[str, int], list[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address translated by a NAT64 gateway (RFC 6052)
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # a network's own translation prefix (RFC 8215): unknown
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d, deprecated, still an IPv4 address
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT's translated form (RFC 2765)


def public_address(ip: Address) -> bool:
    """Whether a webhook may go to `ip`: a global unicast address, and, for IPv6, one that does not carry an
    IPv4 address that is not (NAT64, 6to4, Teredo, mapped, compatible or translated forms reach the IPv4 address
    inside)."""
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    if ip.is_site_local or ip in _NAT64_LOCAL:
        return False
    inside = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED:
        inside.append(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
    return all(public_address(v4) for v4 in inside if v4 is not None)


def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, as text (an address given as the host is its own answer)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class WebhookSender:
    """Posts signed messages over httpx. A 2xx answer is delivery; anything else, or no answer, is a failure.

    `allow_private` lets messages go to non-public addresses (see the module's docstring). Otherwise each host
    name has a client of its own: its connections are made to the addresses checked, verified for that name,
    and reused for that name only (httpx pools connections by address, and one verified for another name on the
    same address must not carry this one). Those clients connect directly, not through a proxy named in
    HTTP(S)_PROXY, whose tunnel would verify the certificate against the address; they share one TLS context,
    which honours SSL_CERT_FILE and SSL_CERT_DIR as httpx does. The addresses of a name are tried in turn within
    one connect timeout in all. `resolve` (the name lookup), `public` (the address rule) and `verify` (TLS trust)
    are given by tests."""

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        allow_private: bool = False,
        resolve: Resolver = _resolve,
        public: Callable[[Address], bool] = public_address,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        tls = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._timeout_s = timeout_s
        self._options: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout_s),
            "transport": transport,
            "follow_redirects": False,
            "verify": tls,
        }
        self._client = httpx.Client(**self._options)
        self._by_name: dict[str, httpx.Client] = {}
        self._allow_private = allow_private
        self._resolve = resolve
        self._public = public

    def send(
        self, url: str, secret: str, message_id: str, body: bytes, *, timestamp: int | None = None
    ) -> WebhookResult:
        """POST one message. The timestamp is the wall-clock time of sending unless given: receivers check it
        against their own clock to refuse replays."""
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = signature_headers(secret, message_id, stamp, body)
        headers["user-agent"] = "seatmeter-webhooks/1"
        try:
            if self._allow_private:
                response = self._client.post(url, content=body, headers=headers)
            else:
                answer = self._post_pinned(httpx.URL(url), body, headers)
                if isinstance(answer, str):
                    return WebhookResult(False, None, answer)
                response = answer
        except (httpx.HTTPError, httpx.InvalidURL, OSError, UnicodeError, ValueError) as error:
            return WebhookResult(False, None, f"{type(error).__name__}: {error}"[:500])
        if 200 <= response.status_code < 300:
            return WebhookResult(True, response.status_code, "")
        return WebhookResult(False, response.status_code, f"receiver answered {response.status_code}")

    def _post_pinned(self, url: httpx.URL, body: bytes, headers: dict[str, str]) -> httpx.Response | str:
        """POST to the addresses the host resolves to, in turn until one connects, each checked first, with the
        name in `Host` and in TLS's SNI and certificate check; or why not (a refusal)."""
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as DNS and SNI need it
        addresses = list(dict.fromkeys(self._resolve(host, url.port or (443 if url.scheme == "https" else 80))))
        if not addresses:
            return f"refused: {host} resolves to no address"
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) is not public either
            if not self._public(ip):
                return (
                    f"refused: {host} resolves to {ip}, which is not a public address; webhooks go to public "
                    "addresses only unless the operator sets SEATMETER_WEBHOOK_ALLOW_PRIVATE=1"
                )
        client = self._by_name.get(host)
        if client is None:
            client = self._by_name[host] = httpx.Client(**self._options, trust_env=False)
        headers = {**headers, "host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        deadline = time.monotonic() + self._timeout_s

        def post(address: str) -> httpx.Response:
            # What is left of one connect timeout for all of the name's addresses: a name that resolves to many
            # unreachable ones cannot hold the delivery loop for a timeout each.
            timeout = httpx.Timeout(self._timeout_s, connect=max(deadline - time.monotonic(), 0.001))
            return client.post(url.copy_with(host=address), content=body, headers=headers, extensions=extensions,
                               timeout=timeout)  # fmt: skip

        for address in addresses[:-1]:
            try:
                return post(address)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if time.monotonic() >= deadline:
                    raise
        return post(addresses[-1])

    def close(self) -> None:
        self._client.close()
        for client in self._by_name.values():
            client.close()
        self._by_name.clear()
