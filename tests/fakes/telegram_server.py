"""A loopback Telegram Bot API: ``/bot<token>/<method>`` with JSON, form and multipart bodies."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from aiohttp import web

from tests.fakes.common import FakeServer, Recorded, read_form

BOT_ID = 999
TOKEN = "999:TEST-token"


class TelegramServer(FakeServer):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self.poll_wait = 0.2  # seconds a getUpdates call waits for an update before returning []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bot{token}/{method}", self.handle)
        app.router.add_get("/bot{token}/{method}", self.handle)

    # --- scripting ---

    def push_message(
        self,
        *,
        chat_id: int,
        text: str,
        user_id: int = 42,
        username: str = "alice",
        thread_id: int | None = None,
        is_bot: bool = False,
    ) -> None:
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "supergroup" if thread_id else "private"},
            "from": {
                "id": user_id,
                "is_bot": is_bot,
                "first_name": username.title(),
                "username": username,
            },
            "text": text,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        self.updates.put_nowait({"update_id": next(self._update_ids), "message": message})

    # --- handler ---

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(params.get("chat_id", 0)), "type": "supergroup"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Relay"},
        }
        if "message_thread_id" in params:
            msg["message_thread_id"] = int(params["message_thread_id"])
        msg.update(extra)
        return msg

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        params, files = await read_form(request)
        await self.record(Recorded(method, params, files))
        failure = self.take_failure(method)
        if failure is not None:
            return failure
        result: Any
        if method == "getMe":
            result = {"id": BOT_ID, "is_bot": True, "first_name": "Relay", "username": "relay_bot"}
        elif method == "getUpdates":
            result = await self._get_updates(params)
        elif method == "sendMessage":
            result = self._message(params, text=params.get("text", ""))
        elif method in {"sendPhoto", "sendDocument", "sendVideo"}:
            result = self._message(params, caption=params.get("caption"))
        elif method == "sendMediaGroup":
            media = json.loads(params["media"])
            result = [self._message(params) for _ in media]
        elif method in {"deleteWebhook", "close", "logOut"}:
            result = True
        else:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                status=404,
            )
        return web.json_response({"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        batch: list[dict[str, Any]] = []
        try:
            first = await asyncio.wait_for(self.updates.get(), self.poll_wait)
        except TimeoutError:
            return []
        batch.append(first)
        while not self.updates.empty():
            batch.append(self.updates.get_nowait())
        return [u for u in batch if u["update_id"] >= offset]
