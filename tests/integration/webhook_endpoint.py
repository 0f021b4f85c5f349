"""A real webhook receiver on a loopback port: the example of deploy/examples, served.

The receiver (deploy/examples/webhook_receiver.py) is loaded from its file,
as an integrator would copy it. ``Endpoint`` serves it on a fixed port that
can be stopped (connections refused) and started again; the receiver's
memory of ids, like a real receiver's database, survives that.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections import defaultdict
from typing import Any

from aiohttp import web

from tests.conftest import ROOT, free_port

_SPEC = importlib.util.spec_from_file_location(
    "webhook_receiver", ROOT / "deploy" / "examples" / "webhook_receiver.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
receiver_module: Any = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(receiver_module)


class Endpoint:
    def __init__(self, secrets: list[str] | None = None) -> None:
        self.receiver: Any = receiver_module.Receiver(secrets or [])
        self.port = free_port()
        self.requests = 0
        self.in_flight = 0
        #: Cleared: every request waits until it is set (a slow receiver).
        self.gate = asyncio.Event()
        self.gate.set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/liaison"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        try:
            await self.gate.wait()
            response: web.Response = await self.receiver.receive(request)
            return response
        finally:
            self.in_flight -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def events(self, incident: str | None = None) -> list[dict[str, Any]]:
        """The events received (each once, in arrival order), of one incident or all."""
        return [e for _, e in self.receiver.events if incident in (None, e["incident"])]

    def seqs(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for _, event in self.receiver.events:
            out[event["incident"]].append(event["seq"])
        return dict(out)
