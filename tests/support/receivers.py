"""Real servers on loopback that notifications are delivered to in tests: an HTTP webhook receiver that
verifies Standard Webhooks signatures, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from seatmeter.adapters.webhooks import WebhookVerificationError, verify


@dataclass
class WebhookReceiver:
    secret: str | None = None
    fail_with: int | None = None  # answer every request with this status instead of 204
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@contextmanager
def webhook_receiver(secret: str | None = None, *, fail_with: int | None = None) -> Iterator[WebhookReceiver]:
    state = WebhookReceiver(secret=secret, fail_with=fail_with)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = dict(self.headers.items())
            verified = False
            if state.secret is not None:
                try:
                    verify(state.secret, headers, body)
                    verified = True
                except WebhookVerificationError:
                    verified = False
            state.received.append({"headers": headers, "body": body, "verified": verified})
            status = state.fail_with or (204 if verified or state.secret is None else 401)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/seatmeter"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class SmtpInbox:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Any] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[SmtpInbox]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    inbox = SmtpInbox()

    class Collect(Message):
        def handle_message(self, message: Any) -> None:
            inbox.messages.append(message)

    inbox.port = _free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
