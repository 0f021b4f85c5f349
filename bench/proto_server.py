"""``liaison serve`` with the bench-only prototype transport (bench/proto_sio.py).

Same gateway, outbox, pipeline and storage as the product; only python-socketio
behind the seam is replaced, so the bench compares transport with transport.
"""

from __future__ import annotations

import sys

import server.app
import server.transport.gateway
from bench.proto_sio import ProtoSocketServer
from server.cli import main


def _no_hooks() -> None:
    """The prototype has no python-engineio to hook."""


if __name__ == "__main__":
    setattr(server.transport.gateway, "SocketServer", ProtoSocketServer)  # noqa: B010
    setattr(server.app, "install_engineio_hooks", _no_hooks)  # noqa: B010
    sys.exit(main(sys.argv[1:]))
