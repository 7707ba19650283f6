from datetime import UTC, datetime, timedelta

import pytest

from seatmeter.adapters.email import Mailer
from seatmeter.adapters.webhooks import WebhookSender, WebhookVerificationError, new_secret, sign, verify
from tests.support.receivers import smtp_server, webhook_receiver


def test_a_signature_matches_the_standard_webhooks_reference_example():
    # The example of the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verify_refuses_a_changed_body_a_wrong_secret_and_an_old_timestamp():
    secret = new_secret()
    now = datetime.now(UTC)
    ts = int(now.timestamp())
    signature = sign(secret, "msg_1", ts, b"{}")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(ts), "webhook-signature": signature}
    verify(secret, headers, b"{}", now=now)
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, b'{"x":1}', now=now)
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), headers, b"{}", now=now)
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, b"{}", now=now + timedelta(minutes=6))


def test_a_loopback_receiver_verifies_the_signature_of_a_sent_webhook():
    secret = new_secret()
    sender = WebhookSender(timeout_s=5, allow_private=True)
    with webhook_receiver(secret) as receiver:
        result = sender.send(
            receiver.url,
            secret,
            "msg_abc",
            b'{"type":"threshold_crossed"}',
            timestamp=int(datetime.now(UTC).timestamp()),
        )
    sender.close()
    assert result.ok and result.status_code == 204
    assert len(receiver.received) == 1 and receiver.received[0]["verified"]
    assert receiver.received[0]["headers"]["webhook-id"] == "msg_abc"


def test_a_receiver_that_answers_500_or_is_not_listening_is_a_failed_send():
    secret = new_secret()
    sender = WebhookSender(timeout_s=2, allow_private=True)
    with webhook_receiver(secret, fail_with=500) as receiver:
        failed = sender.send(receiver.url, secret, "msg_1", b"{}", timestamp=int(datetime.now(UTC).timestamp()))
        url = receiver.url
    unreachable = sender.send(url, secret, "msg_1", b"{}", timestamp=int(datetime.now(UTC).timestamp()))
    sender.close()
    assert not failed.ok and failed.status_code == 500
    assert not unreachable.ok and unreachable.status_code is None and unreachable.error


def test_email_reaches_a_real_smtp_server_on_loopback():
    with smtp_server() as inbox:
        result = Mailer(inbox.host, inbox.port, "alerts@seatmeter.test").send(
            "owner@example.com", "Spend reached 90% of the organization cap", "Details...", message_id="ntf_1"
        )
    assert result.ok, result.error
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["To"] == "owner@example.com" and message["From"] == "alerts@seatmeter.test"
    assert "90%" in message["Subject"]


def test_email_without_a_configured_server_fails_with_the_reason():
    result = Mailer(None).send("owner@example.com", "s", "t")
    assert not result.ok and "SEATMETER_SMTP_HOST" in result.error
