"""Webhook signatures (protocol/webhooks.py) and the example receiver agree with the spec."""

from __future__ import annotations

import time

from protocol.webhooks import new_secret, sign, signature_header, verify
from server.services.webhooks import WebhookConfig
from tests.integration.webhook_endpoint import receiver_module

#: The Standard Webhooks specification's own example.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_is_the_spec_example() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


def headers(keys: list[str], body: bytes, ts: int) -> dict[str, str]:
    return {
        "webhook-id": "wh_1_inc_2_3",
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(keys, "wh_1_inc_2_3", ts, body),
    }


def test_each_secret_of_a_rotation_verifies_alone() -> None:
    old, new, stranger = new_secret(), new_secret(), new_secret()
    body, now = b'{"seq":1}', int(time.time())
    sent = headers([new, old], body, now)
    assert len(sent["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert verify(secret, sent, body, now)
        assert receiver_module.signature_ok(secret, sent, body, now)
    assert not verify(stranger, sent, body, now)
    assert not receiver_module.signature_ok(stranger, sent, body, now)


def test_a_tampered_body_or_a_stale_timestamp_is_refused() -> None:
    secret, now = new_secret(), int(time.time())
    sent = headers([secret], b'{"seq":1}', now)
    assert not verify(secret, sent, b'{"seq":2}', now)
    assert not receiver_module.signature_ok(secret, sent, b'{"seq":2}', now)
    assert not verify(secret, sent, b'{"seq":1}', now + 301)
    assert not receiver_module.signature_ok(secret, sent, b'{"seq":1}', now + 301)
    assert not verify(secret, {**sent, "webhook-id": ""}, b'{"seq":1}', now)


def test_the_back_off_doubles_to_its_cap() -> None:
    config = WebhookConfig(retry_base_s=1.0, retry_cap_s=300.0)
    assert [config.backoff_s(n) for n in (1, 2, 3, 9, 10, 1000)] == [1, 2, 4, 256, 300, 300]
