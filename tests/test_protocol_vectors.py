"""Golden vectors (protocol/vectors/*.json) and the codecs' decoding limits.

The vectors are shared with other client implementations: ``commands.json``
pins what ``parse_command`` accepts and refuses, ``envelopes.json`` pins the
exact bytes the server sends for an envelope in each encoding and the hash
chain described in protocol/SPEC.md ("Hash chain").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest

import protocol
from protocol.codec import JsonCodec, MsgpackCodec, check_decoded
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import LIMITS, Limits
from protocol.v1 import COMMANDS, EVENT_TYPES, RESTRICTED_TYPE, parse_command
from server.domain import chain
from server.services.envelope import envelope, from_envelope, placeholder

VECTORS = Path(protocol.__file__).parent / "vectors"

Vector = dict[str, Any]


def _load(name: str) -> list[Vector]:
    data = json.loads((VECTORS / name).read_text("utf-8"))
    assert isinstance(data, list)
    return data


COMMAND_VECTORS = _load("commands.json")
ENVELOPE_VECTORS = _load("envelopes.json")
#: The single envelopes (not the batch), in the order the vectors list them.
SINGLE_ENVELOPES = [v["value"] for v in ENVELOPE_VECTORS if isinstance(v["value"], dict)]

ENVELOPE_KEYS = [
    "v",
    "type",
    "incident",
    "seq",
    "epoch",
    "ts",
    "actor",
    "cid",
    "visibility",
    "body",
    "digest",
    "hash",
]
#: Chain rule 2 (SPEC section 14.1): an event stored with a salt carries it last.
SALTED_KEYS = [*ENVELOPE_KEYS, "salt"]
RESTRICTED_KEYS = ["v", "type", "incident", "seq", "epoch", "digest", "hash"]


def _names(vectors: list[Vector]) -> list[str]:
    return [str(v["name"]) for v in vectors]


# ------------------------------------------------------------------ commands


def test_vector_names_are_unique() -> None:
    for vectors in (COMMAND_VECTORS, ENVELOPE_VECTORS):
        names = _names(vectors)
        assert len(names) == len(set(names))


def test_every_command_type_has_a_valid_vector() -> None:
    covered = {v["expect"]["type"] for v in COMMAND_VECTORS if "type" in v["expect"]}
    assert covered == set(COMMANDS)


@pytest.mark.parametrize("vector", COMMAND_VECTORS, ids=_names(COMMAND_VECTORS))
def test_command_vector_parses_as_expected(vector: Vector) -> None:
    expect = vector["expect"]
    if "type" in expect:
        command = parse_command(vector["frame"])
        assert type(command).TYPE == expect["type"]
        assert isinstance(command, COMMANDS[expect["type"]])
        return
    with pytest.raises(ProtocolError) as caught:
        parse_command(vector["frame"])
    assert caught.value.code is ErrorCode.from_code(expect["error"])
    if "field" in expect:
        assert caught.value.detail == {"field": expect["field"]}
    wire = caught.value.to_wire()
    assert wire["code"] == expect["error"]
    assert wire["retryable"] is False
    assert wire["message"]


@pytest.mark.parametrize("vector", COMMAND_VECTORS, ids=_names(COMMAND_VECTORS))
def test_command_frame_decodes_alike_in_both_codecs(vector: Vector) -> None:
    frame = vector["frame"]
    json_codec, msgpack_codec = JsonCodec(), MsgpackCodec()
    from_json = json_codec.decode(json_codec.encode(frame))
    from_json_text = json_codec.decode(json_codec.encode(frame).decode())
    from_msgpack = msgpack_codec.decode(msgpack_codec.encode(frame))
    assert from_json == from_json_text == from_msgpack == frame
    # What a JSON Socket.IO session goes through after socket.io parsed the frame.
    assert check_decoded(from_json) == frame


# ----------------------------------------------------------------- envelopes


@pytest.mark.parametrize("vector", ENVELOPE_VECTORS, ids=_names(ENVELOPE_VECTORS))
def test_envelope_vector_bytes_are_what_the_codecs_produce(vector: Vector) -> None:
    value = vector["value"]
    packed = bytes.fromhex(vector["msgpack_hex"])
    assert MsgpackCodec().encode(value) == packed
    assert JsonCodec().encode(value) == vector["json"].encode("utf-8")
    assert MsgpackCodec().decode(packed) == value
    assert JsonCodec().decode(vector["json"]) == value
    assert JsonCodec().decode(vector["json"].encode("utf-8")) == value


@pytest.mark.parametrize("value", SINGLE_ENVELOPES, ids=[str(v["seq"]) for v in SINGLE_ENVELOPES])
def test_envelope_vector_has_the_documented_fields(value: dict[str, Any]) -> None:
    assert value["v"] == protocol.PROTOCOL_VERSION
    if value["type"] == RESTRICTED_TYPE:
        assert list(value) == RESTRICTED_KEYS
    else:
        assert list(value) in (ENVELOPE_KEYS, SALTED_KEYS)
        assert value["type"] in EVENT_TYPES
        assert list(value["actor"]) == ["user", "org", "name"]


def _full_view() -> list[dict[str, Any]]:
    """Every event of the vector incident as an organisation that sees all of it."""
    full = [v for v in SINGLE_ENVELOPES if v["type"] != RESTRICTED_TYPE]
    assert [v["seq"] for v in full] == list(range(1, len(full) + 1))
    return full


def test_envelope_vectors_are_what_the_server_builds() -> None:
    for value in _full_view():
        stored = from_envelope(value)
        assert envelope(stored) == value
        assert chain.event_digest(stored) == value["digest"]
        if stored.visibility is not None:
            restricted = next(
                v
                for v in SINGLE_ENVELOPES
                if v["type"] == RESTRICTED_TYPE and v["seq"] == value["seq"]
            )
            assert placeholder(stored) == restricted
            assert not stored.visible_to("harbour-shelter")


def _digest_per_spec(env: dict[str, Any]) -> str:
    """SPEC.md "Hash chain", written out independently of server.domain.chain.

    Chain rule 2 prefixes the 32 salt bytes; an envelope without ``salt`` is rule 1.
    """
    content = {
        "incident": env["incident"],
        "seq": env["seq"],
        "epoch": env["epoch"],
        "type": env["type"],
        "ts_ms": env["ts"],
        "actor_user": env["actor"]["user"],
        "actor_org": env["actor"]["org"],
        "client_id": env["cid"],
        "visibility": env["visibility"],
        "body": env["body"],
    }
    salt = bytes.fromhex(env["salt"]) if env.get("salt") is not None else b""
    return hashlib.sha256(salt + orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _verify_per_spec(envelopes: list[dict[str, Any]]) -> None:
    prev = "0" * 64
    for seq, env in enumerate(envelopes, start=1):
        assert env["seq"] == seq
        if env["type"] != RESTRICTED_TYPE:
            assert _digest_per_spec(env) == env["digest"]
        expected = hashlib.sha256((prev + env["digest"]).encode("ascii")).hexdigest()
        assert env["hash"] == expected
        prev = env["hash"]


def test_envelope_chain_verifies_offline_in_every_view() -> None:
    full = _full_view()
    restricted = {v["seq"]: v for v in SINGLE_ENVELOPES if v["type"] == RESTRICTED_TYPE}
    assert restricted, "the vectors must include a restricted placeholder"
    shelter_view = [restricted.get(v["seq"], v) for v in full]
    _verify_per_spec(full)
    _verify_per_spec(shelter_view)
    for view in (full, shelter_view):
        assert chain.verify((v["seq"], v["digest"], v["hash"]) for v in view) is None


def test_the_vector_incident_spans_both_chain_rules() -> None:
    """Seq 1-2 were stored before salts (rule 1), the rest with one (rule 2)."""
    rules = [("salt" in v) for v in _full_view()]
    assert rules == [False, False] + [True] * (len(rules) - 2)
    for value in _full_view()[2:]:
        assert len(bytes.fromhex(value["salt"])) == chain.SALT_BYTES
    salts = [v["salt"] for v in _full_view()[2:]]
    assert len(set(salts)) == len(salts)


def test_a_placeholder_never_carries_the_salt_or_a_time() -> None:
    placeholders = [v for v in SINGLE_ENVELOPES if v["type"] == RESTRICTED_TYPE]
    for value in placeholders:
        assert "salt" not in value
        assert "ts" not in value


def test_a_tampered_envelope_breaks_the_chain() -> None:
    full = _full_view()
    tampered = {**full[1], "body": {**full[1]["body"], "text": "edited afterwards"}}
    assert _digest_per_spec(tampered) != tampered["digest"]
    links = [(v["seq"], v["digest"], v["hash"]) for v in full]
    links[1] = (2, _digest_per_spec(tampered), full[1]["hash"])
    assert chain.verify(links) == 2


def test_batch_vector_is_the_concatenation_of_its_envelopes() -> None:
    batches = [v for v in ENVELOPE_VECTORS if isinstance(v["value"], list)]
    assert batches, "the vectors must include an ev batch"
    for vector in batches:
        items = vector["value"]
        assert all(item in SINGLE_ENVELOPES for item in items)
        seqs = [item["seq"] for item in items]
        assert seqs == sorted(seqs)
        # The server sends a batch as an array header followed by the
        # envelopes it encoded once for every recipient.
        assert len(items) < 16
        header = bytes((0x90 | len(items),))  # msgpack fixarray
        parts = b"".join(MsgpackCodec().encode(item) for item in items)
        assert bytes.fromhex(vector["msgpack_hex"]) == header + parts
        joined = ",".join(JsonCodec().encode(item).decode() for item in items)
        assert vector["json"] == "[" + joined + "]"


# -------------------------------------------------------------- codec limits

SMALL = Limits(max_frame_bytes=64, max_depth=3)


def _nested(depth: int) -> Any:
    """A value whose innermost scalar sits inside ``depth`` objects."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("codec", [JsonCodec(SMALL), MsgpackCodec(SMALL)], ids=["json", "msgpack"])
