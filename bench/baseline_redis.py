"""The cross-node baseline: the plain python-socketio server on ``socketio.AsyncRedisManager``.

This is what the python-socketio documentation recommends for several server
processes: every process gets the same ``AsyncRedisManager(url)``, and
``sio.emit(..., room=...)`` reaches the room's members on every process. It
is the reference point for workload E (bench/README.md): two of these
processes on one Redis, the publishers connected to one and the subscribers to
the other, exactly as Liaison's node A and node B.

The handlers are bench/baseline_socketio.py's, unchanged (same ``cmd``
shapes, library defaults, nothing stored); only the client manager differs.
What the manager does per emit, in python-socketio 5.18:

* the emitting process delivers to its own local members of the room, then
  ``PUBLISH``es the whole emit (event, data, room, namespace...) as JSON on
  one channel (``socketio``) that **every** process subscribes to;
* every other process decodes every message on that channel, whatever the
  room, and emits it to its local members of the room (none: nothing sent).

So it is fire-and-forget pub/sub (at-most-once, silent on loss, see
/work/shared/PITFALLS.md), with no per-room channel, no sequence and no
replay. Until python-socketio 5.14 (2025) that message was a ``pickle``, a
remote-code-execution risk for anyone who can write to the Redis channel
(CVE-2025-61765); 5.14 and later, as installed here, use JSON.

Run: ``python -m bench.baseline_redis --port P --redis-url redis://127.0.0.1:R/0``.
"""

from __future__ import annotations

import argparse

import socketio
from aiohttp import web

from bench.baseline_socketio import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True, help="redis://host:port/db")
    args = parser.parse_args(argv)
    manager = socketio.AsyncRedisManager(args.redis_url)
    print(
        f"python-socketio + AsyncRedisManager on http://{args.host}:{args.port}, "
        f"Redis {args.redis_url}",
        flush=True,
    )
    web.run_app(create_app(manager), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
