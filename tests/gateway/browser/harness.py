"""Serving the dashboard for tests: the real app under a real uvicorn on 127.0.0.1 (port 0), on the
test's own event loop, plus a reader for server-sent events over a real HTTP connection.

httpx's ASGITransport waits for a response to finish, so an endless event stream can only be read
through a socket; everything else is tested in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from gateway.dashboard import close_streams

STEP_TIMEOUT = 10.0


@dataclass
class Served:
    app: Starlette
    url: str


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[Served]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=2, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="test-dashboard")
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield Served(app, f"http://127.0.0.1:{port}")
    finally:
        await close_streams(app)
        server.should_exit = True
        async with asyncio.timeout(STEP_TIMEOUT):
            await task
        sock.close()


@dataclass
class SseReader:
    """Frames of one event stream, parsed; ``next()`` waits for the next frame of a kind."""

    response: httpx.Response
    frames: list[dict[str, Any]] = field(default_factory=list)
    _lines: AsyncIterator[str] | None = None

    async def next(self, kind: str = "task", timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self._frame()
                self.frames.append(frame)
                if frame.get("event") == kind:
                    return frame

    async def _frame(self) -> dict[str, Any]:
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        frame: dict[str, Any] = {}
        async for line in self._lines:
            if not line:
                if "data" in frame:
                    frame["data"] = json.loads(frame["data"])
                    return frame
                frame = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            frame[key] = value
        raise AssertionError("the event stream ended")


@contextlib.asynccontextmanager
async def sse(client: httpx.AsyncClient, path: str,
              headers: dict[str, str] | None = None) -> AsyncIterator[SseReader]:
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)
