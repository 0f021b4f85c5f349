"""Push payloads (server/domain/push.py), the feed's alarm entries they come from,
and the checks on a browser's subscription (server/services/push_subscribe.py)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocol.errors import ProtocolError
from server.domain import push
from server.domain.audience import PLACEHOLDER, WHOLE, Reader
from server.domain.events import StoredEvent
from server.domain.feed import index_entries
from server.services.push_subscribe import allowed, parse


def test_a_payload_is_short_and_says_why() -> None:
    entry = {
        "kind": "needs_you",
        "incident": "inc_1",
        "seq": 7,
        "reasons": ["urgent", "mention"],
        "text": "word " * 100,
        "author": {"name": "Dana", "user": "u_d", "org": "police"},
    }
    note = push.payload(entry)
    assert note["title"] == "Urgent message"
    assert note["tag"] == "inc_1:7"
    assert note["url"] == "/#/incident/inc_1"
    assert note["body"].startswith("Dana: word")
    assert len(note["body"]) <= push.BODY_CHARS + len("Dana: ")
    assert set(note) == {"v", "incident", "seq", "reason", "title", "body", "tag", "url"}
    assert push.urgency(entry) == "high"
    assert push.urgency({**entry, "reasons": ["task"]}) == "normal"
    assert len(push.topic(entry)) == 32
    assert push.topic(entry) == push.topic(dict(entry))
    asked = push.payload(
        {
            "incident": "i",
            "seq": 4,
            "reasons": ["capacity"],
            "request": 4,
            "items": {"beds": 3},
            "author": {"name": "Dana", "user": "u_d", "org": "police"},
        }
    )
    assert (asked["title"], asked["body"]) == (
        "Capacity request",
        "Dana: asks your organisation for capacity",
    )
    assert push.urgency({"reasons": ["capacity"]}) == "normal"
    missed = push.payload({"incident": "i", "seq": 3, "reasons": ["checkin"], "user": "u_w"})
    assert missed["title"] == "Missed check-in"
    assert "u_w" not in str(missed)


def _key() -> str:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()


def test_only_subscriptions_at_allowed_push_services_with_real_keys_are_taken() -> None:
    services = ("fcm.googleapis.com", "http://127.0.0.1:9000")
    auth = base64.urlsafe_b64encode(b"0" * 16).decode().rstrip("=")
    good = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/x",
        "keys": {"p256dh": _key(), "auth": auth},
    }
    assert parse(good, services)[0] == good["endpoint"]
    assert allowed("http://127.0.0.1:9000/push/a", services)
    assert allowed("https://eu.fcm.googleapis.com/x", services)
    for endpoint in (
        "http://fcm.googleapis.com/x",
        "https://evilfcm.googleapis.com.attacker.example/x",
        "https://127.0.0.1:9000/x",
        "http://127.0.0.1:9001/push/a",
    ):
        assert not allowed(endpoint, services), endpoint
    bad: object
    for bad in (
        {**good, "endpoint": "https://attacker.example/x"},
        {**good, "keys": {"p256dh": "AAAA", "auth": auth}},
        {**good, "keys": {"p256dh": _key(), "auth": "AAAA"}},
        {"endpoint": good["endpoint"]},
        [],
    ):
        with pytest.raises(ProtocolError):
            parse(bad, services)


def _missed(notify: dict[str, list[str]]) -> StoredEvent:
    body = {
        "checkin": 4,
        "user": "u_w",
        "due": 1,
        "position": {"lat": 1.0, "lon": 2.0},
        "notify": notify,
    }
    return StoredEvent(
        "inc", 9, "ep", "checkin.missed", 5, "system:deadlines", "ngo", "Deadline", "dl-x",
        None, body, "d", "h",
    )  # fmt: skip


def test_a_missed_check_in_needs_those_it_names_and_quotes_no_position() -> None:
    ev = _missed({"users": ["u_duty"], "orgs": ["police"]})
    for reader in (Reader(org="ngo", user="u_duty"), Reader(org="police", user="u_x")):
        [entry] = index_entries(ev, WHOLE, reader, {}, None)
        assert entry["reasons"] == ["checkin"]
        assert entry["user"] == "u_w"
        assert "position" not in entry
    assert index_entries(ev, WHOLE, Reader(org="ngo", user="u_other"), {}, None) == []
    assert index_entries(ev, PLACEHOLDER, Reader(org="police", user="u_x"), {}, None) == []
