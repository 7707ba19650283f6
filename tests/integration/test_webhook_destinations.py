"""Webhooks go to public addresses only, unless the operator allows private ones (adapters/webhooks.py): an owner's
URL must not reach the services of the network seatmeter runs in."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from seatmeter.adapters.clock import FixedClock
from seatmeter.adapters.webhooks import WebhookSender, new_secret
from seatmeter.entrypoints.api.app import create_app
from seatmeter.services.notifications import deliver_once
from tests.conftest import Api, create_org, make_app
from tests.integration.test_notifications import log, spend
from tests.support.receivers import webhook_receiver

NOW_S = int(datetime.now(UTC).timestamp())


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.7", "192.168.1.1", "169.254.169.254", "100.64.0.1", "::1", "fe80::1%lo",
                "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1", "fec0::1",
                # IPv6 forms that carry an IPv4 address reach that address: NAT64 (10.0.0.1), a network's own NAT64
                # prefix, 6to4 (169.254.169.254), IPv4-compatible and SIIT-translated (127.0.0.1)
                "64:ff9b::a00:1", "64:ff9b:1::1", "2002:a9fe:a9fe::1", "::127.0.0.1", "::ffff:0:7f00:1"]
)  # fmt: skip
def test_a_host_that_resolves_to_a_non_public_address_is_refused_unsent(address: str) -> None:
    sent: list[httpx.Request] = []
    sender = WebhookSender(
        transport=httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(204)),
        resolve=lambda host, port: [address],
    )
    result = sender.send("https://hooks.example.com/seatmeter", new_secret(), "msg_1", b"{}", timestamp=NOW_S)
    sender.close()
    assert not result.ok and result.status_code is None
    assert "not a public address" in result.error and "SEATMETER_WEBHOOK_ALLOW_PRIVATE=1" in result.error
    assert sent == []


def test_one_non_public_address_among_public_ones_is_enough_to_refuse() -> None:
    sender = WebhookSender(resolve=lambda host, port: ["93.184.215.14", "10.1.2.3"])
    result = sender.send("http://hooks.example.com/x", new_secret(), "msg_1", b"{}", timestamp=NOW_S)
    sender.close()
    assert not result.ok and "10.1.2.3" in result.error


def test_the_request_goes_to_the_address_checked_with_the_name_in_host_and_sni() -> None:
    """A DNS answer that changes between the check and the connection cannot move the request: it is made to the
    address that was checked."""
    sent: list[httpx.Request] = []
    looked_up: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        looked_up.append((host, port))
        return ["93.184.215.14"]

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    sender = WebhookSender(transport=httpx.MockTransport(answer), resolve=resolve)
    result = sender.send("https://user:pw@hooks.example.com:8443/in?x=1", new_secret(), "msg_1", b"{}",
                         timestamp=NOW_S)  # fmt: skip
    sender.close()
    assert result.ok, result.error
    assert looked_up == [("hooks.example.com", 8443)]
    (request,) = sent
    assert (request.url.host, request.url.port, request.url.raw_path) == ("93.184.215.14", 8443, b"/in?x=1")
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["authorization"].startswith("Basic ")  # the URL's credentials still go along


def test_a_name_that_does_not_resolve_is_a_failed_send_not_an_error() -> None:
    sender = WebhookSender()
    result = sender.send("http://no-such-host.invalid/x", new_secret(), "msg_1", b"{}", timestamp=NOW_S)
    sender.close()
    assert not result.ok and result.status_code is None and result.error


@pytest.mark.parametrize("allow", [False, True])
def test_the_worker_follows_the_operators_setting(database_url: str, clock: FixedClock, allow: bool) -> None:
    """`deliver_once` (what `seatmeter worker` runs) refuses a loopback receiver by default, and records why in the
    delivery's log; with SEATMETER_WEBHOOK_ALLOW_PRIVATE=1 the same delivery arrives."""
    app = make_app(database_url, clock, webhook_allow_private=allow)
    try:
        with TestClient(create_app(app)) as client, webhook_receiver() as receiver:
            api = Api(client)
            org = create_org(api, channel="sales_assisted")
            saved: Any = api.put(f"/v1/organizations/{org.id}/notification-settings",
                                 {"thresholds_percent": [50], "webhook_url": receiver.url}, key=org.owner_key,
                                 expect=200)  # fmt: skip
            receiver.secret = saved["webhook_secret"]
            api.put(f"/v1/organizations/{org.id}/caps/organization", {"limit": "2.00"}, key=org.owner_key, expect=200)
            spend(api, org, org.owner_id, 1)
            report = deliver_once(app)
            delivery = log(api, org)[0]["deliveries"][0]
    finally:
        app.engine.dispose()
    if allow:
        assert report.delivered == 1 and len(receiver.received) == 1 and receiver.received[0]["verified"]
        assert delivery["status"] == "delivered"
    else:
        assert report.delivered == 0 and receiver.received == []
        assert delivery["status"] == "pending" and "not a public address" in delivery["log"][0]["error"]


