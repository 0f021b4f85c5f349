"""Input that breaks the framing below our commands gets a typed answer, never a traceback.

Each test sends, over a real socket to a real server, something a client
library would not produce (undecodable JSON inside a Socket.IO packet, reserved
event names, bad UTF-8 in a polling body, odd digits in a query string...) and
checks the answer SPEC §3/§16 promise, that the connection still serves its
owner where the SPEC says it does, and that the server logged no traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import msgpack
import orjson
import pytest

from liaison_client import LiaisonClient
from server.transport.http_log import sid_tag
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.rawws import RawWebSocket
from tests.integration.wire import LogWatch, connect_raw, next_packet, open_raw


@pytest.fixture
async def watch(server: LiaisonServer) -> AsyncIterator[LogWatch]:
    """Fails the test if the shared server logged a traceback or an ERROR meanwhile."""
    log = LogWatch(server.log_path)
    yield log
    assert log.problems() == [], log.new_text()


def ack_of(packet: str, ack_id: int) -> dict[str, object]:
    """The payload of the ACK packet ``3<id>[payload]``."""
    prefix = f"3{ack_id}["
    assert packet.startswith(prefix), packet
    ack: dict[str, object] = orjson.loads(packet[len(prefix) - 1 :])[0]
    return ack


def error_code(ack: dict[str, object]) -> object:
    assert ack["ok"] is False, ack
    error = ack["error"]
    assert isinstance(error, dict)
    return error["code"]


def notice_of(packet: str) -> dict[str, object]:
    assert packet.startswith('2["notice",'), packet
    notice: dict[str, object] = orjson.loads(packet[1:])[1]
    return notice


def still_serves(ws: RawWebSocket, ack_id: int = 77) -> None:
    """The connection still answers its owner's commands."""
    ws.send_text(f'42{ack_id}["cmd",{{"type":"unfollow","incidents":["x"]}}]')
    assert ack_of(next_packet(ws), ack_id)["ok"] is True


# ------------------------------------------------------------------ connecting


async def test_token_with_non_ascii_signature_is_refused_at_once(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    login = await connect(clients, server, "outreach", live=False)
    assert login.token is not None
    forged = login.token[:-2] + "é0"
    ws = open_raw(server)
    ws.send_text("40" + orjson.dumps({"token": forged}).decode())
    packet = next_packet(ws)
    assert packet.startswith("4{"), packet  # CONNECT_ERROR, not a 5 s silence
    assert orjson.loads(packet[1:])["data"]["code"] == "unauthenticated"
    ws.close()
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {forged}"}) as resp,
    ):
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_undecodable_connect_packet_gets_connect_error(
    server: LiaisonServer, watch: LogWatch
) -> None:
    ws = open_raw(server)
    ws.send_text('40{"token": NaN}')
    packet = next_packet(ws)
    assert packet.startswith("4{"), packet
    assert orjson.loads(packet[1:])["data"]["code"] == "malformed"
    ws.close()


@pytest.mark.parametrize(
    "frame",
    ['42["cmd",{"type":"follow"}]', "4{bad", "44{}", '42["connect",{},{"token":"x"}]'],
    ids=["event", "garbage", "connect-error", "reserved-connect"],
)
async def test_packets_before_connecting_close_the_connection(
    server: LiaisonServer, watch: LogWatch, frame: str
) -> None:
    ws = open_raw(server)
    ws.send_text(frame)
    assert next_packet(ws) == "", "no session: the server hangs up"
    ws.close()


# ------------------------------------------------------------- bad packets


UNDECODABLE = {
    "lone-surrogate": '["cmd",{"type":"message.post","text":"\\ud800"}]',
    "overflowing-number": '["cmd",{"type":"message.post","n":1e309}]',
    "nan": '["cmd",{"type":"message.post","n":NaN}]',
    "deeper-than-1024": '["cmd",' + "[" * 1100 + "]" * 1100 + "]",
    "truncated": '["cmd",{"type":',
    "data-not-an-array": '{"type":"follow"}',
    "empty-array": "[]",
    "event-name-not-a-string": '[7,{"type":"follow"}]',
}


