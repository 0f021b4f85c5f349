"""Engine.IO settings that python-engineio does not expose.

permessage-deflate: engineio's aiohttp driver creates ``WebSocketResponse``
with aiohttp's default ``compress=True``. Compressing attacker-chosen text
next to secrets on one connection is the CRIME/BREACH class of risk, and it
costs CPU on every frame of the fan-out; we turn it off.
"""

from __future__ import annotations

import functools

from aiohttp import web
from engineio.async_drivers import aiohttp as eio_aiohttp


def disable_websocket_compression() -> None:
    eio_aiohttp.WebSocketResponse = functools.partial(web.WebSocketResponse, compress=False)
