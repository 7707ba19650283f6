"""Email through a real SMTP server, with the standard library's client.

The server comes from settings: `SEATMETER_SMTP_HOST` (no host: email is not configured and deliveries by
email fail with that reason), `SEATMETER_SMTP_PORT` (default 25) and `SEATMETER_SMTP_FROM`.
"""

from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

__all__ = ["EmailResult", "Mailer"]


@dataclass(frozen=True, slots=True)
class EmailResult:
    ok: bool
    error: str


class Mailer:
    def __init__(
        self, host: str | None, port: int = 25, sender: str = "seatmeter@localhost", *, timeout_s: float = 10.0
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout_s = timeout_s

    @classmethod
    def from_env(cls) -> Mailer:
        port = os.environ.get("SEATMETER_SMTP_PORT", "25")
        return cls(
            os.environ.get("SEATMETER_SMTP_HOST") or None,
            int(port) if port.isdigit() else 25,
            os.environ.get("SEATMETER_SMTP_FROM", "seatmeter@localhost"),
        )

    def send(self, to: str, subject: str, text: str, *, message_id: str | None = None) -> EmailResult:
        if not self.host:
            return EmailResult(False, "email is not configured: set SEATMETER_SMTP_HOST")
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        if message_id:
            message["X-Seatmeter-Notification"] = message_id
        message.set_content(text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as client:
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            return EmailResult(False, f"{type(error).__name__}: {error}"[:500])
        return EmailResult(True, "")
