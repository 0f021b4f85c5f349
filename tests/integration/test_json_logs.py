"""LIAISON_LOG_FORMAT=json: every line parses, names its event, and gives nothing away."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ADMIN_PASSWORD, LiaisonServer, connect, new_incident
from tests.waiting import until

#: What a line may never carry: the text of a post, a search term.
SECRET_TEXT = "the safe house is at 14 Quay Lane"
SEARCH_TERM = "quaylanesearchterm"


async def test_json_lines_name_events_and_carry_no_secrets(
    tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    srv = LiaisonServer(
        tmp_path / "data", env={"LIAISON_LOG_FORMAT": "json", "LIAISON_LOG_LEVEL": "INFO"}
    )
    srv.start()
    try:
        dispatcher = await connect(clients, srv, "dispatch")
        incident = await new_incident(dispatcher)
        await dispatcher.post(incident, SECRET_TEXT)
        await dispatcher.incidents(f"q={SEARCH_TERM}")
        guesser = LiaisonClient(srv.url)
        clients.append(guesser)
        with pytest.raises(CommandFailed):
            await guesser.login("officer", "not the password")
        admin = await connect(clients, srv, "admin", password=ADMIN_PASSWORD, live=False)
        users = await admin.request("GET", "/api/v1/users")
        officer = next(u for u in users["users"] if u["username"] == "officer")
        await admin.request("POST", f"/api/v1/users/{officer['id']}/disable")
        sid = dispatcher.sio.eio.sid
        polling = await dispatcher._session()
        async with polling.get(srv.url + "/socket.io/?EIO=4&transport=polling") as resp:
            assert resp.status == 200  # an Engine.IO poll (a new session)
        tokens = [c.token for c in (dispatcher, admin)]
        await dispatcher.close()
        await until(lambda: "connection.close" in srv.log_path.read_text(), 10, "close logged")
    finally:
        srv.stop()

    text = srv.log_path.read_text()
    lines = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    # The only other lines are what `liaison serve` prints to stdout for a person.
    others = [line for line in text.splitlines() if line and not line.startswith("{")]
    assert all(line.startswith(("Liaison on", "  ")) for line in others), others

    for line in lines:
        assert {"ts", "level", "logger", "event", "msg"} <= line.keys(), line
    events = [line["event"] for line in lines]
    for name in (
        "server.start",
        "auth.login",
        "user.disable",
        "connection.open",
        "connection.close",
        "shutdown.begin",
        "shutdown.done",
    ):
        assert name in events, name
    logins = [line for line in lines if line["event"] == "auth.login"]
    assert {line["outcome"] for line in logins} == {"ok", "unauthenticated"}

    for secret in (SECRET_TEXT, SEARCH_TERM, sid, *tokens):
        assert secret
        assert secret not in text, f"{secret!r} is in the log"
    requests = [line for line in lines if line["event"] == "http.request"]
    paths = [line["path"] for line in requests]
    assert "/api/v1/incidents" in paths
    assert "/healthz" not in paths, "probes stay out of the access log"
    # Engine.IO polls too: what is left of /socket.io/ is one line per WebSocket.
    sockets = [line["status"] for line in requests if line["path"] == "/socket.io/"]
    assert sockets == [101], sockets
