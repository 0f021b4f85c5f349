"""API keys without a server: the key's shape, the scope on the Principal, log redaction."""

from __future__ import annotations

from server.domain.model import Principal, Role, Scope
from server.services.api_keys import WRITE_TYPES, parse_key
from server.transport.http_log import redact


def test_a_key_is_parsed_and_anything_else_is_not() -> None:
    assert parse_key("lk_0123abcd_se_cr-et") == ("0123abcd", "se_cr-et")
    for bad in ("lk_", "lk_abc", "lk__secret", "lk_abc_", "v1.a.b", "lk_é_x", "lk_a_" + "x" * 200):
        assert parse_key(bad) is None, bad


def test_the_scope_decides_what_a_bot_sees_sends_and_coordinates() -> None:
    person = Principal("u_d", "police", Role.DISPATCHER, "D")
    assert person.coordinates
    assert person.sees("anything")
    assert person.may_send("task.create")
    unscoped_bot = Principal("u_b", "police", Role.BOT, "B")
    assert not unscoped_bot.coordinates  # the role alone no longer coordinates
    scoped = Principal(
        "u_b",
        "police",
        Role.BOT,
        "B",
        Scope(incidents=frozenset({"inc_1"}), commands=frozenset({"message.post"})),
    )
    assert scoped.sees("inc_1")
    assert not scoped.sees("inc_2")
    assert scoped.may_send("message.post")
    assert not scoped.may_send("task.create")
    assert not scoped.coordinates
    assert Principal("u_b", "police", Role.BOT, "B", Scope(coordinator=True)).coordinates


def test_only_write_commands_can_be_granted() -> None:
    assert "message.post" in WRITE_TYPES
    assert "follow" not in WRITE_TYPES
    assert "unfollow" not in WRITE_TYPES


def test_logs_never_carry_a_key_secret() -> None:
    line = "refused Bearer lk_0123456789abcdef_xB3aZ-_q9Lk3mPQrsTuVwxyz0123456789ABCDEFGHI now"
    assert redact(line) == "refused Bearer lk_0123456789abcdef_<secret> now"
