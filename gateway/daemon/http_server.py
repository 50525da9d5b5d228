"""The dashboard (and the web chat mounted in it) as one of the daemon's components.

Uvicorn's server runs inside the daemon's task group. It never installs its own signal handlers
(the daemon owns SIGINT/SIGTERM); when the component is cancelled the server is told to exit and
given a short grace period, after the open event streams were ended (browsers never hang up on
their own). A port already in use fails the component with one clear line, and the supervisor
retries it with backoff — the rest of the daemon keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import anyio
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from gateway.config import Config
from gateway.dashboard.security import check_bind
from gateway.errors import DashboardUnavailable

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from gateway.dashboard.ops import Operations
    from kanban.home import Boards
    from platforms.base import PlatformAdapter
    from platforms.web import WebAdapter

log = logging.getLogger(__name__)

WEB_HISTORY_DIR = "web-chat"  # the same folder `relayboard dashboard` uses


class DashboardServer:
    def __init__(self, config: Config, boards: Boards, web: WebAdapter | None,
                 *, grace_seconds: float = 3.0, poll_seconds: float = 0.5,
                 operations: Operations | None = None,
                 webhooks: Mapping[str, PlatformAdapter] | None = None) -> None:
        dash = config.dashboard
        check_bind(dash.host, dash.token, dash.token_env)  # refuse before anything starts
        self.config = config
        self.boards = boards
        self.web = web
        self.grace_seconds = grace_seconds
        self.poll_seconds = poll_seconds
        self.operations = operations
        self.webhooks = webhooks  # the gateway's live adapters, for POST /webhooks/<platform>
        self.port: int | None = None  # the bound port, once serving (dashboard.port may be 0)
        self.listening = anyio.Event()  # set the first time the port is bound
        self.stopping = False
        self.app: Starlette | None = None

    @property
    def url(self) -> str | None:
        return None if self.port is None else url_of(self.config.dashboard.host, self.port)

    def _app(self) -> Starlette:
        if self.app is None:
            from gateway.dashboard import create_app

            self.app = create_app(self.config.home, self.config, boards=self.boards,
                                  web_adapter=self.web, poll_seconds=self.poll_seconds,
                                  operations=self.operations, webhooks=self.webhooks)
        return self.app

    async def run(self) -> None:
        app = self._app()
        dash = self.config.dashboard
        try:
            sock = bind(dash.host, dash.port)
        except OSError as exc:
            raise DashboardUnavailable(dash.host, dash.port, exc.strerror) from None
        server = EmbeddedServer(app, dash.host, dash.port, grace_seconds=self.grace_seconds)
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        self.port = sock.getsockname()[1]
        self.listening.set()
        source = f"${dash.token_env}" if dash.token_file is None else str(dash.token_file)
        token_hint = f" (open it once with ?token=<the token in {source}>)" if dash.token else ""
        log.info("dashboard and web chat on %s%s", self.url, token_hint)
        try:
            await asyncio.shield(serving)
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop(server, serving, app)
                sock.close()
                self.port = None

    async def _stop(self, server: uvicorn.Server, serving: asyncio.Future[None],
                    app: Starlette) -> None:
        from gateway.dashboard import close_streams

        if self.stopping:
            await close_streams(app)  # ends the board streams and the web chat's
        else:
            state = app.state.dashboard
            await state.live.aclose()
        server.should_exit = True
        with anyio.move_on_after(self.grace_seconds + 2):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await serving
        if not serving.done():
            serving.cancel()


class EmbeddedServer(uvicorn.Server):
    """Uvicorn serving the dashboard app, as the daemon and ``relayboard dashboard`` both run it.

    ``own_signals``: uvicorn handles SIGINT/SIGTERM itself (the command run alone); otherwise the
    daemon's handlers stay in charge. ``own_logging``: uvicorn sets up its own log handlers;
    otherwise its records reach the daemon's handler (its format, its redaction).
    ``before_shutdown`` runs before uvicorn waits for the open connections, to end the event
    streams (browsers never hang up on their own).
    """

    def __init__(self, app: Starlette, host: str, port: int, *, grace_seconds: float = 3.0,
                 own_signals: bool = False, own_logging: bool = False,
                 before_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="on",
            timeout_graceful_shutdown=int(grace_seconds) or 1, access_log=False,
            log_config=LOGGING_CONFIG if own_logging else None))
        self.own_signals = own_signals
        self.before_shutdown = before_shutdown

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self.own_signals:
            with super().capture_signals():
                yield
        else:
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            await self.before_shutdown()
        await super().shutdown(sockets)


def url_of(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def web_adapter(config: Config) -> WebAdapter | None:
    """The web chat adapter when ``platforms.web.enabled`` (the default), history in the home."""
    from platforms.web import WebAdapter

    platform = config.platforms.get("web")
    if platform is None or not platform.enabled:
        return None
    return WebAdapter(history_dir=config.home / WEB_HISTORY_DIR,
                      history_limit=int(platform.options.get("history_limit", 500)),
                      allowed_users=["*"], max_bytes=config.delivery.max_attachment_bytes)


__all__ = ["DashboardServer", "DashboardUnavailable", "EmbeddedServer", "bind", "url_of",
           "web_adapter"]
