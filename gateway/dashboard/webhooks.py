"""``POST /webhooks/<platform>``: platforms that push their updates to the gateway over HTTP.

Telegram in ``mode: webhook`` and Slack in ``mode: events`` are served here, on the dashboard's
web server. These paths carry their own authentication — Telegram's secret-token header, Slack's
signed body — checked by the adapter (``platforms.webhooks``), so the dashboard's token and
loopback-host rules do not apply to them (a platform knows neither). A platform that is not
enabled in a webhook mode gets 404, a body over a megabyte 413. The adapter is looked up per
request, since the gateway replaces an adapter each time it reconnects one.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from platforms.base import PlatformAdapter
from platforms.webhooks import MAX_BODY_BYTES, WebhookReceiver

PREFIX = "/webhooks/"


def routes(adapters: Mapping[str, PlatformAdapter]) -> list[BaseRoute]:
    async def receive(request: Request) -> Response:
        name = request.path_params["platform"]
        adapter = adapters.get(name)
        if not isinstance(adapter, WebhookReceiver) or not adapter.receives_webhooks():
            return JSONResponse({"error": f"no webhook for {name!r} here (is "
                                          f"platforms.{name}.mode a webhook mode?)"},
                                status_code=404)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"error": "body too large"}, status_code=413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        reply = await adapter.receive_webhook(headers, bytes(body))
        return Response(reply.body, status_code=reply.status, media_type=reply.content_type)

    return [Route(PREFIX + "{platform}", receive, methods=["POST"])]
