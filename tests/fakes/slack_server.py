"""A loopback Slack: Web API (``/api/<method>``), upload URLs, the Socket Mode WebSocket, and
the Events API's side of Slack: :meth:`SlackServer.post_event` POSTs a signed event to an app's
Request URL as Slack does (``X-Slack-Signature`` over ``v0:{timestamp}:{body}``).

``api_base`` is what slack-sdk calls ``base_url`` (``…/api/``). :meth:`SlackServer.message`
builds a ``message`` event as Slack sends it: ``channel_type`` from the channel id (``D…`` a DM,
``G…`` a private channel, ``C…`` a channel) and, in a thread, the ``parent_user_id`` of whoever
posted the thread's first message (the bot, for a message ``chat.postMessage`` posted here).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import mimetypes
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import WSMsgType, web

from tests.fakes.common import FakeServer, Recorded, read_form

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass(frozen=True)
class Posted:
    """One Events API request as it went out, and what the app answered."""

    body: bytes
    headers: dict[str, str]
    status: int
    answer: str


def sign(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackServer(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)
        self.uploads: dict[str, tuple[str, int]] = {}  # file id -> (filename, announced length)
        self.uploaded: dict[str, bytes] = {}  # file id -> bytes received at the upload URL
        self.acks: list[str] = []
        self.hosted: dict[str, tuple[str, bytes]] = {}  # file id -> (name, bytes) users shared
        self.authors: dict[str, str] = {}  # ts -> the user who posted it (bot posts and events)
        self.posts: list[tuple[str, str]] = []  # (channel, ts) of each chat.postMessage

    @property
    def api_base(self) -> str:
        """slack-sdk's ``base_url`` for this server."""
        return f"{self.url}/api/"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self.api)
        app.router.add_get("/api/{method}", self.api)
        app.router.add_post("/upload/{file_id}", self.upload)
        app.router.add_get("/socket", self.socket)
        app.router.add_get("/private/{file_id}/{name}", self.private_file)

    # --- Web API ---

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await read_form(request)
        params["_auth"] = request.headers.get("Authorization", "")
        await self.record(Recorded(method, params, files))
        failure = self.take_failure(method)
        if failure is not None:
            return failure
        token = params["_auth"].removeprefix("Bearer ")
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        body: dict[str, Any] = {"ok": True}
        if method == "auth.test":
            body.update(user_id=BOT_USER, bot_id=BOT_ID, user="relay", team_id="T1")
        elif method == "apps.connections.open":
            body["url"] = f"ws://127.0.0.1:{self.port}/socket?n={next(self._ids)}"
        elif method == "users.info":
            body["user"] = {"id": params.get("user"), "name": "alice", "real_name": "Alice"}
        elif method == "chat.postMessage":
            if not str(params.get("channel", "")).startswith(("C", "G", "D")):
                return web.json_response({"ok": False, "error": "channel_not_found"})
            body.update(channel=params["channel"], ts=f"1700000000.{next(self._ids):06d}")
            self.authors[body["ts"]] = BOT_USER
            self.posts.append((str(params["channel"]), body["ts"]))
        elif method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ids)}"
            self.uploads[file_id] = (str(params["filename"]), int(params["length"]))
            body.update(file_id=file_id, upload_url=f"{self.url}/upload/{file_id}")
        elif method == "reactions.add":
            pass
        elif method == "files.info":
            found = self.hosted.get(str(params.get("file")))
            if found is None:
                return web.json_response({"ok": False, "error": "file_not_found"})
            body["file"] = self.file_object(str(params["file"]))
        elif method == "files.completeUploadExternal":
            listed = json.loads(params["files"])
            body["files"] = [{"id": f["id"], "title": f.get("title")} for f in listed]
        else:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(body)

    async def upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        data = await request.read()
        await self.record(Recorded("upload", {"file_id": file_id}, {"file": (file_id, data)}))
        failure = self.take_failure("upload")
        if failure is not None:
            return failure
        self.uploaded[file_id] = data
        return web.Response(text=f"OK - {len(data)}")

    def share_file(self, name: str, data: bytes) -> dict[str, Any]:
        """A file a user attached: its object for a ``message`` event's ``files``."""
        file_id = f"FU{next(self._ids)}"
        self.hosted[file_id] = (name, data)
        return self.file_object(file_id)

    def file_object(self, file_id: str) -> dict[str, Any]:
        name, data = self.hosted[file_id]
        url = f"{self.url}/private/{file_id}/{quote(name, safe='')}"
        return {"id": file_id, "name": name, "size": len(data), "url_private": url,
                "url_private_download": url,
                "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream"}

    async def private_file(self, request: web.Request) -> web.StreamResponse:
        """``url_private``: only with the bot token, as Slack requires."""
        file_id = request.match_info["file_id"]
        auth = request.headers.get("Authorization", "")
        await self.record(Recorded("private_file", {"file": file_id, "_auth": auth}))
        if auth != f"Bearer {BOT_TOKEN}" or file_id not in self.hosted:
            return web.Response(status=404 if auth == f"Bearer {BOT_TOKEN}" else 403)
        return web.Response(body=self.hosted[file_id][1])

    # --- Socket Mode ---

    async def socket(self, request: web.Request) -> web.StreamResponse:
        ws = await self.accept_socket(request, "socket")
        if ws is None:
            return web.Response(status=503)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        await self.notify()
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    self.acks.append(data["envelope_id"])
                    await self.notify()
        return ws

    def message(self, channel: str, user: str, text: str, *,
                thread_ts: str | None = None) -> dict[str, Any]:
        """A ``message`` event as Slack sends it (see the module docstring); its ``ts`` is new."""
        ts = f"1700000002.{next(self._ids):06d}"
        kind = {"D": "im", "G": "group"}.get(channel[:1], "channel")
        event: dict[str, Any] = {"type": "message", "channel": channel, "channel_type": kind,
                                 "user": user, "text": text, "ts": ts}
        self.authors[ts] = user
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
            parent = self.authors.get(thread_ts)
            if parent is not None:
                event["parent_user_id"] = parent
        return event

    async def push_event(self, event: dict[str, Any]) -> str:
        """Deliver an Events API envelope on the newest open socket; returns its envelope id."""
        await self.wait_until(lambda: any(not s.closed for s in self.sockets))
        ws = [s for s in self.sockets if not s.closed][-1]
        envelope_id = f"env-{next(self._ids)}"
        await ws.send_str(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "payload": {"type": "event_callback", "team_id": "T1", "event": event},
                }
            )
        )
        return envelope_id

    # --- Events API (HTTP) ---

    def event_body(self, event: dict[str, Any], event_id: str | None = None) -> bytes:
        envelope = {"token": "legacy", "team_id": "T1", "api_app_id": "A1",
                    "type": "event_callback", "event": event,
                    "event_id": event_id or f"Ev{next(self._ids):08d}",
                    "event_time": int(time.time())}
        return json.dumps(envelope).encode()

    async def post_event(self, url: str, body: bytes, *, secret: str = SIGNING_SECRET,
                         timestamp: int | None = None, signature: str | None = None,
                         retry: int | None = None) -> Posted:
        """POST ``body`` to the app's Request URL, signed as Slack signs (``signature`` and
        ``timestamp`` override, to forge; ``retry`` sets ``X-Slack-Retry-Num``)."""
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {"Content-Type": "application/json",
                   "X-Slack-Request-Timestamp": str(stamp),
                   "X-Slack-Signature": signature or sign(body, stamp, secret),
                   "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return await self.resend(url, body, headers)

    async def resend(self, url: str, body: bytes, headers: dict[str, str]) -> Posted:
        """POST exactly these bytes and headers again (a captured request, replayed)."""
        async with aiohttp.ClientSession() as session, \
                session.post(url, data=body, headers=headers) as response:
            answer = await response.text()
            return Posted(body, headers, response.status, answer)

    async def drop_sockets(self) -> None:
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.close()
