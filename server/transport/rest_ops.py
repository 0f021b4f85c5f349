"""Operator probes: ``/readyz`` (can this node take writes?) and ``/metrics``.

``/healthz`` (rest.py) stays the liveness probe it always was. ``/readyz``
answers 503 with the reasons when the node cannot do its job: the writer
gave up, the Redis subscriber or the revocation feed is down, or the node is
shutting down. A load balancer takes it out of rotation; nothing restarts it.

``/metrics`` is Prometheus' text format. With ``LIAISON_METRICS_TOKEN`` set it
requires ``Authorization: Bearer <token>``; without, it is open like
``/healthz``, and the operator keeps it off the public side (deploy/README.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from protocol.errors import ErrorCode, ProtocolError
from server.metrics import Metrics
from server.transport.rest import error_response, json_response


class OpsRoutes:
    def __init__(self, not_ready: Callable[[], list[str]], metrics: Metrics, token: str) -> None:
        self.not_ready, self.metrics_of, self.token = not_ready, metrics, token
        metrics.watch("liaison_ready", "1 while /readyz answers 200.", lambda: not self.not_ready())

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/readyz", self.readyz), web.get("/metrics", self.metrics)]

    async def readyz(self, _: web.Request) -> web.Response:
        reasons = self.not_ready()
        if reasons:
            return json_response({"status": "not_ready", "reasons": reasons}, 503)
        return json_response({"status": "ready"})

    async def metrics(self, request: web.Request) -> web.Response:
        if self.token and not self._authorised(request):
            err = ProtocolError(ErrorCode.UNAUTHENTICATED, "/metrics needs the metrics token")
            return error_response(err)
        body = generate_latest(self.metrics_of.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        return hmac.compare_digest(given.encode(), self.token.encode())
