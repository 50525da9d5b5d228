"""A loopback OpenAI-compatible transcription endpoint: ``POST /v1/audio/transcriptions``.

It reads the multipart body as the real one does (``file``, ``model``, ``response_format``),
records it, and answers ``{"text": …}``: the next scripted transcript (``hear``), else the
``default``; ``fail(status, message)`` answers with an OpenAI-style error instead, ``hang()``
never answers (a timeout). ``key`` (when set) must come as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tests.fakes.common import FakeServer, Recorded, read_form

METHOD = "POST /audio/transcriptions"


class TranscriptionServer(FakeServer):
    def __init__(self, key: str | None = None) -> None:
        super().__init__()
        self.key = key
        self.script: list[tuple[int, Any]] = []
        self.default = "make a chart of the sales"
        self._hang: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def hear(self, text: str) -> None:
        self.script.append((200, {"text": text}))

    def fail(self, status: int, message: str) -> None:
        self.script.append((status, {"error": {"message": message, "type": "server_error"}}))

    def hang(self) -> None:
        self._hang = asyncio.Event()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)

    def received(self) -> list[Recorded]:
        return self.calls(METHOD)

    async def _transcribe(self, request: web.Request) -> web.Response:
        if self.key is not None and request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": {"message": "Incorrect API key provided"}},
                                     status=401)
        fields, files = await read_form(request)
        await self.record(Recorded(METHOD, fields, files))
        if "file" not in files or not fields.get("model"):
            return web.json_response({"error": {"message": "file and model are required"}},
                                     status=400)
        if self._hang is not None:
            await self._hang.wait()
        status, body = self.script.pop(0) if self.script else (200, {"text": self.default})
        return web.json_response(body, status=status)
