"""Shared plumbing for the loopback fake platform servers: lifecycle, request log, waiting."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import BodyPartReader, web


def free_port() -> int:
    """A loopback port nothing listens on (for "unreachable host" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Recorded:
    """One request as the fake saw it."""

    method: str  # API method name (Telegram/Slack) or "VERB /path" (Discord, upload URL)
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # field -> (name, bytes)
    at: float = field(default_factory=time.monotonic)


class FakeServer:
    """An aiohttp app on 127.0.0.1 with a random port; subclasses add routes in ``routes()``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        # method -> list of (status, json body, headers) served instead of the real answer
        self.failures: dict[str, list[tuple[int, Any, dict[str, str]]]] = {}
        self.sockets: list[web.WebSocketResponse] = []
        self.refuse_sockets = 0  # next N WebSocket handshakes answered with 503

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = sockets[0].getsockname()[1]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def accept_socket(self, request: web.Request, name: str) -> web.WebSocketResponse | None:
        """Record a WebSocket handshake; refuse it with 503 while ``refuse_sockets`` lasts (None),
        else accept it and keep it in ``sockets``."""
        await self.record(Recorded(name, dict(request.query)))
        if self.refuse_sockets > 0:
            self.refuse_sockets -= 1
            return None
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        return ws

    async def record(self, rec: Recorded) -> None:
        self.requests.append(rec)
        await self.notify()

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], Any], limit: float = 5.0) -> Any:
        """Wait (bounded) until ``predicate()`` is truthy; return its value."""

        async def waiter() -> Any:
            async with self._changed:
                while not (value := predicate()):
                    await self._changed.wait()
                return value

        return await asyncio.wait_for(waiter(), limit)

    def fail_next(
        self,
        method: str,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        self.failures.setdefault(method, []).extend([(status, body, headers or {})] * times)

    def take_failure(self, method: str) -> web.Response | None:
        queue = self.failures.get(method)
        if not queue:
            return None
        status, body, headers = queue.pop(0)
        return self.json(body, status=status, headers=headers)

    def json(
        self, body: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]


async def read_form(request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """Parse JSON, urlencoded or multipart bodies into (fields, files)."""
    fields: dict[str, Any] = dict(request.query)
    files: dict[str, tuple[str, bytes]] = {}
    ctype = request.content_type
    if ctype == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            fields.update(body)
    elif ctype.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader), "nested multipart is not used by the SDKs"
            name = part.name or ""
            filename = part.filename
            data = await part.read()
            if filename:
                files[name] = (filename, bytes(data))
            else:
                fields[name] = bytes(data).decode()
    elif ctype == "application/x-www-form-urlencoded":
        fields.update(await request.post())
    return fields, files
