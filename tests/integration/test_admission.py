"""Engine.IO admission (issue 9, item 5): caps on unauthenticated sessions, a
connection rate per address, a per-user cap and throttled bad tokens.
Real server processes, real sockets (server/transport/admission.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import DEMO_PASSWORD, LiaisonServer
from tests.integration.wire import LogWatch, next_packet, open_raw

ROOT = Path(__file__).resolve().parents[2]
POLLING = "/socket.io/?EIO=4&transport=polling"
WEBSOCKET = "/socket.io/?EIO=4&transport=websocket"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., LiaisonServer]]:
    """Starts a server with the given LIAISON_* settings; stops it afterwards."""
    started: list[LiaisonServer] = []

    def run(**settings: Any) -> LiaisonServer:
        env = {f"LIAISON_{k.upper()}": str(v) for k, v in settings.items()}
        srv = LiaisonServer(tmp_path / f"data{len(started)}", env=env)
        started.append(srv)
        srv.start()
        return srv

    yield run
    for srv in started:
        srv.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def open_polling(http: aiohttp.ClientSession, srv: LiaisonServer) -> tuple[int, Any, str]:
    """(status, body, Retry-After) of a new polling session's first GET."""
    async with http.get(srv.url + POLLING) as r:
        text = await r.text()
        body = orjson.loads(text[1:]) if r.status == 200 else orjson.loads(text)
        return r.status, body, r.headers.get("Retry-After", "")


async def login(http: aiohttp.ClientSession, srv: LiaisonServer, user: str) -> str:
    body = {"username": user, "password": DEMO_PASSWORD}
    async with http.post(srv.url + "/api/v1/auth/login", json=body) as r:
        assert r.status == 200
        token: str = (await r.json())["token"]
        return token


def connect_answer(srv: LiaisonServer, token: str) -> tuple[Any, Any]:
    """A raw WebSocket's CONNECT with ``token``: ("40", None) or ("44", error)."""
    ws = open_raw(srv)
    ws.send_text("40" + orjson.dumps({"token": token}).decode())
    packet = next_packet(ws)
    if packet.startswith("0"):
        assert next_packet(ws).startswith('2["welcome"')
        return ws, None
    assert packet.startswith("4"), packet
    ws.sock.close()
    return None, orjson.loads(packet[1:])["data"]


def assert_refused(status: int, body: Any, retry_after: str, want_status: int = 429) -> None:
    assert status == want_status, body
    assert body["code"] == "rate_limited"
    assert int(retry_after) >= 1
    assert body["detail"]["retry_after"] == int(retry_after)


