"""Raw Socket.IO over :class:`RawWebSocket`, and a check on what the server logged.

For tests that must send frames no client library would produce, and then
assert the server answered them with a typed error and logged no traceback.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.conftest import LiaisonServer
from tests.integration.rawws import RawWebSocket

SOCKET_PATH = "/socket.io/?EIO=4&transport=websocket"


def open_raw(srv: LiaisonServer) -> RawWebSocket:
    """An Engine.IO WebSocket past the open packet, not yet connected to ``/``."""
    ws = RawWebSocket("127.0.0.1", srv.port, SOCKET_PATH)
    assert ws.recv_text().startswith("0")
    return ws


def connect_raw(srv: LiaisonServer, token: str, encoding: str = "json") -> RawWebSocket:
    """A raw socket connected to ``/`` and past ``welcome``."""
    ws = open_raw(srv)
    ws.send_text("40" + orjson.dumps({"token": token, "encoding": encoding}).decode())
    assert ws.recv_text().startswith("40")
    assert ws.recv_text().startswith('42["welcome"')
    return ws


def next_packet(ws: RawWebSocket, timeout: float = 5.0) -> str:
    """The next Socket.IO packet, skipping Engine.IO pings; ``""`` once closed."""
    ws.sock.settimeout(timeout)
    while True:
        try:
            text = ws.recv_text()
        except ConnectionError:  # a TimeoutError (no answer at all) propagates
            return ""
        if text.startswith("2"):  # Engine.IO PING
            ws.send_text("3" + text[1:])
            continue
        if text.startswith("4"):  # Engine.IO MESSAGE: a Socket.IO packet
            return text[1:]
        if text == "1":  # Engine.IO CLOSE
            return ""
        # PONG or NOOP: answers to the client's own Engine.IO PING or UPGRADE


class LogWatch:
    """What the server wrote to its log since this object was made."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.mark = log_path.stat().st_size

    def new_text(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self.mark)
            return log.read().decode("utf-8", "replace")

    def problems(self) -> list[str]:
        """Tracebacks and ERROR lines: bad input must produce neither."""
        return [
            line
            for line in self.new_text().splitlines()
            if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
        ]
