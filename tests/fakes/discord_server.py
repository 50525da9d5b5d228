"""A loopback Discord: REST under ``/api/v10`` and the gateway WebSocket at ``/gateway``.

Gateway script: HELLO (op 10) → IDENTIFY (op 2) or RESUME (op 6) → READY / RESUMED dispatch
(+ GUILD_CREATE after READY); heartbeats (op 1) are answered with ACK (op 11). With
``message_content_enabled = False`` (the Developer Portal switch off) an IDENTIFY asking for the
privileged MESSAGE_CONTENT intent is closed with code 4014, as Discord does.

Inbound messages (:meth:`DiscordServer.push_message`) carry what Discord derives from them: the
``mentions`` of every ``<@id>`` in the content, and for a reply the ``message_reference`` and the
``referenced_message`` (type 19) — a message the bot posted here, or one pushed before. Without
``dm`` they are posted in the guild; with it, in a DM channel (no ``guild_id``).

``api_base`` is what discord.py calls ``Route.BASE`` (``…/api/v10``).
"""

from __future__ import annotations

import itertools
import json
import mimetypes
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.common import FakeServer, Recorded, read_form

TOKEN = "discord-test-token"
BOT_USER_ID = "1000"
GUILD_ID = "2000"
CHANNEL_ID = "3000"
THREAD_ID = "3001"
OTHER_CHANNEL_ID = "3002"
BOT_ROLE_ID = "2500"  # the role Discord manages for the bot in the guild
DM_CHANNEL_ID = "4000"
MESSAGE_CONTENT = 1 << 15
_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
DISALLOWED_INTENTS = 4014
BOT_USER = {
    "id": BOT_USER_ID, "username": "relay", "discriminator": "0", "avatar": None,
    "bot": True, "global_name": "Relay",
}  # fmt: skip


