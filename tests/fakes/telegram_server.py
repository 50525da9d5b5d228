"""A loopback Telegram Bot API: ``/bot<token>/<method>`` with JSON, form and multipart bodies.

``api_base`` is what python-telegram-bot calls ``base_url`` (``…/bot``, the token follows).
Like the real server, ``getUpdates`` answers 409 Conflict while a webhook is set
(``webhook_url``, cleared by ``deleteWebhook``) or while ``other_poller`` is true (another process
polling with the same token). ``setWebhook`` records the URL and ``secret_token``; with a webhook
set, :meth:`TelegramServer.deliver` POSTs queued updates to it as Telegram does (the secret in
``X-Telegram-Bot-Api-Secret-Token``), and ``post_update`` sends one update with any header.

Pushed messages carry what Telegram derives from their text: ``bot_command`` and ``mention``
entities (UTF-16 offsets), the chat's ``type``, and for a reply the ``reply_to_message`` (a
message the bot sent through this server, or one pushed before). A message in a forum topic
points at the topic's first message when it replies to nothing else, as in Telegram.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.common import FakeServer, Recorded, read_form

BOT_ID = 999
TOKEN = "999:TEST-token"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# The tags the Bot API's HTML parse mode accepts.
HTML_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a",
    "tg-spoiler", "span", "blockquote", "tg-emoji",
}  # fmt: skip
_TAG = re.compile(r"<(/?)([a-zA-Z-]+)((?:\s[^<>]*)?)>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z]\w{3,31}")
_COMMAND = re.compile(r"^/[A-Za-z]\w{0,31}(?:@\w+)?")


class EntityError(ValueError):
    """The text is not valid Bot API HTML (Telegram answers 400 "can't parse entities")."""


def visible_text(text: str) -> str:
    """The text a Telegram user sees for ``text`` sent with ``parse_mode=HTML``.

    Strict like the real parser: only the Bot API's tags, balanced; ``<``, ``>`` and ``&`` in text
    only as entities. Raises ``EntityError`` otherwise.
    """
    out: list[str] = []
    stack: list[str] = []
    last = 0
    for m in _TAG.finditer(text):
        out.append(_plain(text[last : m.start()]))
        closing, tag = m[1] == "/", m[2].lower()
        if tag not in HTML_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        if closing:
            if not stack or stack.pop() != tag:
                raise EntityError(f'Unmatched end tag "{tag}"')
        else:
            stack.append(tag)
        last = m.end()
    out.append(_plain(text[last:]))
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _plain(segment: str) -> str:
    if "<" in segment or ">" in segment:
        raise EntityError("unescaped < or > in text")
    if "&" in _ENTITY.sub("", segment):
        raise EntityError("unescaped & in text")
    return html.unescape(segment)


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def text_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram finds in plain text: a leading ``/command``, ``@username``s."""
    found: list[dict[str, Any]] = []
    command = _COMMAND.match(text)
    if command is not None:
        found.append({"type": "bot_command", "offset": 0, "length": utf16_units(command[0])})
    for m in _MENTION.finditer(text):
        found.append({"type": "mention", "offset": utf16_units(text[:m.start()]),
                      "length": utf16_units(m[0])})
    return found


@dataclass(frozen=True)
class Delivery:
    """One update POSTed to the webhook, and the HTTP status the bot answered."""

    update: dict[str, Any]
    status: int


