"""Engine.IO behaviour that python-engineio does not expose as settings.

* permessage-deflate: engineio's aiohttp driver creates ``WebSocketResponse``
  with aiohttp's default ``compress=True``. Compressing attacker-chosen text
  next to secrets on one connection is the CRIME/BREACH class of risk, and it
  costs CPU on every frame of the fan-out; we turn it off.
* The WebSocket transport of each engine.io socket is recorded on the socket
  (``liaison_transport``), so the outbox can write a frame built once for many
  recipients straight to it, instead of one queue item, one writer wake-up and
  one frame build per recipient (see outbox.py).
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

_PATCHED = "_liaison_patched"


def tune_engineio() -> None:
    """Idempotent: applied once per process by create_app."""
    eio_aiohttp.WebSocketResponse = functools.partial(web.WebSocketResponse, compress=False)
    if getattr(AsyncSocket, _PATCHED, False):
        return
    original = AsyncSocket._websocket_handler

    async def recording_handler(self: Any, ws: Any) -> Any:
        request = getattr(ws, "environ", {}).get("aiohttp.request")
        self.liaison_transport = request.transport if request is not None else None
        try:
            return await original(self, ws)
        finally:
            self.liaison_transport = None

    AsyncSocket._websocket_handler = recording_handler
    setattr(AsyncSocket, _PATCHED, True)


def websocket_transport(eio_socket: Any) -> Any:
    """The socket's WebSocket transport once it may be written directly, else None."""
    transport = getattr(eio_socket, "liaison_transport", None)
    if transport is None or not eio_socket.upgraded or eio_socket.upgrading:
        return None
    if eio_socket.closed or transport.is_closing():
        return None
    return transport
