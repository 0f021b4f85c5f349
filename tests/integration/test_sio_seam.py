"""One test per hook of server/transport/sio_seam.py: each fails if its hook stops working.

The hooks reach into python-socketio / python-engineio / aiohttp internals, so a
version bump can break one silently (compression back on, attachments buffered,
frames interleaved). :data:`HOOK_TESTS` names the test of every hook, here or
where it already lived; ``test_every_hook_has_a_test`` keeps that table complete.
"""

from __future__ import annotations

import ast
import asyncio
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from engineio import packet as eio_packet

from liaison_client import LiaisonClient
from server.transport import sio_seam
from server.transport.lean_async import SocketQueue
from tests.conftest import (
    LiaisonServer,
    connect,
    new_incident,
)
from tests.integration.inproc import InProcess
from tests.integration.rawws import RawWebSocket
from tests.integration.wire import SOCKET_PATH, LogWatch, connect_raw
from tests.waiting import until

ROOT = Path(__file__).resolve().parents[2]

#: hook (a function or method of sio_seam) → the test that fails without it.
HOOK_TESTS: dict[str, str] = {
    # Its other two rules: test_a_poll_of_a_closed_session_is_a_quiet_400 (here)
    # and test_wire_input.py::test_a_polling_post_after_the_clients_own_close_is_a_400.
    "_guard_requests": (
        "test_admission.py::test_new_sessions_per_address_are_rate_limited_on_both_transports"
    ),
    "_no_compression": "test_sio_seam.py::test_permessage_deflate_is_never_negotiated",
    "_record_websocket_transport": "test_sio_seam.py::test_websocket_sessions_write_directly",
    "_ping_from_a_timer": (
        "test_sio_seam.py::test_an_idle_websocket_session_keeps_no_read_task_and_no_queue_buffers"
    ),
    "SocketServer._keep_only_the_request": (
        "test_sio_seam.py::test_a_connected_session_keeps_only_its_request_of_the_environ"
    ),
    "SocketServer._engineio_server_class": (
        "test_sio_seam.py::test_an_idle_websocket_session_keeps_no_read_task_and_no_queue_buffers"
    ),
    "Connection.direct_transport": "test_sio_seam.py::test_websocket_sessions_write_directly",
    "SocketServer.send_ack": (
        "test_sio_seam.py::test_direct_writes_are_whole_frames_in_order_behind_no_ack"
    ),
    "Connection.queue_lazy": "test_sio_seam.py::test_events_queued_for_a_poll_are_one_message",
    "Connection.queue_ack": (
        "test_sio_seam.py::test_acks_queued_before_an_upgrade_stay_ahead_of_direct_ones"
    ),
    "Connection.acks_queued": (
        "test_sio_seam.py::test_an_ack_queues_behind_an_ack_engineio_has_not_written"
    ),
    "SocketServer.ack_text": (
        "test_sio_seam.py::test_direct_writes_are_whole_frames_in_order_behind_no_ack"
    ),
    "Connection.queue_text": (
        "test_slow_consumer.py::test_slow_consumer_is_cut_off_and_catches_up_from_the_log"
    ),
    "SocketServer.end_transport": (
        "test_sio_seam.py::test_shutdown_ends_the_websocket_without_a_close_packet"
    ),
    "SocketServer.hang_up": (
        "test_wire_input.py::test_packets_before_connecting_close_the_connection"
    ),
    "_refuse_undecodable_posts": "test_wire_input.py::test_invalid_utf8_in_a_polling_post_is_a_400",
    "_more_packets_per_post": (
        "test_wire_input.py::test_a_polling_client_may_send_its_whole_outbox_in_one_post"
    ),
    "_answer_polls_a_client_can_decode": (
        "test_wire_input.py::test_a_polling_client_may_send_its_whole_outbox_in_one_post"
    ),
    "_refuse_undecodable_messages": (
        "test_wire_input.py::test_invalid_utf8_in_a_websocket_text_frame_closes_quietly"
    ),
    "_receive_nothing_once_closed": (
        "test_wire_input.py::test_packets_after_the_clients_own_engineio_close_end_the_connection"
    ),
    "CheckedPacket.decode": (
        "test_wire_input.py::test_undecodable_event_with_ack_id_gets_malformed_ack"
    ),
    "CheckedPacket.add_attachment": (
        "test_wire_input.py::test_binary_placeholder_naming_no_attachment_gets_malformed_ack"
    ),
    "SocketServer._handle_eio_message": (
        "test_bad_input.py::test_binary_attachment_flood_is_cut_before_buffering"
    ),
    "SocketServer._handle_event_internal": (
        "test_wire_input.py::test_reserved_event_names_are_malformed_and_change_nothing"
    ),
    "SocketServer.send_connect_error": (
        "test_wire_input.py::test_undecodable_connect_packet_gets_connect_error"
    ),
    "check_versions": "test_sio_seam_boundary.py::test_the_version_check_names_each_mismatch",
    "SocketServer.admit_with": (
        "test_admission.py::test_unauthenticated_sessions_per_address_are_capped_and_freed_by_connecting"
    ),
    "SocketServer._handle_eio_connect": (
        "test_admission.py::test_unauthenticated_sessions_per_address_are_capped_and_freed_by_connecting"
    ),
    "SocketServer._handle_eio_disconnect": (
        "test_admission.py::test_a_session_that_does_not_authenticate_in_time_is_closed_quietly"
    ),
    "SocketServer.expire_unauthenticated": (
        "test_admission.py::test_a_session_that_does_not_authenticate_in_time_is_closed_quietly"
    ),
}