@pytest.mark.parametrize("payload", UNDECODABLE.values(), ids=UNDECODABLE.keys())
async def test_undecodable_event_with_ack_id_gets_malformed_ack(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch, payload: str
) -> None:
    login = await connect(clients, server, "outreach", live=False)
    assert login.token is not None
    ws = connect_raw(server, login.token)
    ws.send_text("425" + payload)
    assert error_code(ack_of(next_packet(ws), 5)) == "malformed"
    still_serves(ws)
    ws.close()


@pytest.mark.parametrize(
    "packet",
    [
        *["42" + UNDECODABLE["nan"], "42", '42²["cmd",{}]', "44{}", "49", "4x", '43["cmd"'],
        *['4{"type":"follow"}', "4true", "4null"],
    ],
    ids=[
        *["no-ack-id", "no-data", "unicode-digit-id", "connect-error", "type-9", "type-x", "ack"],
        *["engineio-json-object", "engineio-json-true", "engineio-json-null"],
    ],
)
async def test_bad_packet_without_ack_id_gets_notice_and_connection_stays(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch, packet: str
) -> None:
    login = await connect(clients, server, "outreach", live=False)
    assert login.token is not None
    ws = connect_raw(server, login.token)
    ws.send_text(packet)
    notice = notice_of(next_packet(ws))
    assert notice["code"] == "malformed"
    assert notice["message"]
    still_serves(ws)
    ws.close()


@pytest.mark.parametrize(
    "placeholder", ['{"_placeholder":true,"num":5}', '{"_placeholder":true,"num":"x"}']
)
async def test_binary_placeholder_naming_no_attachment_gets_malformed_ack(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch, placeholder: str
) -> None:
    login = await connect(clients, server, "outreach", live=False)
    assert login.token is not None
    ws = connect_raw(server, login.token, encoding="msgpack")
    ws.send_text(f'451-7["cmd",{placeholder}]')
    ws.send_frame(b"\x80", opcode=0x2)
    # A msgpack session's ack is binary: the header, then the attachment.
    assert next_packet(ws).startswith("61-7[")
    assert "refused a Socket.IO packet" in watch.new_text()
    ws.close()