def user(uid: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": uid, "username": name, "discriminator": "0", "avatar": None, "bot": bot}


class DiscordServer(FakeServer):
    def __init__(self, premium_tier: int = 0) -> None:
        super().__init__()
        self.premium_tier = premium_tier
        self._ids = itertools.count(5000)
        self.gateway_ops: list[dict[str, Any]] = []  # every payload the client sent
        self._seq = 0
        self.message_content_enabled = True
        self.hosted: dict[str, bytes] = {}  # attachment path -> bytes (the CDN)
        self.messages: dict[str, dict[str, Any]] = {}  # id -> every message posted or pushed

    @property
    def api_base(self) -> str:
        """discord.py's ``Route.BASE`` for this server."""
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self.gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self.rest)
        app.router.add_get("/att/{name}", self.attachment)

    # --- REST ---

    def json(
        self, body: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        # discord.py only parses a body whose content type is exactly application/json
        return web.Response(
            body=json.dumps(body).encode(), status=status,
            headers={**(headers or {}), "Content-Type": "application/json"},
        )  # fmt: skip

    def message(self, channel_id: str, content: str | None, author: dict[str, Any],
                attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
        return {
            "id": str(next(self._ids)), "channel_id": channel_id, "author": author,
            "content": content or "", "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "attachments": attachments or [], "embeds": [],
            "pinned": False, "type": 0,
        }  # fmt: skip

    async def rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        params, files = await read_form(request)
        if "payload_json" in params:
            params.update(json.loads(params.pop("payload_json")))
        params["_auth"] = request.headers.get("Authorization", "")
        key = f"{request.method} {path}"
        await self.record(Recorded(key, params, files))
        failure = self.take_failure(key)
        if failure is not None:
            return failure
        if params["_auth"] != f"Bot {TOKEN}":
            return self.json({"message": "401: Unauthorized", "code": 0}, status=401)
        if key == "GET /users/@me":
            return self.json(BOT_USER)
        if key == "GET /oauth2/applications/@me":
            return self.json({
                "id": "900", "name": "Relay", "icon": None, "description": "",
                "bot_public": True, "bot_require_code_grant": False, "verify_key": "00",
                "owner": user("1", "owner"), "flags": 0, "summary": "",
            })  # fmt: skip
        if request.method == "POST" and path.startswith("/channels/") and path.endswith(
                "/typing"):
            return web.Response(status=204)
        if key in {"GET /gateway", "GET /gateway/bot"}:
            return self.json({"url": self.gateway_url, "shards": 1,
                                      "session_start_limit": {"total": 1000, "remaining": 1000,
                                      "reset_after": 0, "max_concurrency": 1}})  # fmt: skip
        if (
            request.method == "POST"
            and path.startswith("/channels/")
            and path.endswith("/messages")
        ):
            channel_id = path.split("/")[2]
            attachments = [
                {"id": str(next(self._ids)), "filename": name, "size": len(data),
                 "url": f"{self.url}/att/{name}", "proxy_url": f"{self.url}/att/{name}"}
                for name, data in files.values()
            ]  # fmt: skip
            posted = self.message(channel_id, params.get("content"), BOT_USER, attachments)
            self.messages[posted["id"]] = posted
            return self.json(posted)
        return self.json({"message": "Unknown", "code": 0}, status=404)

    # --- gateway ---

    async def dispatch(self, ws: web.WebSocketResponse, event: str, data: Any) -> None:
        self._seq += 1
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    def guild(self) -> dict[str, Any]:
        return {
            "id": GUILD_ID, "name": "Test", "icon": None, "owner_id": "1",
            "premium_tier": self.premium_tier, "features": [], "emojis": [], "stickers": [],
            "roles": [{"id": GUILD_ID, "name": "@everyone", "permissions": "0", "position": 0,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False},
                      {"id": BOT_ROLE_ID, "name": "Relay", "permissions": "0", "position": 1,
                       "color": 0, "hoist": False, "managed": True, "mentionable": True,
                       "tags": {"bot_id": BOT_USER_ID}}],
            "channels": [{"id": CHANNEL_ID, "type": 0, "name": "general", "position": 0,
                          "guild_id": GUILD_ID, "permission_overwrites": []},
                         {"id": OTHER_CHANNEL_ID, "type": 0, "name": "random", "position": 1,
                          "guild_id": GUILD_ID, "permission_overwrites": []}],
            "threads": [{"id": THREAD_ID, "type": 11, "name": "task-7", "parent_id": CHANNEL_ID,
                         "guild_id": GUILD_ID, "owner_id": "1", "message_count": 0,
                         "member_count": 1, "total_message_sent": 0, "flags": 0,
                         "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                             "archive_timestamp": "2024-01-01T00:00:00+00:00",
                                             "locked": False}}],
            "members": [], "voice_states": [], "presences": [], "member_count": 2,
            "large": False, "unavailable": False, "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
            "nsfw_level": 0, "preferred_locale": "en-US", "system_channel_flags": 0,
        }  # fmt: skip

    async def gateway(self, request: web.Request) -> web.StreamResponse:
        ws = await self.accept_socket(request, "gateway")
        if ws is None:
            return web.Response(status=503)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            self.gateway_ops.append(payload)
            op = payload.get("op")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2 and not self._intents_allowed(payload):
                await self.notify()
                await ws.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
                break
            elif op == 2:
                await self.dispatch(ws, "READY", {
                    "v": 10, "user": BOT_USER, "session_id": "sess-1",
                    "resume_gateway_url": self.gateway_url,
                    "guilds": [{"id": GUILD_ID, "unavailable": True}],
                    "application": {"id": "900", "flags": 0},
                })  # fmt: skip
                await self.dispatch(ws, "GUILD_CREATE", self.guild())
            elif op == 6:
                await self.dispatch(ws, "RESUMED", {})
            await self.notify()
        return ws

    def _intents_allowed(self, identify: dict[str, Any]) -> bool:
        intents = int(identify.get("d", {}).get("intents", 0))
        return self.message_content_enabled or not intents & MESSAGE_CONTENT

    async def attachment(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        await self.record(Recorded("GET /att", {"name": name}))
        data = self.hosted.get(name)
        return web.Response(status=404) if data is None else web.Response(body=data)

    def bot_messages(self, channel_id: str) -> list[str]:
        """The ids of the messages the bot posted in ``channel_id``, oldest first."""
        return [m["id"] for m in self.messages.values()
                if m["channel_id"] == channel_id and m["author"]["id"] == BOT_USER_ID]

    async def push_message(self, *, channel_id: str = CHANNEL_ID, content: str,
                           author: dict[str, Any],
                           files: dict[str, bytes] | None = None, dm: bool = False,
                           reply_to: str | None = None, ping: bool = True) -> str:  # fmt: skip
        """A MESSAGE_CREATE; ``files`` (name → bytes) become attachments on the fake CDN;
        ``reply_to`` is the id of the message it replies to, ``ping`` whether the reply
        mentions that message's author (Discord's default). Returns the message's id."""
        await self.wait_until(lambda: any(not s.closed for s in self.sockets))
        ws = [s for s in self.sockets if not s.closed][-1]
        attachments = []
        for name, data in (files or {}).items():
            stored = f"in-{next(self._ids)}-{name}"
            self.hosted[stored] = data
            attachment = {"id": str(next(self._ids)), "filename": name,
                          "size": len(data), "url": f"{self.url}/att/{stored}",
                          "proxy_url": f"{self.url}/att/{stored}"}
            kind = mimetypes.guess_type(name)[0]
            if kind:  # Discord sets it from the upload (voice messages: audio/ogg)
                attachment["content_type"] = kind
            attachments.append(attachment)
        msg = self.message(DM_CHANNEL_ID if dm else channel_id, content, author, attachments)
        if not dm:
            msg["guild_id"] = GUILD_ID
        msg["mentions"] = [BOT_USER if uid == BOT_USER_ID else user(uid, f"user{uid}")
                           for uid in dict.fromkeys(_MENTION.findall(content))]
        msg["mention_roles"] = list(dict.fromkeys(_ROLE_MENTION.findall(content)))
        if reply_to is not None:
            parent = self.messages[reply_to]
            msg["type"] = 19
            msg["message_reference"] = {"message_id": reply_to,
                                        "channel_id": parent["channel_id"],
                                        **({} if dm else {"guild_id": GUILD_ID})}
            msg["referenced_message"] = parent
            if ping and parent["author"] not in msg["mentions"]:
                msg["mentions"].append(parent["author"])
        self.messages[msg["id"]] = msg
        await self.dispatch(ws, "MESSAGE_CREATE", msg)
        return str(msg["id"])

    async def drop_sockets(self, code: int = 4000) -> None:
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.close(code=code)

    def ops(self, op: int) -> list[dict[str, Any]]:
        return [p for p in self.gateway_ops if p.get("op") == op]
