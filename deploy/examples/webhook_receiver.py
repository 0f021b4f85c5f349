"""An example receiver of Liaison webhooks: verifies every signature, drops duplicates.

Run it (Python 3.11+, aiohttp)::

    WEBHOOK_SECRET=whsec_... python webhook_receiver.py --port 9000

and point a subscription at it (``liaison webhook add http://host:9000/ --org ...``).
It prints each new event as one JSON line. It depends on nothing of Liaison:
copy it, and replace ``handle_event`` with your own processing.

What a receiver must do (protocol/SPEC.md, "Webhooks"):

* Verify ``webhook-signature`` over ``{webhook-id}.{webhook-timestamp}.{raw body}``
  with HMAC-SHA256 and the base64-decoded part of the ``whsec_`` secret,
  comparing in constant time; accept if *any* listed ``v1,`` signature matches
  (during a rotation there are two). Refuse a timestamp more than five
  minutes from your clock. Answer 401 to anything that fails.
* Deduplicate by ``webhook-id``: delivery is at least once, so an event may
  come again (after a timeout, a restart). Answer 2xx to a duplicate too, or
  it is retried. This example remembers ids in memory; a real receiver keeps
  them with what it did (same transaction), for longer than the retry window.
* Answer quickly (2xx); do slow work afterwards. Until it answers 2xx, the
  next events of that subscription wait: order is kept per incident.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

TOLERANCE_S = 300


def signature_ok(secret: str, headers: Any, body: bytes, now_s: float) -> bool:
    """Whether the request carries a fresh signature by ``secret`` (Standard Webhooks v1)."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(now_s - int(stamp)) > TOLERANCE_S:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = headers.get("webhook-signature", "").split(" ")
    return any(hmac.compare_digest(expected, candidate) for candidate in given)


class Receiver:
    """Accepts signed deliveries; keeps each event once, in arrival order."""

    def __init__(
        self,
        secrets: list[str],
        handle_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.secrets = secrets
        self.handle_event = handle_event or (lambda _id, _event: None)
        self.seen: set[str] = set()
        #: (webhook-id, event) of every new event, in the order they came.
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.duplicates = 0
        self.refused = 0

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not any(signature_ok(s, request.headers, body, time.time()) for s in self.secrets):
            self.refused += 1
            return web.Response(status=401, text="bad signature")
        msg_id = request.headers["webhook-id"]
        if msg_id in self.seen:
            self.duplicates += 1
            return web.Response(status=204)
        event = json.loads(body)
        self.seen.add(msg_id)
        self.events.append((msg_id, event))
        self.handle_event(msg_id, event)
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.receive)
        return app


def _print_event(msg_id: str, event: dict[str, Any]) -> None:
    print(json.dumps({"webhook_id": msg_id, "event": event}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    # Several secrets (comma-separated) while you roll a rotation out.
    secrets = [s for s in os.environ.get("WEBHOOK_SECRET", "").split(",") if s]
    if not secrets:
        sys.exit("set WEBHOOK_SECRET to the subscription's whsec_ secret")
    receiver = Receiver(secrets, _print_event)
    web.run_app(receiver.app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
