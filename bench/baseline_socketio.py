"""The baseline: a plain python-socketio broadcast server, as most projects write one.

It exists so the benchmark can say how much faster (or slower) Liaison is than
the obvious implementation on the same machine in the same run. It is driven
by the same load client as Liaison and the Node reference, so it speaks the
same ``cmd`` shapes:

* ``{"type": "follow", "incidents": [{"incident": ID, ...}]}`` joins one room
  per incident;
* ``{"type": "message.post", "id", "incident", "text"}`` does
  ``await sio.emit("ev", [envelope], room=incident)`` and acks ``{ok, seq}``.

Library defaults on purpose (stdlib json, ``async_handlers=True``, one emit per
post): no persistence, no validation, no batching. That is the reference point
DESIGN.md ("Speed") quotes, not a tuned server.

Run: ``python -m bench.baseline_socketio --port P``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import socketio
from aiohttp import web


def create_app(client_manager: socketio.AsyncManager | None = None) -> web.Application:
    """Build the aiohttp app with the Socket.IO server attached.

    ``client_manager`` is the library's default (in-process rooms) unless
    given; bench/baseline_redis.py passes an ``AsyncRedisManager``.
    """
    sio = socketio.AsyncServer(
        client_manager=client_manager, async_mode="aiohttp", logger=False, engineio_logger=False
    )
    seqs: dict[str, int] = {}

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        return True  # any auth: the baseline measures fan-out, not login

    async def cmd(sid: str, data: Any = None) -> dict[str, Any]:
        if not isinstance(data, dict):
            return {"ok": False, "error": {"code": "malformed"}}
        if data.get("type") == "follow":
            return {"ok": True, "incidents": await _follow(sio, sid, data, seqs)}
        if data.get("type") == "message.post":
            return await _post(sio, data, seqs)
        return {"ok": False, "error": {"code": "unknown_type"}}

    sio.on("connect", connect)
    sio.on("cmd", cmd)
    app = web.Application()
    sio.attach(app)
    return app


async def _follow(
    sio: socketio.AsyncServer, sid: str, data: dict[str, Any], seqs: dict[str, int]
) -> list[dict[str, Any]]:
    """Join the room of every incident asked for."""
    results = []
    for target in data.get("incidents") or []:
        incident = str(target.get("incident"))
        await sio.enter_room(sid, incident)
        results.append({"incident": incident, "status": "ok", "head_seq": seqs.get(incident, 0)})
    return results


async def _post(
    sio: socketio.AsyncServer, data: dict[str, Any], seqs: dict[str, int]
) -> dict[str, Any]:
    """Number the post and broadcast it to the incident's room, the plain way."""
    incident = str(data.get("incident"))
    seq = seqs[incident] = seqs.get(incident, 0) + 1
    envelope = {
        "v": 1,
        "type": "message.posted",
        "incident": incident,
        "seq": seq,
        "ts": int(time.time() * 1000),
        "cid": data.get("id"),
        "body": {"text": data.get("text")},
    }
    await sio.emit("ev", [envelope], room=incident)
    return {"ok": True, "incident": incident, "seq": seq}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    print(f"python-socketio baseline on http://{args.host}:{args.port}", flush=True)
    web.run_app(create_app(), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