def test_frame_over_max_frame_bytes_is_too_large(codec: JsonCodec | MsgpackCodec) -> None:
    at_limit = codec.encode({"text": "x" * 40})
    padding = SMALL.max_frame_bytes - len(at_limit)
    at_limit = codec.encode({"text": "x" * (40 + padding)})
    assert len(at_limit) == SMALL.max_frame_bytes
    assert codec.decode(at_limit) == {"text": "x" * (40 + padding)}
    over = codec.encode({"text": "x" * (41 + padding)})
    with pytest.raises(ProtocolError) as caught:
        codec.decode(over)
    assert caught.value.code is ErrorCode.TOO_LARGE
    assert caught.value.detail == {"limit": SMALL.max_frame_bytes}


def test_json_text_frame_size_counts_utf8_bytes_not_characters() -> None:
    text = orjson.dumps({"text": "é" * 40_000}).decode()
    assert len(text) < LIMITS.max_frame_bytes < len(text.encode("utf-8"))
    with pytest.raises(ProtocolError) as caught:
        JsonCodec().decode(text)
    assert caught.value.code is ErrorCode.TOO_LARGE


def test_check_decoded_applies_the_frame_limits() -> None:
    with pytest.raises(ProtocolError) as caught:
        check_decoded({"text": "x" * 100}, SMALL)
    assert caught.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(ProtocolError) as caught:
        check_decoded(_nested(SMALL.max_depth + 1), SMALL)
    assert caught.value.code is ErrorCode.INVALID


