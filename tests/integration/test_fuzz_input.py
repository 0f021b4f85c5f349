"""Property: no input from outside makes the server answer ``internal``, a 5xx or a traceback.

Generated command frames go over real Socket.IO connections (python-socketio
clients in both encodings, and raw packets over :class:`RawWebSocket`), and
generated REST bodies and query strings go to the real aiohttp server. After
every example the server's log is checked: bad input is logged at WARNING at
most, never with a traceback.

Bounded and repeatable: derandomized (the same examples on every run, no
example database), a fixed example count per test, each test well under the
60 s per-test timeout on a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liaison_client import LiaisonClient
from protocol import v1
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.rawws import RawWebSocket
from tests.integration.wire import LogWatch, connect_raw, next_packet

FUZZ = settings(
    max_examples=200,
    deadline=None,  # a shared, loaded machine: time is not the property
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ------------------------------------------------------------------ strategies

KEYS = (
    "type id incident text title category priority location lat lon accuracy_m address "
    "orgs add_orgs lead_org liaisons description visibility mentions users reply_to urgent "
    "message task note status assignee org user position incidents after_seq epoch details"
).split()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", " ", "\t", "inc_nope", "metro-police", "harbour-shelter", "²", "é"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def commands(draw: st.DrawFn, incident: str) -> dict[str, Any]:
    """Mostly-plausible commands: a real type and incident, fields of the wrong shapes."""
    frame: dict[str, Any] = {
        "type": draw(st.sampled_from([*v1.COMMANDS, "message.burn", ""]) | st.text(max_size=8))
    }
    if draw(st.booleans()):
        frame["id"] = draw(st.text(min_size=1, max_size=70) | values)
    frame["incident"] = draw(st.just(incident) | values)
    frame.update(draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=6)))
    if draw(st.integers(0, 9)) == 0:
        frame["extra"] = deep(draw(st.sampled_from([9, 254, 255, 256, 600])))
    return frame


#: JSON fragments that no encoder produces but a hand-written client might.
BAD_JSON = st.sampled_from(
    [
        *['"\\ud800"', "1e309", "-1e309", "NaN", "Infinity", "[" * 1100 + "]" * 1100],
        *["{", "]", "'x'", '"\\u0000"', "18446744073709551616", "-0", "1.5e-400"],
        *['"\\x"', "tru", "[1,]"],
    ]
)


@st.composite
def json_texts(draw: st.DrawFn, incident: str) -> str:
    """JSON text, sometimes broken: a good encoding with a bad fragment spliced in."""
    # The stdlib encoder: orjson refuses to encode the deep ``extra`` values.
    good = json.dumps(draw(commands(incident)), separators=(",", ":"))
    match draw(st.integers(0, 3)):
        case 0:
            return good
        case 1:
            return good[: draw(st.integers(0, len(good)))]
        case 2:
            return good[:-1] + ',"x":' + draw(BAD_JSON) + "}"
        case _:
            return draw(BAD_JSON)


@st.composite
def socketio_packets(draw: st.DrawFn, incident: str) -> str:
    """An Engine.IO message holding a Socket.IO packet: each part maybe odd.

    Engine.IO type (mostly MESSAGE), Socket.IO type, attachments, namespace,
    ack id, payload.
    """
    eio = draw(st.sampled_from(["4"] * 8 + ["", "2", "3", "5", "6", "7", "b", "\u00b2"]))
    kind = draw(st.sampled_from([*"0123456", "7", "9", "x", "\u00b2", "", "\u0663"]))
    attachments = draw(st.sampled_from(["", "", "1-", "0-", "99999999999-", "²-"]))
    namespace = draw(st.sampled_from(["", "", "", "/", "/admin,", "/x"]))
    ack = draw(st.sampled_from(["", "1", "²", "0" * 120, "12345678901234567890"]))
    payload: str = draw(
        st.one_of(
            json_texts(incident).map(lambda cmd: f'["cmd",{cmd}]'),
            json_texts(incident),
            values.map(lambda v: orjson.dumps(v).decode()),
            st.sampled_from(['["connect",{},{"token":"x"}]', '["disconnect"]', "[]", "", '"cmd"']),
        )
    )
    return "".join((eio, kind, attachments, namespace, ack, payload))


# -------------------------------------------------------------------- fixtures


class Fuzzed:
    """The connections one fuzz test drives, and the log it watches."""

    def __init__(self, server: LiaisonServer, incident: str, token: str) -> None:
        self.server, self.incident, self.token = server, incident, token
        self.log = LogWatch(server.log_path)
        self.raw: RawWebSocket | None = None
        self.ack_ids = itertools.count(1000)

    def no_tracebacks(self) -> None:
        """Since the last check, so each failure is pinned to its own example."""
        problems, text = self.log.problems(), self.log.new_text()
        self.log = LogWatch(self.server.log_path)
        assert problems == [], text[-3000:]


@pytest.fixture
async def fuzzed(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> AsyncIterator[tuple[Fuzzed, LiaisonClient, LiaisonClient]]:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher, "Fuzzed incident")
    phone = await connect(clients, server, "outreach", encoding="msgpack")
    assert dispatcher.token is not None
    state = Fuzzed(server, incident, dispatcher.token)
    yield state, dispatcher, phone
    if state.raw is not None:
        state.raw.close()
    state.no_tracebacks()


def assert_typed(ack: Any) -> None:
    """An answer is a typed success or a typed, non-internal error."""
    if isinstance(ack, bytes):
        ack = msgpack.unpackb(ack)
    assert isinstance(ack, dict), ack
    if ack.get("ok") is not True:
        assert ack["error"]["code"] != "internal", ack
        assert ack["error"]["message"]


# ----------------------------------------------------------------------- tests


@FUZZ
@given(data=st.data())
async def test_fuzzed_commands_over_socketio_get_typed_answers(
    fuzzed: tuple[Fuzzed, LiaisonClient, LiaisonClient], data: st.DataObject
) -> None:
    state, dispatcher, phone = fuzzed
    frame = data.draw(commands(state.incident))
    assert_typed(await dispatcher.sio.call("cmd", frame, timeout=10))
    packed = msgpack.packb(frame)
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(packed)))
        packed = packed[:cut] + data.draw(st.binary(max_size=8))
    assert_typed(await phone.sio.call("cmd", packed, timeout=10))
    name = data.draw(st.sampled_from(["cmd", "connect", "disconnect", "x"]) | st.text(max_size=8))
    if name == "cmd":
        assert_typed(await dispatcher.sio.call(name, data.draw(values), timeout=10))
    else:
        assert_typed(await dispatcher.sio.call(name, frame, timeout=10))
    assert dispatcher.sio.connected, "a bad frame never costs the sender its connection"
    state.no_tracebacks()


def raw_probe(state: Fuzzed, packet: str) -> None:
    """Send one raw packet, then a probe command; every answer until the probe's is typed."""
    if state.raw is None:
        state.raw = connect_raw(state.server, state.token)
    ws = state.raw
    ws.send_text(packet)
    probe = next(state.ack_ids)
    ws.send_text(f'42{probe}["cmd",{{"type":"unfollow","incidents":["x"]}}]')
    while True:
        answer = next_packet(ws, timeout=10)
        if answer == "":  # the server hung up, as SPEC §3 allows for some packets
            ws.close()
            state.raw = None
            return
        if answer.startswith("3"):
            digits = answer[1 : answer.index("[")]
            assert_typed(orjson.loads(answer[1 + len(digits) :])[0])
            if digits == str(probe):
                return
        elif answer.startswith('2["notice"'):
            assert orjson.loads(answer[1:])[1]["code"] != "internal"
        elif answer.startswith("4"):  # CONNECT_ERROR for a stray CONNECT
            assert "internal" not in answer


