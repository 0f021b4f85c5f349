"""The admission rules on their own, with a fake clock (server/transport/admission.py)."""

from __future__ import annotations

import logging

import pytest

from protocol.errors import ErrorCode, ProtocolError
from server.transport.admission import Admission, AdmissionLimits, Refusal, Slot


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(clock: Clock, **limits: object) -> Admission:
    base = {"max_unauthenticated": 0, "max_unauthenticated_per_address": 0, "rate_per_s": 0.0}
    return Admission(
        AdmissionLimits(**{**base, **limits}),  # type: ignore[arg-type]
        lambda request: "unused",
        clock=clock,
    )


def test_the_rate_is_a_token_bucket_per_address() -> None:
    clock = Clock()
    adm = admission(clock, rate_per_s=2.0, burst=3)
    assert all(isinstance(adm.admit("203.0.113.1"), Slot) for _ in range(3))
    refused = adm.admit("203.0.113.1")
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.retry_after) == (429, 1)
    assert isinstance(adm.admit("203.0.113.2"), Slot)  # another address has its own
    clock.now += 0.5  # one token back at 2 a second
    assert isinstance(adm.admit("203.0.113.1"), Slot)
    assert isinstance(adm.admit("203.0.113.1"), Refusal)


def test_caps_count_held_slots_and_a_release_is_idempotent() -> None:
    adm = admission(Clock(), max_unauthenticated=3, max_unauthenticated_per_address=2)
    a1, a2 = adm.admit("198.51.100.1"), adm.admit("198.51.100.1")
    assert isinstance(a1, Slot)
    assert isinstance(a2, Slot)
    assert isinstance(adm.admit("198.51.100.1"), Refusal)
    b1 = adm.admit("198.51.100.2")
    assert isinstance(b1, Slot)
    full = adm.admit("198.51.100.3")
    assert isinstance(full, Refusal)
    assert full.status == 503
    adm.release(a1)
    adm.release(a1)
    assert adm.unauthenticated == 2
    assert isinstance(adm.admit("198.51.100.1"), Slot)


def test_loopback_is_exempt_from_the_per_address_rules_unless_asked() -> None:
    exempt = admission(Clock(), max_unauthenticated_per_address=1, rate_per_s=1.0, burst=1)
    assert all(isinstance(exempt.admit("127.0.0.1"), Slot) for _ in range(5))
    assert all(isinstance(exempt.admit("::1"), Slot) for _ in range(5))
    limited = admission(Clock(), max_unauthenticated_per_address=1, limit_loopback=True)
    assert isinstance(limited.admit("127.0.0.1"), Slot)
    assert isinstance(limited.admit("127.0.0.1"), Refusal)


def test_the_user_cap_refuses_the_new_connection() -> None:
    adm = admission(Clock(), max_per_user=2)
    adm.check_user(1)
    with pytest.raises(ProtocolError) as refused:
        adm.check_user(2)
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.detail is not None
    assert refused.value.detail["limit"] == 2
    admission(Clock(), max_per_user=0).check_user(10_000)


def test_a_flood_of_refusals_is_a_trickle_of_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    adm = admission(clock, max_unauthenticated_per_address=1, limit_loopback=True)
    adm.admit("192.0.2.1")
    with caplog.at_level(logging.WARNING, "server.transport.admission"):
        for _ in range(1000):
            adm.admit("192.0.2.1")
        clock.now += 11
        adm.admit("192.0.2.1")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[1].startswith("refused 1000 new Engine.IO session(s) by the per-address cap")