@pytest.mark.parametrize(
    "frame",
    [b"{", b"", b"NaN", b'{"a":1}x', b'{"a":"\\ud800"}', '{"type": '],
    ids=["truncated", "empty", "nan", "trailing", "lone-surrogate", "text-truncated"],
)
def test_malformed_json_is_malformed(frame: bytes | str) -> None:
    with pytest.raises(ProtocolError) as caught:
        JsonCodec().decode(frame)
    assert caught.value.code is ErrorCode.MALFORMED


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",
        msgpack.packb({"type": "message.post", "text": "hello"})[:-2],
        msgpack.packb({1: "integer key"}),
        b"\x81\xa1a\xa2\xff\xfe",
    ],
    ids=["empty", "never-used-byte", "truncated", "integer-map-key", "invalid-utf8"],
)
def test_malformed_msgpack_is_malformed(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        MsgpackCodec().decode(frame)
    assert caught.value.code is ErrorCode.MALFORMED


def test_msgpack_with_trailing_bytes_is_malformed() -> None:
    frame = msgpack.packb({"type": "follow"}) + msgpack.packb({"type": "follow"})
    with pytest.raises(ProtocolError) as caught:
        MsgpackCodec().decode(frame)
    assert caught.value.code is ErrorCode.MALFORMED


def test_msgpack_text_frame_is_malformed() -> None:
    with pytest.raises(ProtocolError) as caught:
        MsgpackCodec().decode('{"type": "follow"}')
    assert caught.value.code is ErrorCode.MALFORMED


@pytest.mark.parametrize("codec", [JsonCodec(), MsgpackCodec()], ids=["json", "msgpack"])
def test_nesting_deeper_than_max_depth_is_invalid(codec: JsonCodec | MsgpackCodec) -> None:
    assert codec.decode(codec.encode(_nested(LIMITS.max_depth))) == _nested(LIMITS.max_depth)
    with pytest.raises(ProtocolError) as caught:
        codec.decode(codec.encode(_nested(LIMITS.max_depth + 1)))
    assert caught.value.code is ErrorCode.INVALID
    deep_list: Any = []
    for _ in range(LIMITS.max_depth + 1):
        deep_list = [deep_list, 1]
    with pytest.raises(ProtocolError) as caught:
        codec.decode(codec.encode(deep_list))
    assert caught.value.code is ErrorCode.INVALID


@pytest.mark.parametrize(
    "frame",
    [
        msgpack.packb({"type": "message.post", "text": b"hello"}, use_bin_type=True),
        msgpack.packb({"type": "message.post", "text": msgpack.ExtType(1, b"\x00")}),
    ],
    ids=["bin", "ext"],
)
def test_msgpack_binary_and_ext_are_refused(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        MsgpackCodec().decode(frame)
    assert caught.value.code is ErrorCode.MALFORMED


@pytest.mark.parametrize(
    "frame", [b"\x81\xa1a\xc4\x00", b"\x81\xa1a\xc7\x00\x01"], ids=["bin", "ext"]
)
def test_msgpack_empty_binary_and_ext_are_refused(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        MsgpackCodec().decode(frame)


def test_msgpack_structure_caps_are_malformed() -> None:
    too_long = msgpack.packb(list(range(LIMITS.max_list_items * 10 + 1)))
    too_wide = msgpack.packb({str(n): n for n in range(257)})
    for frame in (too_long, too_wide):
        with pytest.raises(ProtocolError) as caught:
            MsgpackCodec().decode(frame)
        assert caught.value.code is ErrorCode.MALFORMED


def test_welcome_limits_are_the_documented_ones() -> None:
    assert LIMITS.to_wire() == {
        "max_frame_bytes": 65536,
        "max_text_chars": 8000,
        "max_short_chars": 300,
        "max_id_chars": 64,
        "max_list_items": 100,
        "max_depth": 8,
        "max_page": 1000,
    }