async def test_reserved_event_names_are_malformed_and_change_nothing(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    """``connect`` from the wire once switched an open socket to another user."""
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    phone = await connect(clients, server, "outreach", live=False)
    assert phone.token is not None
    assert dispatcher.token is not None
    ws = connect_raw(server, phone.token)
    switch = orjson.dumps(["connect", {}, {"token": dispatcher.token}]).decode()
    ws.send_text("421" + switch)
    assert error_code(ack_of(next_packet(ws), 1)) == "malformed"
    ws.send_text('422["disconnect"]')
    assert error_code(ack_of(next_packet(ws), 2)) == "malformed"
    ws.send_text('423["connect_error",{}]')
    assert error_code(ack_of(next_packet(ws), 3)) == "malformed"
    post = {"type": "message.post", "id": "reserved-1", "incident": incident, "text": "mine"}
    ws.send_text("424" + orjson.dumps(["cmd", post]).decode())
    ack = ack_of(next_packet(ws), 4)
    assert ack["ok"] is True, "the socket still serves its owner after 'disconnect'"
    events = await dispatcher.timeline(incident)
    assert events[-1]["actor"]["user"] == "u_outreach", "and still as its owner"
    ws.close()


async def test_invalid_utf8_in_a_websocket_text_frame_closes_quietly(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    login = await connect(clients, server, "outreach", live=False)
    assert login.token is not None
    ws = connect_raw(server, login.token)
    ws.send_frame(b'42["cmd",{"text":"\xff"}]')
    assert next_packet(ws) == ""
    ws.close()


async def test_packets_after_the_clients_own_engineio_close_end_the_connection(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    """engineio kept reading after a client's CLOSE and answered nothing (found by fuzzing)."""
    login = await connect(clients, server, "outreach", live=False)
    assert login.token is not None
    ws = connect_raw(server, login.token)
    ws.send_text('1["cmd",{}]')  # Engine.IO CLOSE, with junk after it
    ws.send_text('421["cmd",{"type":"unfollow","incidents":["x"]}]')
    assert next_packet(ws) == "", "hung up, instead of leaving the ack pending"
    ws.close()


# ------------------------------------------------------------- long-polling


async def test_a_polling_post_after_the_clients_own_close_is_a_400(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    """It was ``KeyError('Session is disconnected')``: a 500 and a traceback."""
    phone = await connect(clients, server, "outreach", live=False)
    base = server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            sid = orjson.loads((await resp.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        async with http.post(
            url, data="40" + orjson.dumps({"token": phone.token}).decode()
        ) as resp:
            assert resp.status == 200
        async with http.post(url, data="1") as resp:  # Engine.IO CLOSE
            assert resp.status == 200
        async with http.post(url, data='421["cmd",{}]') as resp:
            assert resp.status == 400


async def test_invalid_utf8_in_a_polling_post_is_a_400(
    server: LiaisonServer, watch: LogWatch
) -> None:
    base = server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            sid = orjson.loads((await resp.text())[1:])["sid"]
        async with http.post(f"{base}&sid={sid}", data=b"\xff\xfe40") as resp:
            assert resp.status == 400
    # The session is gone too; asking for it again would make engineio log
    # "Invalid session" at ERROR, which the shared server must not do.
    logged = watch.new_text()
    assert "refused a polling POST from " + sid_tag(sid) in logged
    assert sid not in logged, "a session id is a credential: never logged"


async def test_a_polling_client_may_send_its_whole_outbox_in_one_post(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    """engine.io's cap of 16 packets per POST cut such a client off, and again
    after every reconnect, and so did 17 acks in one answer to a python client's
    poll; 100 posts at once now go through one session, both ways."""
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    phone = LiaisonClient(server.url, transports=["polling"])
    clients.append(phone)
    await phone.login("outreach", "liaison-demo")
    await phone.connect()
    sid = phone.sio.sid
    acks = await asyncio.gather(*(phone.post(incident, f"queued {i}") for i in range(100)))
    assert sorted(ack["seq"] for ack in acks) == list(range(2, 102))
    assert phone.sio.sid == sid, "the session was cut off and reconnected"
    assert "refused a polling POST" not in watch.new_text()


async def test_more_packets_than_a_post_may_carry_is_a_400(server: LiaisonServer) -> None:
    base = server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            sid = orjson.loads((await resp.text())[1:])["sid"]
        async with http.post(f"{base}&sid={sid}", data="\x1e".join(["3"] * 1025)) as resp:
            assert resp.status == 400


async def test_undecodable_packet_in_a_polling_post_is_a_400(
    server: LiaisonServer, watch: LogWatch
) -> None:
    base = server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            sid = orjson.loads((await resp.text())[1:])["sid"]
        async with http.post(f"{base}&sid={sid}", data=b"x40") as resp:
            assert resp.status == 400


# -------------------------------------------------------------------- REST


@pytest.mark.parametrize("name", ["after_seq", "limit"])
# superscript two passes str.isdigit() but not int(); fullwidth twelve passes both.
@pytest.mark.parametrize("raw", ["\u00b2", "\uff11\uff12", "-1", "1e3", " 1", "", "0x10", "1_0"])
async def test_timeline_query_integers_are_ascii_digits(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch, name: str, raw: str
) -> None:
    dispatcher = await connect(clients, server, "dispatch", live=False)
    incident = (
        await dispatcher.request(
            "POST",
            "/api/v1/incidents",
            {"id": f"q-{name}-{raw!r}", "title": "Query", "category": "welfare"},
        )
    )["incident"]
    http = await dispatcher._session()
    url = f"{server.url}/api/v1/incidents/{incident}/timeline"
    headers = {"Authorization": f"Bearer {dispatcher.token}"}
    async with http.get(url, params={name: raw}, headers=headers) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["code"] == "invalid"
    assert error["detail"] == {"field": name}


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /api/v1/incidents?q=" + b"9" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
        b"POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["request-line-too-long", "bad-header", "bad-chunk"],
)
async def test_malformed_http_is_a_400_and_a_warning(
    server: LiaisonServer, watch: LogWatch, request_head: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request_head)
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    await writer.wait_closed()
    assert status_line.split(b" ")[1] == b"400", status_line


async def test_nesting_past_the_encoders_limit_is_invalid_over_rest(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    dispatcher = await connect(clients, server, "dispatch", live=False)
    incident = await new_incident_over_rest(dispatcher)
    body = {"type": "message.post", "id": "deep", "incident": incident, "text": "t"}
    raw = orjson.dumps(body)[:-1] + b',"extra":' + b"[" * 300 + b"]" * 300 + b"}"
    http = await dispatcher._session()
    async with http.post(
        server.url + "/api/v1/commands",
        data=raw,
        headers={"Authorization": f"Bearer {dispatcher.token}"},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid"


async def new_incident_over_rest(client: LiaisonClient) -> str:
    body = {
        "id": "rest-deep",
        "title": "REST incident",
        "category": "welfare",
        "orgs": ["harbour-shelter"],
    }
    incident: str = (await client.request("POST", "/api/v1/incidents", body))["incident"]
    return incident


# --------------------------------------------------------------- commands


async def test_nesting_past_the_encoders_limit_is_invalid_live(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    for encoding in ("json", "msgpack"):
        client = await connect(clients, server, "outreach", encoding=encoding)
        deep: object = []
        for _ in range(300):
            deep = [deep]
        frame = {"type": "message.post", "id": "d", "incident": "x", "text": "t", "extra": deep}
        payload = msgpack.packb(frame) if encoding == "msgpack" else frame
        ack = await client.sio.call("cmd", payload, timeout=5)
        ack = msgpack.unpackb(ack) if isinstance(ack, bytes) else ack
        assert ack["error"]["code"] == "invalid", (encoding, ack)


async def test_incident_update_refuses_a_blank_title(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    for title in ("", "   ", "\t\n"):
        ack = await dispatcher.sio.call(
            "cmd",
            {
                "type": "incident.update",
                "id": f"blank{title!r}",
                "incident": incident,
                "title": title,
            },
            timeout=5,
        )
        assert ack["ok"] is False
        assert ack["error"]["code"] == "invalid"
        assert ack["error"]["detail"] == {"field": "title"}
    assert (await dispatcher.incident(incident))["title"] == "Test incident"


async def test_a_well_formed_polling_session_is_still_served(
    server: LiaisonServer, clients: list[LiaisonClient], watch: LogWatch
) -> None:
    """The POST hook passes good bodies through (raw requests: a python-socketio
    polling client's close waits for the next heartbeat, ~25 s here)."""
    phone = await connect(clients, server, "outreach", live=False)
    base = server.url + "/socket.io/?EIO=4&transport=polling"
    packets: list[str] = []
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            sid = orjson.loads((await resp.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        async with http.post(
            url, data="40" + orjson.dumps({"token": phone.token}).decode()
        ) as resp:
            assert resp.status == 200
        cmd = '421["cmd",{"type":"unfollow","incidents":["é ✓"]}]'
        async with http.post(url, data=cmd.encode()) as resp:
            assert resp.status == 200
        while not any(p.startswith("431") for p in packets):
            async with http.get(url) as resp:
                packets += (await resp.text()).split("\x1e")
        async with http.post(url, data="1") as resp:  # Engine.IO CLOSE
            assert resp.status == 200
    assert packets[0].startswith("40")
    assert ack_of(next(p for p in packets if p.startswith("431"))[1:], 1)["ok"] is True