def test_an_answer_that_is_not_an_address_is_a_failed_send() -> None:
    sender = WebhookSender(resolve=lambda host, port: ["not-an-ip"])
    result = sender.send("http://hooks.example.com/x", new_secret(), "msg_1", b"{}", timestamp=NOW_S)
    sender.close()
    assert not result.ok and "ValueError" in result.error


def test_the_addresses_are_tried_in_turn_until_one_connects() -> None:
    """As a connection by name would: the first address refuses (nothing listens on 127.0.0.2), the second takes
    the message. The address rule is lifted here (`public`) so that the receiver can be on loopback."""
    secret = new_secret()
    with webhook_receiver(secret) as receiver:
        port = httpx.URL(receiver.url).port
        sender = WebhookSender(timeout_s=5, resolve=lambda host, p: ["127.0.0.2", "127.0.0.1"], public=lambda ip: True)
        result = sender.send(f"http://hooks.test:{port}/hooks/seatmeter", secret, "msg_1", b"{}", timestamp=NOW_S)
        sender.close()
    assert result.ok, result.error
    assert len(receiver.received) == 1 and receiver.received[0]["verified"]
    assert receiver.received[0]["headers"]["host"] == f"hooks.test:{port}"


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext, list[str], Path]]:
    """An HTTPS server on loopback whose certificate names a.test only; the client context that trusts it; the
    Host headers it received; the certificate's file."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=a.test", "-addext", "subjectAltName=DNS:a.test"],
                   check=True, capture_output=True)  # fmt: skip
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a connection could be reused

        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            self.rfile.read(int(self.headers.get("content-length", 0)))
            hosts.append(self.headers.get("host", ""))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    server.socket = server_side.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], ssl.create_default_context(cafile=str(cert)), hosts, cert
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_verified_for_one_name_never_carries_another(
    tls_receiver: tuple[int, ssl.SSLContext, list[str], Path],
) -> None:
    """a.test and b.test resolve to the same address; the certificate there names a.test only. The message to
    a.test is delivered; the one to b.test must fail its certificate check, not ride a.test's open connection."""
    port, trust, hosts, _ = tls_receiver
    sender = WebhookSender(timeout_s=5, resolve=lambda host, p: ["127.0.0.1"], public=lambda ip: True, verify=trust)
    to_a = sender.send(f"https://a.test:{port}/in", new_secret(), "msg_1", b"{}", timestamp=NOW_S)
    to_b = sender.send(f"https://b.test:{port}/in", new_secret(), "msg_2", b"{}", timestamp=NOW_S)
    again_a = sender.send(f"https://a.test:{port}/in", new_secret(), "msg_3", b"{}", timestamp=NOW_S)
    sender.close()
    assert to_a.ok and again_a.ok, (to_a, again_a)
    assert not to_b.ok and "CERTIFICATE_VERIFY_FAILED" in to_b.error, to_b
    assert hosts == [f"a.test:{port}", f"a.test:{port}"]


def test_the_trust_store_named_by_ssl_cert_file_is_honoured(
    tls_receiver: tuple[int, ssl.SSLContext, list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As httpx does for any client: an operator's own CA, named by SSL_CERT_FILE, verifies the receiver."""
    port, _, hosts, cert = tls_receiver
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    sender = WebhookSender(timeout_s=5, resolve=lambda host, p: ["127.0.0.1"], public=lambda ip: True)
    result = sender.send(f"https://a.test:{port}/in", new_secret(), "msg_1", b"{}", timestamp=NOW_S)
    sender.close()
    assert result.ok, result.error
    assert hosts == [f"a.test:{port}"]


def test_many_unreachable_addresses_share_one_connect_timeout() -> None:
    """A name that resolves to twenty addresses that never answer: the attempts stop once one timeout has passed,
    not after twenty of them."""
    tried: list[str] = []

    def never_connects(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        time.sleep(0.2)
        raise httpx.ConnectTimeout("no answer", request=request)

    addresses = [f"93.184.215.{i}" for i in range(1, 21)]
    sender = WebhookSender(timeout_s=0.5, transport=httpx.MockTransport(never_connects),
                           resolve=lambda host, p: addresses)  # fmt: skip
    result = sender.send("http://hooks.example.com/x", new_secret(), "msg_1", b"{}", timestamp=NOW_S)
    sender.close()
    assert not result.ok and "ConnectTimeout" in result.error
    assert 1 <= len(tried) <= 3 and tried == addresses[: len(tried)]