def _seam_hooks() -> set[str]:
    """The hooks sio_seam defines: what install_engineio_hooks applies, and the
    methods of its classes that touch the libraries."""
    tree = ast.parse(Path(sio_seam.__file__).read_text())
    hooks = {"check_versions"}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "install_engineio_hooks":
            hooks |= {
                c.func.id
                for c in ast.walk(node)
                if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
            }
        if isinstance(node, ast.ClassDef) and node.name in (
            "Connection",
            "SocketServer",
            "CheckedPacket",
        ):
            hooks |= {
                f"{node.name}.{f.name}"
                for f in node.body
                if isinstance(f, ast.AsyncFunctionDef | ast.FunctionDef)
                and f.name not in ("__init__", "closed", "connection", "eio_sid_of")
                and f.name not in ("sid_of", "is_connected", "_tcp_transport")
            }
    hooks.discard("setattr")
    hooks.discard("getattr")
    return hooks


def test_every_hook_has_a_test() -> None:
    assert _seam_hooks() == set(HOOK_TESTS), "add the hook's test to HOOK_TESTS"
    for hook, test in HOOK_TESTS.items():
        path, name = test.split("::")
        where = next(ROOT.joinpath("tests").rglob(path))
        assert f"def {name}(" in where.read_text(), f"{hook}: {test} does not exist"


# --------------------------------------------------------------- frames


