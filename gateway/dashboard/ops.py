"""The operator's endpoints on the dashboard's server: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` is the Prometheus text format and passes the dashboard's access rules like any page
(a token when one is configured). ``/healthz`` and ``/readyz`` answer without a token, so a load
balancer or an orchestrator can probe a dashboard served beyond loopback; they say only ``ok``,
or ``not ready`` with the reasons (which part is not up yet, never an error's text).

They exist where a gateway runs (``relayboard gateway run``); the dashboard run alone has no
daemon to report on.
"""

from __future__ import annotations

import json
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

# Answered without a token (GET and HEAD only); see gateway.dashboard.security.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
NO_STORE = {"cache-control": "no-store"}


class Operations(Protocol):
    def readiness(self) -> list[str]:
        """Why the gateway is not ready; empty when it is."""

    async def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics, rendered now in the format ``accept`` prefers, and its content type."""


def routes(ops: Operations) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        # Answering at all is the point: the event loop that serves this runs everything else.
        return _json({"status": "ok"}, 200)

    async def readyz(request: Request) -> Response:
        reasons = ops.readiness()
        if reasons:
            return _json({"status": "not ready", "reasons": reasons}, 503)
        return _json({"status": "ready"}, 200)

    async def metrics(request: Request) -> Response:
        body, content_type = await ops.exposition(request.headers.get("accept", ""))
        return Response(body, headers={**NO_STORE, "content-type": content_type})

    return [Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/metrics", metrics, methods=["GET", "HEAD"])]


def _json(body: dict[str, object], status: int) -> Response:
    return Response(json.dumps(body), status_code=status, headers=NO_STORE,
                    media_type="application/json")