@FUZZ
@given(data=st.data())
async def test_fuzzed_raw_socketio_packets_get_typed_answers(
    fuzzed: tuple[Fuzzed, LiaisonClient, LiaisonClient], data: st.DataObject
) -> None:
    state, _, _ = fuzzed
    packet = data.draw(socketio_packets(state.incident))
    await asyncio.to_thread(raw_probe, state, packet)
    state.no_tracebacks()


queries = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["\u00b2", "\uff11\uff12", "\u0663", "-1", "1e3", " 1", "0x10", "1_0", "9" * 30, "9" * 5000]
    ),
    st.integers(min_value=-10, max_value=2**60).map(str),
)


@FUZZ
@given(data=st.data())
async def test_fuzzed_rest_requests_get_typed_answers(
    fuzzed: tuple[Fuzzed, LiaisonClient, LiaisonClient], data: st.DataObject
) -> None:
    state, dispatcher, _ = fuzzed
    http = await dispatcher._session()
    auth = {"Authorization": f"Bearer {state.token}"}
    match data.draw(st.integers(0, 3)):
        case 0:
            path = f"/api/v1/incidents/{state.incident}/timeline"
            params = data.draw(st.dictionaries(st.sampled_from(["after_seq", "limit"]), queries))
            request = http.get(state.server.url + path, params=params, headers=auth)
        case 1:
            params = data.draw(
                st.dictionaries(st.sampled_from(["status", "category", "q"]), queries)
            )
            request = http.get(state.server.url + "/api/v1/incidents", params=params, headers=auth)
        case 2:
            path = data.draw(st.sampled_from(["/api/v1/commands", "/api/v1/incidents"]))
            body = data.draw(
                json_texts(state.incident).map(str.encode) | st.binary(max_size=64),
            )
            request = http.post(state.server.url + path, data=body, headers=auth)
        case _:
            token = data.draw(
                st.sampled_from([state.token[:-1] + "é", state.token + ".x", "v1..", ""])
                # What an HTTP client will send in a header: no control characters.
                | st.text(
                    st.characters(min_codepoint=32, max_codepoint=255, exclude_categories=["Cc"]),
                    max_size=40,
                )
            )
            headers = {"Authorization": f"Bearer {token}"}
            request = http.get(state.server.url + "/api/v1/me", headers=headers)
    async with request as resp:
        assert resp.status < 500, await resp.text()
        if resp.status >= 400 and resp.content_type == "text/plain":
            # Not parseable as HTTP (a request line over 8,190 bytes): the
            # HTTP layer's plain 400, before any route (SPEC §18).
            assert resp.status == 400
        elif resp.status >= 400:
            assert (await resp.json())["error"]["code"] != "internal"
    state.no_tracebacks()