def parse_frames(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Server-to-client WebSocket frames as (opcode, payload, raw bytes), checked
    bit for bit: FIN set, RSV bits clear (RSV1 would be a compressed frame),
    unmasked, nothing left over."""
    frames, offset = [], 0
    while offset < len(data):
        b0, b1 = data[offset], data[offset + 1]
        assert b0 & 0x80, f"a fragmented frame at byte {offset}"
        assert not b0 & 0x70, f"RSV bits set at byte {offset} (compressed?)"
        assert not b1 & 0x80, "a masked server frame"
        n, head = b1 & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[offset + 2 : offset + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[offset + 2 : offset + 10], "big"), 10
        assert offset + head + n <= len(data), "a frame cut short"
        raw = data[offset : offset + head + n]
        frames.append((b0 & 0x0F, raw[head:], raw))
        offset += head + n
    return frames


def expected_ev_frame(envelopes: list[Any]) -> bytes:
    """The ``ev`` frame as SPEC §9 defines it, built independently of the outbox."""
    payload = b'42["ev",[' + b",".join(orjson.dumps(e) for e in envelopes) + b"]]"
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 0x10000:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def read_until(ws: RawWebSocket, done: Any, timeout: float = 20.0) -> bytes:
    """Raw bytes until ``done(frames)``; answers no ping (the test is short)."""
    ws.sock.settimeout(timeout)
    data = ws.buffer
    while not done(parse_frames(_whole(data))):
        chunk = ws.sock.recv(1 << 20)
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def _whole(data: bytes) -> bytes:
    """The prefix of ``data`` made of whole frames."""
    offset = 0
    while offset + 2 <= len(data):
        n, head = data[offset + 1] & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[offset + 2 : offset + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[offset + 2 : offset + 10], "big"), 10
        if offset + head + n > len(data):
            break
        offset += head + n
    return data[:offset]


# ---------------------------------------------------------------- tests


async def test_permessage_deflate_is_never_negotiated(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Hook ``_no_compression``: a client offering permessage-deflate gets plain frames."""
    login = await connect(clients, server, "dispatch", live=False)
    offer = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    ws = RawWebSocket("127.0.0.1", server.port, SOCKET_PATH, headers=offer)
    try:
        assert "permessage-deflate" not in ws.head.lower(), ws.head
        assert login.token is not None
        ws.send_text("40" + orjson.dumps({"token": login.token}).decode())
        # parse_frames refuses RSV1, the bit of a compressed frame.
        data = read_until(ws, lambda fs: any(p.startswith(b'42["welcome"') for _, p, _ in fs))
        assert parse_frames(_whole(data))[0][1].startswith(b"0{")
    finally:
        ws.close()


async def test_acks_queued_before_an_upgrade_stay_ahead_of_direct_ones(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Hooks ``Connection.queue_ack``, ``acks_queued``: acks queued for a
    long-polling session that no poll collected, then the upgrade to WebSocket,
    then more commands. The queued acks leave through engine.io's writer, the
    later ones straight to the transport; the client still gets 100..159 in order."""
    login = await connect(clients, server, "dispatch")
    incident = await new_incident(login)
    await login.follow(incident, after_seq=1)
    assert login.token is not None

    def commands(first: int, count: int) -> list[str]:
        return [
            f"42{first + i}"
            + '["cmd",'
            + orjson.dumps(
                {
                    "type": "message.post",
                    "incident": incident,
                    "text": f"p{first + i}",
                    "id": f"up{first + i}",
                }
            ).decode()
            + "]"
            for i in range(count)
        ]

    base = server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            sid = orjson.loads((await resp.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        auth = {"token": login.token, "encoding": "json"}
        async with http.post(url, data="40" + orjson.dumps(auth).decode()) as resp:
            assert resp.status == 200
        polled = ""
        while '42["welcome"' not in polled:
            async with http.get(url) as resp:
                polled += await resp.text()
        async with http.post(url, data="\x1e".join(commands(100, 30))) as resp:
            assert resp.status == 200
        # Stored: their acks are due (queued, as no poll is waiting for them).
        await login.wait_seq(incident, 31)
    ws = RawWebSocket("127.0.0.1", server.port, f"/socket.io/?EIO=4&transport=websocket&sid={sid}")
    try:
        ws.send_text("2probe")
        assert ws.recv_text() == "3probe"
        ws.send_text("5")
        for text in commands(130, 30):
            ws.send_text(text)
        data = read_until(ws, lambda fs: any(p.startswith(b"43159[") for _, p, _ in fs))
    finally:
        ws.close()
    acks = [p for _, p, _ in parse_frames(_whole(data)) if p.startswith(b"43")]
    assert [int(p[2 : p.index(b"[")]) for p in acks] == list(range(100, 160))


async def test_direct_writes_are_whole_frames_in_order_behind_no_ack(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Hooks ``_record_websocket_transport``, ``direct_transport``, ``send_ack``.

    ``ev`` frames and acks are written straight to the TCP transport, a
    turn's acks after its events. 100 pipelined posts of mixed sizes on one connection:
    every byte parses as whole frames (a direct write never lands inside one
    of aiohttp's), each ``ev`` frame is exactly SPEC §9's, seqs only grow, acks
    keep their order, and (embedded backend) each ack follows its event.
    """
    login = await connect(clients, server, "dispatch")
    incident = await new_incident(login)
    assert login.token is not None
    ws = connect_raw(server, login.token)
    try:
        follow = {"type": "follow", "incidents": [{"incident": incident}]}
        ws.send_text('421["cmd",' + orjson.dumps(follow).decode() + "]")
        read_until(ws, lambda fs: any(p.startswith(b"431[") for _, p, _ in fs))
        ws.buffer = b""
        for i in range(100):
            text = ("x" * 7900) if i % 10 == 0 else f"post {i}"
            post = {"type": "message.post", "incident": incident, "text": text, "id": f"p{i}"}
            ws.send_text(f"42{100 + i}" + '["cmd",' + orjson.dumps(post).decode() + "]")
        data = read_until(ws, lambda fs: any(p.startswith(b"43199[") for _, p, _ in fs))
    finally:
        ws.close()

    seen: set[int] = set()
    last_seq, ack_ids = 0, []
    for _opcode, payload, raw in parse_frames(_whole(data)):
        if payload.startswith(b'42["ev",'):
            envelopes = orjson.loads(payload[2:])[1]
            assert raw == expected_ev_frame(envelopes), "not the frame SPEC §9 defines"
            for envelope in envelopes:
                assert envelope["seq"] > last_seq
                last_seq = envelope["seq"]
                seen.add(last_seq)
        elif payload.startswith(b"43"):
            ack_id = int(payload[2 : payload.index(b"[")])
            ack = orjson.loads(payload[payload.index(b"[") :])[0]
            assert ack["ok"], ack
            assert ack["seq"] in seen, f"the ack of seq {ack['seq']} overtook its event"
            ack_ids.append(ack_id)
    assert ack_ids == list(range(100, 200))
    assert len(seen) == 100


def _poll(url: str, body: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")  # noqa: S310
    if body:
        request.add_header("Content-Type", "text/plain;charset=UTF-8")
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        data: bytes = resp.read()
        return data


async def test_events_queued_for_a_poll_are_one_message(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Hook ``queue_lazy`` (``Packet.encode_cache``): on long-polling, the events
    pushed before a poll are one ``ev`` MESSAGE, sealed when the poll takes it."""
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    assert dispatcher.token is not None
    base = f"{server.url}/socket.io/?EIO=4&transport=polling"
    sid = orjson.loads(_poll(base)[1:])["sid"]
    url = f"{base}&sid={sid}"
    _poll(url, b"40" + orjson.dumps({"token": dispatcher.token}))
    assert b'42["welcome"' in _poll(url) or b'42["welcome"' in _poll(url)
    follow = {"type": "follow", "incidents": [{"incident": incident}]}
    _poll(url, b'421["cmd",' + orjson.dumps(follow) + b"]")
    assert b"431[" in _poll(url)

    acks = await asyncio.gather(*(dispatcher.post(incident, f"m{i}") for i in range(5)))
    packets = _poll(url).split(b"\x1e")
    events = [p for p in packets if p.startswith(b'42["ev",')]
    assert len(events) == 1, packets
    seqs = [e["seq"] for e in orjson.loads(events[0][2:])[1]]
    assert seqs == sorted(a["seq"] for a in acks)


async def test_shutdown_ends_the_websocket_without_a_close_packet(
    fresh_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Hook ``end_transport``: the ``shutdown`` notice, then a WebSocket close
    frame, and neither an Engine.IO CLOSE (``1``) nor a Socket.IO DISCONNECT
    (``41``), after which standard clients would not reconnect."""
    login = await connect(clients, fresh_server, "dispatch", live=False)
    assert login.token is not None
    ws = connect_raw(fresh_server, login.token)
    stopper = threading.Thread(target=fresh_server.stop)
    stopper.start()
    try:
        data = ws.drain()
    finally:
        stopper.join()
        ws.close()
    frames = parse_frames(_whole(data))
    texts = [p for op, p, _ in frames if op == 0x1]
    assert any(t.startswith(b'42["notice",{"code":"shutdown"') for t in texts), texts
    assert frames[-1][0] == 0x8, "the WebSocket is closed with a close frame"
    assert b"1" not in texts, "no Engine.IO CLOSE"
    assert not any(t.startswith(b"41") for t in texts), "no Socket.IO DISCONNECT"


async def test_websocket_sessions_write_directly(
    inproc: InProcess, clients: list[LiaisonClient]
) -> None:
    """Hooks ``_record_websocket_transport`` and ``direct_transport``: a
    WebSocket session's events bypass engine.io's queue, which the fan-out's
    speed rests on. (Long-polling: test_events_queued_for_a_poll_are_one_message.)"""
    srv: Any = inproc  # connect() only needs .url
    await connect(clients, srv, "dispatch")
    (session,) = inproc.parts.gateway.sessions.values()
    assert session.outbox._conn.direct_transport() is not None


async def test_an_ack_queues_behind_an_ack_engineio_has_not_written(
    inproc: InProcess, clients: list[LiaisonClient]
) -> None:
    """Hooks ``Connection.queue_ack``, ``acks_queued``: while an ack waits in
    engine.io's queue (queued during an upgrade, say), the next one queues
    behind it instead of overtaking it on the direct path; once the writer has
    taken it, acks go direct again."""
    srv: Any = inproc
    await connect(clients, srv, "dispatch")
    (session,) = inproc.parts.gateway.sessions.values()
    outbox, conn = session.outbox, session.outbox._conn
    assert conn.direct_transport() is not None
    assert conn.acks_queued == 0
    conn.queue_ack("39001[{}]")
    outbox.ack("39002[{}]")  # no await in between: the writer has not run
    assert conn.acks_queued == 2
    assert outbox._acks == []
    await until(lambda: conn.acks_queued == 0, 5, "engine.io's writer takes both")
    outbox.ack("39003[{}]")
    assert outbox._acks != []
    assert conn.acks_queued == 0


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_the_official_js_client_speaks_to_the_seam(
    server: LiaisonServer, clients: list[LiaisonClient], transport: str
) -> None:
    """socket.io-client 4 (client_web's lock) on each transport: CONNECT with
    auth, ``welcome``, ``cmd`` with acks (CheckedPacket, ``_handle_event_internal``,
    ``send_ack``), an unknown event answered, ``ev`` frames it can parse."""
    if not (ROOT / "client_web" / "node_modules" / "socket.io-client").is_dir():
        pytest.skip("socket.io-client is not installed: run `make client`")
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    assert dispatcher.token is not None
    script = str(ROOT / "tests" / "integration" / "js_client.cjs")
    proc = await asyncio.create_subprocess_exec(
        "node",
        script,
        server.url,
        dispatcher.token,
        incident,
        transport,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    seen = orjson.loads(out)
    assert seen["transport"] == transport
    assert seen["encoding"] == "json"
    assert seen["follow"] is True
    assert seen["post"]["ok"] is True
    assert seen["unknown"]["error"]["code"] == "unknown_type"
    assert seen["seen"] == list(range(1, seen["post"]["seq"] + 1))


async def test_a_polling_clients_own_close_answers_its_pending_poll(
    inproc: InProcess, clients: list[LiaisonClient]
) -> None:
    """Hook ``_receive_nothing_once_closed``: after a long-polling client's own
    Engine.IO CLOSE, its GET waiting for packets is answered at once. It was
    held until the poll timed out (ping interval + timeout, 35 s by default)
    and then answered 400, holding the request all that time."""
    srv: Any = inproc  # connect() only needs .url
    login = await connect(clients, srv, "dispatch", live=False)
    assert login.token is not None
    base = f"{inproc.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            sid = orjson.loads((await resp.read())[1:])["sid"]
        url = f"{base}&sid={sid}"
        async with http.post(url, data=b"40" + orjson.dumps({"token": login.token})) as resp:
            assert resp.status == 200
        async with http.get(url) as resp:  # CONNECT, welcome
            assert b"40{" in await resp.read()

        async def pending_poll() -> int:
            async with http.get(url) as resp:
                await resp.read()
                return resp.status

        poll = asyncio.create_task(pending_poll())
        queue = inproc.parts.gateway.sio.eio.sockets[sid].queue
        await until(lambda: bool(queue._getters), 5, "the GET waits for packets")
        async with http.post(url, data=b"1") as resp:
            assert resp.status == 200
        async with asyncio.timeout(3):
            assert await poll == 200


async def test_a_poll_of_a_closed_session_is_a_quiet_400(fresh_server: LiaisonServer) -> None:
    """engineio logged an ERROR naming the sid for the first poll of a session it
    had closed ("'Session is disconnected' <sid>"), and for an unknown one."""
    watch = LogWatch(fresh_server.log_path)
    base = fresh_server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as r:
            sid = orjson.loads((await r.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        async with http.post(url, data="1") as r:  # the client's own CLOSE
            assert r.status == 200
        for _ in range(2):  # closed, then forgotten
            async with http.get(url) as r:
                assert r.status == 400
        async with http.get(f"{base}&sid=unknown-{sid}") as r:
            assert r.status == 400
    logged = watch.new_text()
    assert sid not in logged
    assert "Session is disconnected" not in logged
    assert not watch.problems()


async def test_an_idle_websocket_session_keeps_no_read_task_and_no_queue_buffers(
    inproc: InProcess, clients: list[LiaisonClient]
) -> None:
    """Hooks ``_record_websocket_transport`` (its ``_serve_websocket`` and
    ``_OnDemandWriter``) and ``SocketServer._engineio_server_class``:
    engineio's loop kept a task per idle connection for the pending read,
    another for its writer, and an ``asyncio.Queue`` with four empty deques;
    aiohttp kept the connection's HTTP parser. Together they were most of what
    an idle connection cost."""
    srv: Any = inproc
    for name in ("dispatch", "officer", "outreach"):
        await connect(clients, srv, name)
    readers = [t for t in asyncio.all_tasks() if "websocket_wait" in repr(t.get_coro())]
    assert readers == [], "a read runs in the session's own task"
    sleepers = [t for t in asyncio.all_tasks() if "_send_ping" in repr(t.get_coro())]
    assert sleepers == [], "the next ping waits on a timer, not in a task"
    sockets: list[Any] = list(inproc.parts.gateway.sio.eio.sockets.values())
    assert len(sockets) == 3
    for sock in sockets:
        queue: SocketQueue = sock.queue
        assert isinstance(queue, SocketQueue)
        await until(queue.empty, 5, "the queue drains")
        assert sock.queue._items is None
        assert sock.queue._getters is None, "no writer waits on it"
        request = inproc.parts.gateway.sio.environ[sock.sid]["aiohttp.request"]
        assert request.protocol._parser is None, "no HTTP parser once upgraded"
        assert request.protocol._messages == (), "nor a queue of HTTP requests"
    writers = [t for t in asyncio.all_tasks() if "_write_queued" in repr(t.get_coro())]
    await until(lambda: not any(not t.done() for t in writers), 5, "the writers end")
    # A packet queued (a ping, a notice) starts a writer, which sends it and ends.
    sock = sockets[0]
    await sock.send(eio_packet.Packet(eio_packet.NOOP))
    await until(lambda: sock.queue.empty() and sock.queue._unfinished == 0, 5, "sent")
    await until(
        lambda: not [t for t in asyncio.all_tasks() if "_write_queued" in repr(t.get_coro())],
        5,
        "the writer ended",
    )


async def test_a_silent_websocket_client_is_closed_after_interval_plus_timeout(
    tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    """The read deadline of ``_serve_websocket``: a client that stops answering
    pings is closed after ping interval + ping timeout, as engineio's own loop
    did; one that answers them stays."""
    srv = LiaisonServer(
        tmp_path / "data", env={"LIAISON_PING_INTERVAL_S": "1", "LIAISON_PING_TIMEOUT_S": "1"}
    )
    srv.start()
    try:
        login = await connect(clients, srv, "outreach", live=False)
        assert login.token is not None
        answering, silent = connect_raw(srv, login.token), connect_raw(srv, login.token)
        started = time.monotonic()

        def answer_pings(seconds: float) -> int:
            pings = 0
            answering.sock.settimeout(5)
            while time.monotonic() - started < seconds:
                text = answering.recv_text()  # raises once closed by the server
                assert text.startswith("2"), text  # only pings
                answering.send_text("3")
                pings += 1
            return pings

        answered = asyncio.create_task(asyncio.to_thread(answer_pings, 5.0))
        # Until the close frame (FIN + opcode 8): aiohttp then waits for the
        # client's own close frame before it drops the TCP connection.
        seen = await asyncio.to_thread(silent.drain, b"\x88")
        assert b"\x88" in seen
        assert 1.5 < time.monotonic() - started < 8  # engineio: interval + timeout, 2 s
        assert await answered >= 3, "the answering client was served throughout"
        answering.close()
        silent.close()
    finally:
        srv.stop()
    assert srv.errors_logged() == []


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_connected_session_keeps_only_its_request_of_the_environ(
    inproc: InProcess, transport: str
) -> None:
    """Hook ``SocketServer._keep_only_the_request``: python-socketio kept every
    header of a session's first request for the session's life."""
    client = LiaisonClient(inproc.url, transports=[transport])
    try:
        await client.login("dispatch", "liaison-demo")
        await client.connect()
        sio = inproc.parts.gateway.sio
        (environ,) = sio.environ.values()
        assert set(environ) <= set(sio_seam.KEPT_ENVIRON)
        assert "aiohttp.request" in environ
        incident = await new_incident(client)  # and it still serves
        assert (await client.follow(incident))["status"] == "ok"
    finally:
        await client.close()