async def test_unauthenticated_sessions_per_address_are_capped_and_freed_by_connecting(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    srv = start(limit_loopback_connects=1, max_unauthenticated_per_address=5, connect_rate_per_s=0)
    watch = LogWatch(srv.log_path)
    sids = []
    for _ in range(5):
        status, body, _ = await open_polling(http, srv)
        assert status == 200
        sids.append(body["sid"])
    assert_refused(*await open_polling(http, srv))
    # One session authenticates (CONNECT with a valid token): its place is free.
    token = await login(http, srv, "dispatch")
    url = f"{srv.url}/socket.io/?EIO=4&transport=polling&sid={sids[0]}"
    async with http.post(url, data="40" + orjson.dumps({"token": token}).decode()) as r:
        assert r.status == 200
    async with http.get(url) as r:
        assert (await r.text()).startswith("40")
    status, body, _ = await open_polling(http, srv)
    assert status == 200
    assert_refused(*await open_polling(http, srv))
    logged = watch.new_text()
    assert not any(sid in logged for sid in [*sids, body["sid"]]), "a sid was logged"
    assert token not in logged
    assert not watch.problems()


async def test_the_global_cap_applies_to_loopback_too(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    srv = start(max_unauthenticated_sessions=3)
    for _ in range(3):
        assert (await open_polling(http, srv))[0] == 200
    assert_refused(*await open_polling(http, srv), want_status=503)


async def test_a_session_that_does_not_authenticate_in_time_is_closed_quietly(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    srv = start(connect_deadline_s=1, max_unauthenticated_sessions=1, log_level="INFO")
    watch = LogWatch(srv.log_path)
    status, body, _ = await open_polling(http, srv)
    assert status == 200
    url = f"{srv.url}/socket.io/?EIO=4&transport=polling&sid={body['sid']}"
    async with http.get(url) as r:  # waits for packets: the CLOSE answers it
        assert r.status == 200
        assert (await r.text()) == "1"
    async with http.get(url) as r:  # the first poll of a closed session
        assert r.status == 400
    async with http.get(url) as r:  # and of a forgotten one
        assert r.status == 400
    # Its place is free again (the global cap was 1): a raw WebSocket that
    # never connects takes it, and is closed too.
    ws = open_raw(srv)
    assert next_packet(ws, timeout=5) == ""
    ws.sock.close()
    logged = watch.new_text()
    assert "did not authenticate in time" in logged
    assert body["sid"] not in logged
    assert "Session is disconnected" not in logged
    assert not watch.problems()


async def test_new_sessions_per_address_are_rate_limited_on_both_transports(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    srv = start(limit_loopback_connects=1, connect_rate_per_s=0.5, connect_burst=3)
    for _ in range(3):
        assert (await open_polling(http, srv))[0] == 200
    assert_refused(*await open_polling(http, srv))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(srv.url + WEBSOCKET)
    assert refused.value.status == 429
    assert refused.value.headers is not None
    assert int(refused.value.headers["Retry-After"]) >= 1


async def test_loopback_is_exempt_from_the_per_address_rules_by_default(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    srv = start(max_unauthenticated_per_address=2, connect_rate_per_s=1, connect_burst=1)
    for _ in range(5):
        assert (await open_polling(http, srv))[0] == 200


async def test_the_address_behind_a_trusted_proxy_is_the_forwarded_one(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    srv = start(trusted_proxies="127.0.0.1", max_unauthenticated_per_address=2)
    for hop in ("203.0.113.7", "203.0.113.7"):
        async with http.get(srv.url + POLLING, headers={"X-Forwarded-For": hop}) as r:
            assert r.status == 200
    # A forged left-most hop does not make a new address: the right-most counts.
    forged = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    async with http.get(srv.url + POLLING, headers=forged) as r:
        assert r.status == 429
    async with http.get(srv.url + POLLING, headers={"X-Forwarded-For": "203.0.113.8"}) as r:
        assert r.status == 200


async def test_a_user_holds_a_capped_number_of_connections(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    srv = start(max_connections_per_user=2)
    token = await login(http, srv, "dispatch")
    first, _ = connect_answer(srv, token)
    second, _ = connect_answer(srv, token)
    _, error = connect_answer(srv, token)
    assert error["code"] == "rate_limited"
    assert error["detail"]["retry_after"] >= 1
    assert error["detail"]["limit"] == 2
    # The oldest is not kicked: it still answers.
    assert first is not None
    assert second is not None
    first.send_text('421["nope"]')
    assert next_packet(first).startswith("31")
    second.sock.close()
    # Another user is not affected; and one closed connection frees a place.
    other, _ = connect_answer(srv, await login(http, srv, "officer"))
    assert other is not None
    other.sock.close()
    first.sock.close()
    await asyncio.sleep(0)  # let the server notice; retried below until it has
    for _ in range(200):
        ws, error = connect_answer(srv, token)
        if ws is not None:
            ws.sock.close()
            break
        await asyncio.sleep(0.05)
    assert error is None


async def test_connects_with_tokens_we_never_signed_are_throttled_per_address(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    srv = start(login_address_max_failures=3)
    answers = [connect_answer(srv, f"v1.forged{n}.sig")[1]["code"] for n in range(4)]
    assert answers == ["unauthenticated", "unauthenticated", "rate_limited", "rate_limited"]
    _, error = connect_answer(srv, "not-a-token")
    assert error["detail"]["retry_after"] >= 1
    # A valid token still connects from the same address.
    ws, error = connect_answer(srv, await login(http, srv, "dispatch"))
    assert error is None
    assert ws is not None
    ws.sock.close()


async def test_refusals_are_cheap_when_flooded(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession
) -> None:
    """500 new sessions as fast as one client can: at most the caps are held."""
    srv = start(limit_loopback_connects=1, max_unauthenticated_per_address=50)

    async def one() -> int:
        async with http.get(srv.url + POLLING) as r:
            await r.read()
            return r.status

    statuses = await asyncio.gather(*(one() for _ in range(500)))
    assert statuses.count(200) <= 50
    assert set(statuses) <= {200, 429}
    async with http.get(srv.url + "/healthz") as r:
        assert r.status == 200


async def js_refusal(srv: LiaisonServer, token: str, transport: str) -> Any:
    """What socket.io-client 4 (client_web's lock) reports for a refused connect."""
    script = str(ROOT / "tests" / "integration" / "js_refused.cjs")
    proc = await asyncio.create_subprocess_exec(
        "node",
        script,
        srv.url,
        token,
        transport,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return orjson.loads(out)


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_official_js_client_understands_both_refusals(
    start: Callable[..., LiaisonServer], http: aiohttp.ClientSession, transport: str
) -> None:
    srv = start(
        max_connections_per_user=1,
        limit_loopback_connects=1,
        connect_rate_per_s=0.01,
        connect_burst=3,
    )
    token = await login(http, srv, "dispatch")
    held, _ = connect_answer(srv, token)  # takes the user's one place (and a token)
    assert held is not None
    refused = await js_refusal(srv, token, transport)  # the second token
    assert refused["data"]["code"] == "rate_limited"
    assert refused["data"]["detail"]["limit"] == 1
    assert (await open_polling(http, srv))[0] == 200  # the last token of the burst
    refused = await js_refusal(srv, token, transport)  # the handshake itself: 429
    assert refused["data"] is None
    if transport == "polling":  # the browser's WebSocket API hides the status
        assert refused["status"] == 429
    held.sock.close()
