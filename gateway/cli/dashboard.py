"""``relayboard dashboard``: the web dashboard alone, under uvicorn.

``relayboard gateway run`` mounts the same app beside the chat router; run alone, the dashboard's
web chat answers that the router is not running here, instead of leaving messages unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from typing import TYPE_CHECKING

import click

from gateway.cli.invocation import app_of

if TYPE_CHECKING:  # the web stack is imported by the verb that serves, not by every CLI call
    from gateway.config import Config
    from platforms.base import InboundMessage
    from platforms.web import WebAdapter

log = logging.getLogger(__name__)

NO_ROUTER_REPLY = ("This is `relayboard dashboard` on its own: nothing answers chat here. Run "
                   "`relayboard gateway run` for the chat commands (/kanban …, /status, /help).")


@click.command("dashboard")
@click.option("--host", default=None, help="Address to bind (default: dashboard.host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default: dashboard.port; 0 picks one).")
@click.pass_context
def dashboard(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the web dashboard and web chat (Ctrl-C stops it)."""
    from gateway.dashboard.security import check_bind

    app_ctx = app_of(ctx)
    config = app_ctx.config
    dash = config.dashboard.model_copy(update={
        "host": host or config.dashboard.host,
        "port": config.dashboard.port if port is None else port})
    config = dataclasses.replace(config, dashboard=dash)
    check_bind(dash.host, dash.token, dash.token_env)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))


async def serve(config: Config) -> None:
    from gateway.daemon.http_server import WEB_HISTORY_DIR, EmbeddedServer, bind, url_of
    from gateway.dashboard import close_streams, create_app
    from platforms.web import WebAdapter

    web = WebAdapter(history_dir=config.home / WEB_HISTORY_DIR)
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue(maxsize=100)
    await web.start(inbox)
    app = create_app(config.home, config, web_adapter=web)
    dash = config.dashboard
    server = EmbeddedServer(app, dash.host, dash.port, own_signals=True, own_logging=True,
                            before_shutdown=lambda: close_streams(app))
    # Bind first, so the printed address carries the real port (``--port 0`` picks one).
    sock = bind(dash.host, dash.port)
    source = f"${dash.token_env}" if dash.token_file is None else str(dash.token_file)
    token_hint = f"?token=<the token in {source}>" if dash.token else ""
    responder = asyncio.create_task(_answer_without_router(web, inbox), name="dashboard-chat")
    click.echo(f"Relayboard dashboard on {url_of(dash.host, sock.getsockname()[1])}{token_hint}"
               "  (Ctrl-C stops it)")
    sys.stdout.flush()
    try:
        await server.serve(sockets=[sock])
    finally:
        responder.cancel()
        await web.close()
        with contextlib.suppress(asyncio.CancelledError):
            await responder
        sock.close()


async def _answer_without_router(web: WebAdapter, inbox: asyncio.Queue[InboundMessage]) -> None:
    from platforms.base import Destination

    while True:
        message = await inbox.get()
        await web.send(Destination(message.platform, message.chat, message.thread),
                       NO_ROUTER_REPLY)
