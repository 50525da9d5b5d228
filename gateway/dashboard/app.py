"""The dashboard as one Starlette app: the REST API, the live event stream, the page and the chat.

``create_app`` is used by ``relayboard dashboard`` (alone, under uvicorn) and by the gateway
daemon (mounted beside the adapters, with the web chat adapter it runs). The app owns the
``Boards`` it opens itself and closes them on shutdown; boards passed in stay the caller's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import Config
from gateway.dashboard import api, ops, schedule_api
from gateway.dashboard.live import LiveHub
from gateway.dashboard.security import Guard, check_bind
from gateway.dashboard.state import DashboardState
from gateway.dashboard.webhooks import PREFIX as WEBHOOK_PREFIX
from gateway.dashboard.webhooks import routes as webhook_routes
from gateway.hooks.endpoint import HookFront
from gateway.kernel_settings import board_options, storage, time_zone
from kanban import Boards
from kanban.agents.profiles import Profiles
from platforms.base import PlatformAdapter
from platforms.web import WebAdapter

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Everything the page loads comes from this server: no CDN, no inline script.
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
DEFAULT_HEADERS = ((b"content-security-policy", CSP.encode()),
                   (b"x-content-type-options", b"nosniff"),
                   (b"referrer-policy", b"same-origin"),
                   (b"x-frame-options", b"DENY"))


def create_app(home: Path, config: Config, *, boards: Boards | None = None,
               web_adapter: WebAdapter | None = None, poll_seconds: float = 0.5,
               operations: ops.Operations | None = None,
               webhooks: Mapping[str, PlatformAdapter] | None = None) -> Starlette:
    """The dashboard for ``home``. Raises ``ConfigError`` for an off-loopback host without a
    token (so the daemon, which mounts this app, refuses to start as the CLI does).
    ``operations`` (the gateway's) adds ``/metrics``, ``/healthz`` and ``/readyz``; ``webhooks``
    (the gateway's live adapters) adds ``POST /webhooks/<platform>``."""
    dash = config.dashboard
    check_bind(dash.host, dash.token, dash.token_env)
    owned = boards is None
    state = DashboardState(home=home, config=config,
                           boards=boards or Boards(
                               home, board_options(config.kanban, config.delivery),
                               storage(config.storage)),
                           profiles=Profiles(home), live=LiveHub(poll_seconds=poll_seconds),
                           web_adapter=web_adapter)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.live.aclose()
            if owned:
                await state.boards.close()

    async def session(request: Request) -> Response:
        return JSONResponse({"chat": web_adapter is not None,
                             "default_board": state.config.kanban.default_board,
                             "operator": "dashboard",
                             "timezone": time_zone(state.config.kanban)})

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/api/session", session, methods=["GET"]),
        *api.routes(),
        *(ops.routes(operations) if operations is not None else []),
        *schedule_api.routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *(webhook_routes(webhooks) if webhooks is not None else []),
    ]
    if web_adapter is not None:
        routes.append(Mount("/chat", web_adapter.asgi_app()))

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error})  # type: ignore[dict-item]
    app.state.dashboard = state
    app.add_middleware(Guard, token=dash.token, boards=state.boards,
                       open_paths=ops.OPEN_PATHS if operations is not None else frozenset(),
                       own_auth_prefix=WEBHOOK_PREFIX if webhooks is not None else None)
    app.add_middleware(SecurityHeaders)
    # Outermost: inbound webhooks carry their own token, so they pass by the dashboard's rules.
    app.add_middleware(HookFront, config=lambda: state.config, boards=state.boards,
                       profiles=state.profiles)
    return app


async def close_streams(app: Starlette) -> None:
    """End every open event stream (board events and web chat), so a server shutting down does
    not wait out its grace period on browsers that never hang up. Call before stopping uvicorn."""
    state: DashboardState = app.state.dashboard
    await state.live.aclose()
    if state.web_adapter is not None:
        await state.web_adapter.close()


async def _http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code)


class SecurityHeaders:
    """Adds the content security policy and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # A response that set its own header keeps it: file responses carry a stricter
                # policy (a sandbox) than the page's.
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in DEFAULT_HEADERS
                            if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