class TelegramServer(FakeServer):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self.poll_wait = 0.2  # seconds a getUpdates call waits for an update before returning []
        self.webhook_url = ""  # a webhook set for the bot: getUpdates is refused with 409
        self.webhook_secret = ""  # setWebhook's secret_token
        self.deliveries: list[Delivery] = []
        self.other_poller = False  # another process polls with the token: 409 on every poll
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, bytes)
        self.messages: dict[int, dict[str, Any]] = {}  # message_id -> sent or pushed message

    @property
    def api_base(self) -> str:
        """python-telegram-bot's ``base_url`` for this server."""
        return f"{self.url}/bot"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bot{token}/{method}", self.handle)
        app.router.add_get("/bot{token}/{method}", self.handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self.download)

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
        document: tuple[str, bytes] | None = None,
        voice: bytes | None = None,
        chat_type: str | None = None,
        reply_to: int | None = None,
        text_mention: tuple[str, int] | None = None,
        topic_by: int = 42,
    ) -> int:
        """Queue an update; ``document`` = (file name, bytes) attaches a file (then ``text`` is
        its caption), ``voice`` a voice note (OGG bytes; ``text`` its caption, or ``""``), both
        served by ``getFile`` and the file URL like the real Bot API. ``chat_type`` defaults to
        ``supergroup`` in a topic and ``private`` otherwise; ``reply_to`` is the id of the
        message replied to; ``text_mention`` = (a part of ``text``, a user id) marks that part
        as a mention of a user without a username; ``topic_by`` is who opened the topic.
        Returns the message's id."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id,
                     "type": chat_type or ("supergroup" if thread_id else "private")},
            "from": {
                "id": user_id,
                "is_bot": is_bot,
                "first_name": username.title(),
                "username": username,
            },
            "text": text,
        }
        entities = text_entities(text)
        if text_mention is not None:
            part, uid = text_mention
            at = text.index(part)
            entities.append({"type": "text_mention", "offset": utf16_units(text[:at]),
                             "length": utf16_units(part),
                             "user": {"id": uid, "is_bot": uid == BOT_ID, "first_name": "X"}})
        if entities:
            message["entities"] = entities
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
            message["reply_to_message"] = {  # the topic's first message
                "message_id": thread_id, "date": int(time.time()), "chat": message["chat"],
                "from": {"id": topic_by, "is_bot": topic_by == BOT_ID, "first_name": "Topic"},
                "message_thread_id": thread_id, "is_topic_message": True,
                "forum_topic_created": {"name": "topic", "icon_color": 7322096}}
        if reply_to is not None:
            message["reply_to_message"] = self.messages[reply_to]
        if document is not None:
            name, data = document
            file_id = f"doc{len(self.files) + 1}"
            self.files[file_id] = (f"documents/{file_id}_{name}", data)
            message.pop("text")
            message["caption"] = text
            if "entities" in message:
                message["caption_entities"] = message.pop("entities")
            message["document"] = {"file_id": file_id, "file_unique_id": f"u{file_id}",
                                   "file_name": name, "file_size": len(data)}
        if voice is not None:
            file_id = f"voice{len(self.files) + 1}"
            self.files[file_id] = (f"voice/file_{len(self.files)}.oga", voice)
            message.pop("text")
            if text:
                message["caption"] = text
            if "entities" in message:
                message["caption_entities"] = message.pop("entities")
            message["voice"] = {"file_id": file_id, "file_unique_id": f"u{file_id}",
                                "duration": 3, "mime_type": "audio/ogg",
                                "file_size": len(voice)}
        self.messages[message["message_id"]] = message
        self.updates.put_nowait({"update_id": next(self._update_ids), "message": message})
        return int(message["message_id"])

    def bot_messages(self, chat_id: int) -> list[int]:
        """The ids of the messages the bot sent to ``chat_id``, oldest first."""
        return [mid for mid, m in self.messages.items()
                if m["chat"]["id"] == chat_id and m["from"]["id"] == BOT_ID]

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
        self.messages[msg["message_id"]] = msg
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
            conflict = self._conflict()
            if conflict is not None:
                return conflict
            result = await self._get_updates(params)
        elif method == "sendMessage":
            refusal = self._check_text(params, "text", TEXT_LIMIT, "message is too long")
            if refusal is not None:
                return refusal
            result = self._message(params, text=params.get("text", ""))
        elif method in {"sendPhoto", "sendDocument", "sendVideo"}:
            refusal = self._check_text(
                params, "caption", CAPTION_LIMIT, "message caption is too long"
            )
            if refusal is not None:
                return refusal
            result = self._message(params, caption=params.get("caption"))
        elif method == "sendMediaGroup":
            media = json.loads(params["media"])
            for item in media:
                refusal = self._check_text(item, "caption", CAPTION_LIMIT, "caption is too long")
                if refusal is not None:
                    return refusal
            result = [self._message(params) for _ in media]
        elif method == "getFile":
            found = self.files.get(str(params.get("file_id")))
            if found is None:
                return web.json_response({"ok": False, "error_code": 400,
                                          "description": "Bad Request: invalid file_id"},
                                         status=400)
            result = {"file_id": params["file_id"], "file_unique_id": f"u{params['file_id']}",
                      "file_size": len(found[1]), "file_path": found[0]}
        elif method == "sendChatAction":
            result = True
        elif method == "deleteWebhook":
            self.webhook_url = self.webhook_secret = ""
            result = True
        elif method == "setWebhook":
            self.webhook_url = str(params.get("url", ""))
            self.webhook_secret = str(params.get("secret_token", ""))
            result = True
        elif method == "getWebhookInfo":
            result = {"url": self.webhook_url, "has_custom_certificate": False,
                      "pending_update_count": self.updates.qsize()}  # fmt: skip
        elif method in {"close", "logOut"}:
            result = True
        else:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                status=404,
            )
        return web.json_response({"ok": True, "result": result})

    # --- webhook ---

    async def deliver(self) -> list[Delivery]:
        """POST every queued update to the webhook, as Telegram does; an update the bot did not
        answer 2xx stays queued (Telegram keeps it and tries again)."""
        assert self.webhook_url, "no webhook set"
        out: list[Delivery] = []
        kept: list[dict[str, Any]] = []
        while not self.updates.empty():
            update = self.updates.get_nowait()
            status = await self.post_update(update)
            out.append(Delivery(update, status))
            if not 200 <= status < 300:
                kept.append(update)
        for update in kept:
            self.updates.put_nowait(update)
        self.deliveries.extend(out)
        return out

    async def post_update(self, update: dict[str, Any], *,
                          secret: str | None = None) -> int:
        """POST one update to the webhook with ``secret`` (default: the one set) as the
        secret-token header (``""``: no header at all); the bot's HTTP status."""
        token = self.webhook_secret if secret is None else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token else {}
        async with aiohttp.ClientSession() as session, \
                session.post(self.webhook_url, json=update, headers=headers) as response:
            await response.read()
            return response.status

    async def download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        await self.record(Recorded("file", {"path": path}))
        for file_path, data in self.files.values():
            if file_path == path:
                return web.Response(body=data)
        return web.Response(status=404)

    @staticmethod
    def _check_text(
        params: dict[str, Any], key: str, limit: int, too_long: str
    ) -> web.Response | None:
        """Refuse what Telegram refuses: bad HTML, or too long after entity parsing."""
        text = params.get(key)
        if text is None:
            return None
        try:
            seen = visible_text(str(text)) if params.get("parse_mode") == "HTML" else str(text)
        except EntityError as exc:
            description = f"Bad Request: can't parse entities: {exc}"
        else:
            if utf16_units(seen) <= limit:
                return None
            description = f"Bad Request: {too_long}"
        return web.json_response(
            {"ok": False, "error_code": 400, "description": description}, status=400
        )

    def _conflict(self) -> web.Response | None:
        if self.webhook_url:
            description = (
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first"
            )
        elif self.other_poller:
            description = (
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running"
            )
        else:
            return None
        return web.json_response(
            {"ok": False, "error_code": 409, "description": description}, status=409
        )

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
