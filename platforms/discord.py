"""Discord through discord.py 2.x: gateway inbound (message-content intent), REST outbound.

A message in a guild channel or thread is ``is_group`` (a DM is not); it is ``addressed`` when it
mentions the bot (its user, or the role Discord manages for it) or replies to one of its
messages. The mention is taken out of the text. Without the privileged message-content intent,
Discord still delivers the text of DMs and of messages that mention the bot, and an empty text
for the rest — which the gateway ignores in channels anyway.

A thread is a channel in Discord, so ``Destination.thread`` (when set) is the channel id messages
go to, overriding ``chat``. Texts are split at 2000 characters; files go as ``discord.File``
attachments, at most 10 per message, within the guild's upload limit (10 MiB when unknown).

``base_url`` and ``gateway_url`` point discord.py at a Discord-compatible server (or a loopback
fake). ``base_url`` is discord.py's ``Route.BASE`` as the SDK spells it, API version included
(``https://discord.com/api/v10``); it is used as given, less a trailing slash. discord.py keeps
both as class attributes (``Route.BASE``, ``DiscordWebSocket.DEFAULT_GATEWAY``); the adapter sets
them while it runs and restores them on ``close()``, so only one Discord adapter with custom URLs
may run per process.

``run()`` logs in and awaits ``client.connect(reconnect=True)`` itself: discord.py reconnects and
resumes on its own (its disconnect/ready/resumed events report ``retrying``/``connected``). If the
gateway connection ends for good (a revoked token, the message-content intent switched off), the
status is ``stopped`` with the reason and ``run()`` raises the mapped error for the gateway's
runner to retry.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import yarl

# discord.py imports the stdlib ``audioop`` (voice support we never use), deprecated since 3.11;
# keep that import-time warning from failing ``-W error`` runs of the daemon and its tests.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

from platforms.base import (
    AdapterState,
    AllowedUsers,
    Destination,
    InboundFile,
    InboundMessage,
    Limits,
    PlatformAdapter,
    Report,
)
from platforms.chunking import split_message
from platforms.errors import (
    AdapterConfigError,
    AuthError,
    BadRequest,
    NotFound,
    PermanentError,
    PlatformError,
    ProtocolError,
    RateLimited,
    TransientError,
)
from platforms.files import FileKind
from platforms.markup import MARKDOWN_PROTECT
from platforms.mentions import without_spans
from platforms.receipts import MiB, Receipt
from platforms.untrusted import clean_file_name

log = logging.getLogger(__name__)

TEXT_LIMIT = 2000
FILES_PER_MESSAGE = 10
DEFAULT_FILE_BYTES = 10 * MiB
AUTHENTICATION_FAILED = 4004
INTENTS_HELP = (
    "discord: the gateway refused the bot's intents (close code 4014): enable MESSAGE CONTENT "
    "INTENT under Bot → Privileged Gateway Intents in the Discord Developer Portal"
)


def map_error(exc: BaseException) -> PlatformError | None:
    """Translate discord.py / aiohttp exceptions into the ``platforms.errors`` tree."""
    if isinstance(exc, discord.LoginFailure):
        return AuthError(str(exc), platform="discord")
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return AdapterConfigError(INTENTS_HELP, platform="discord")
    if isinstance(exc, discord.ConnectionClosed) and exc.code == AUTHENTICATION_FAILED:
        return AuthError(
            "discord: the gateway refused the token (close code 4004)", platform="discord"
        )
    if isinstance(exc, discord.RateLimited):
        return RateLimited(retry_after=exc.retry_after, platform="discord")
    if isinstance(exc, discord.HTTPException):
        text = exc.text or exc.__class__.__name__
        status = exc.status
        if status == 429:
            return RateLimited(text, retry_after=1.0, platform="discord")
        if status >= 500:
            return TransientError(text, platform="discord")
        if status == 401:
            return AuthError(text, platform="discord")
        if isinstance(exc, discord.NotFound):
            return NotFound(text, platform="discord")
        if isinstance(exc, discord.Forbidden):
            return PermanentError(text, platform="discord")
        return BadRequest(text, platform="discord")
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        return TransientError(type(exc).__name__, platform="discord")
    if isinstance(exc, discord.DiscordException):
        return PermanentError(str(exc), platform="discord")
    return None


def without_mention(message: discord.Message, bot_id: int | None) -> tuple[str, bool]:
    """The message's text without the bot's mentions, and whether it mentioned the bot: a user
    mention (``<@id>``, ``<@!id>``) or a mention of the role Discord manages for the bot."""
    text = message.content
    if bot_id is None:
        return text, False
    roles = {str(r.id) for r in message.role_mentions
             if r.tags is not None and r.tags.bot_id == bot_id}
    pattern = "|".join([f"<@!?{bot_id}>", *(f"<@&{r}>" for r in roles)])
    spans = [m.span() for m in re.finditer(pattern, text)]
    mentioned = bool(spans) or bool(roles) or any(u.id == bot_id for u in message.mentions)
    return (without_spans(text, spans) if spans else text), mentioned


def replies_to(message: discord.Message, bot_id: int | None) -> bool:
    """Whether the message replies to one of the bot's messages (``message_reference`` with the
    referenced message, or the one in discord.py's cache)."""
    ref = message.reference
    if ref is None or bot_id is None:
        return False
    parent = ref.resolved if isinstance(ref.resolved, discord.Message) else ref.cached_message
    return parent is not None and parent.author.id == bot_id


class _Client(discord.Client):
    """discord.Client that hands messages to its adapter."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter._on_message(message)

    async def on_ready(self) -> None:
        self.adapter._ready()

    async def on_resumed(self) -> None:
        self.adapter._set_status(AdapterState.CONNECTED, "gateway")

    async def on_disconnect(self) -> None:
        if not self.is_closed():
            self.adapter._set_status(AdapterState.RETRYING, "gateway connection lost; reconnecting")


class DiscordAdapter(PlatformAdapter):
    """A Discord bot user. Needs the privileged message-content intent enabled for the app."""

    name = "discord"
    _url_owner: ClassVar[DiscordAdapter | None] = None

    def __init__(
        self,
        token: str,
        *,
        allowed_users: Sequence[str],
        base_url: str | None = None,
        gateway_url: str | None = None,
        guild_ready_timeout: float = 2.0,
        ready_timeout: float = 30.0,
    ) -> None:
        if not token:
            raise AdapterConfigError("discord: no bot token given", platform="discord")
        self.token = token
        self._secrets = (token,)
        self.users = AllowedUsers.parse(self.name, allowed_users)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.gateway_url = gateway_url
        self.guild_ready_timeout = guild_ready_timeout
        self.ready_timeout = ready_timeout
        self.client: _Client | None = None
        self._inbox: asyncio.Queue[InboundMessage] | None = None
        self._ready_deadline: asyncio.Timeout | None = None  # lifted once the gateway is ready
        self._saved_urls: tuple[str, yarl.URL] | None = None

    def limits(self) -> Limits:
        return Limits(
            text_length=TEXT_LIMIT,
            max_bytes={kind: DEFAULT_FILE_BYTES for kind in FileKind},
            group_size=FILES_PER_MESSAGE,
            default_max_bytes=DEFAULT_FILE_BYTES,
        )

    def _limit_for(self, channel_id: int) -> int:
        """The upload limit of the guild owning ``channel_id`` (10 MiB if unknown)."""
        if self.client is None:
            return DEFAULT_FILE_BYTES
        channel = self.client.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        if isinstance(guild, discord.Guild):
            return max(guild.filesize_limit, DEFAULT_FILE_BYTES)
        return DEFAULT_FILE_BYTES

    # --- URLs (scoped overrides of discord.py class attributes) ---

    def _apply_urls(self) -> None:
        if not (self.base_url or self.gateway_url) or self._saved_urls is not None:
            return
        owner = DiscordAdapter._url_owner
        if owner is not None and owner is not self:
            raise AdapterConfigError("another Discord adapter with custom URLs is running")
        self._saved_urls = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        DiscordAdapter._url_owner = self
        if self.base_url:
            Route.BASE = self.base_url
        if self.gateway_url:
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    def _restore_urls(self) -> None:
        if self._saved_urls is not None:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved_urls
            self._saved_urls = None
            DiscordAdapter._url_owner = None

    # --- lifecycle ---

    def _intents(self) -> discord.Intents:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        return intents

    async def _login(self) -> _Client:
        if self.client is None:
            self._apply_urls()
            client = _Client(
                self, intents=self._intents(), guild_ready_timeout=self.guild_ready_timeout
            )
            try:
                await client.login(self.token)
            except BaseException:
                await client.close()
                self._restore_urls()
                raise
            self.client = client
        return self.client

    async def run(
        self, inbox: asyncio.Queue[InboundMessage], report: Report | None = None
    ) -> None:
        """Log in, then hold the gateway connection (``client.connect``) until cancelled.

        discord.py reconnects and resumes by itself (``retrying`` while it does); the run ends
        with the mapped error when it gives up (a revoked token, the intent switched off) or
        when the gateway is not ready within ``ready_timeout``."""
        self.begin_run(report)
        try:
            client = await self._login()
        except discord.NotFound as exc:
            # The login call (GET /users/@me) exists on every Discord API: a 404 is a wrong base.
            wrong_base = ProtocolError(
                f"discord: {self.base_url or Route.BASE}/users/@me answered 404: is base_url "
                "discord.py's Route.BASE, API version included (https://discord.com/api/v10)?",
                platform="discord",
            )
            raise self.start_failed(wrong_base, map_error) from self.chain_for(exc)
        except Exception as exc:
            raise self.start_failed(exc, map_error) from self.chain_for(exc)
        self._inbox = inbox
        error: BaseException
        try:
            # No second task waits for readiness: the deadline is lifted by on_ready instead.
            async with asyncio.timeout(self.ready_timeout) as deadline:
                self._ready_deadline = deadline
                await client.connect(reconnect=True)
            error = TransientError("discord: gateway connection closed", platform="discord")
        except TimeoutError as exc:
            error = exc
            if deadline.expired():
                error = TransientError(
                    f"discord: the gateway did not become ready within {self.ready_timeout:g}s",
                    platform="discord",
                )
        except Exception as exc:
            error = exc
        finally:
            self._ready_deadline = None
            # Shielded: a cancelled run still closes its socket (an owner that cancels again,
            # as anyio does, would otherwise cut the close short); close() awaits the same one.
            await asyncio.shield(self._release())
        mapped = self.start_failed(error, map_error, when="inbound stopped")
        log.error("discord: inbound stopped: %s", mapped)
        raise mapped from self.chain_for(error)

    async def whoami(self) -> str:
        """``GET /users/@me`` (discord.py's login): the bot user's name."""
        try:
            client = await self._login()
        except discord.NotFound:
            wrong_base = ProtocolError(
                f"discord: {self.base_url or Route.BASE}/users/@me answered 404: is base_url "
                "discord.py's Route.BASE, API version included (https://discord.com/api/v10)?",
                platform="discord",
            )
            raise self.start_failed(wrong_base, map_error, when="GET /users/@me") from None
        except Exception as exc:
            raise self.start_failed(exc, map_error, when="GET /users/@me") from self.chain_for(
                exc)
        return str(client.user) if client.user is not None else "(unnamed bot)"

    def _ready(self) -> None:
        if self._ready_deadline is not None:
            self._ready_deadline.reschedule(None)
            self._ready_deadline = None
        self._set_status(AdapterState.CONNECTED, "gateway")

    async def _release(self) -> None:
        """Close the client (gateway socket and REST session) and put the SDK's URLs back."""
        client = self.client
        try:
            if client is not None:
                await client.close()
                self.client = None  # only once closed: an interrupted close is done again
        finally:
            self._restore_urls()

    async def close(self) -> None:
        await self._stop_serving()
        await self._release()
        self._set_status(AdapterState.STOPPED, "closed")

    async def _on_message(self, message: discord.Message) -> None:
        client = self.client
        if client is None or self._inbox is None:
            return
        author = message.author
        if client.user is not None and author.id == client.user.id:
            return  # our own posts come back through the gateway
        if author.bot:
            return
        authorized = self.users.allows(str(author.id))
        if not authorized:
            log.info("discord: message from user %s, who is not in allowed_users", author.id)
        channel = message.channel
        if isinstance(channel, discord.Thread):
            chat, thread = str(channel.parent_id), str(channel.id)
        else:
            chat, thread = str(channel.id), None
        bot_id = client.user.id if client.user is not None else None
        text, mentioned = without_mention(message, bot_id)
        await self._inbox.put(
            InboundMessage(
                platform=self.name,
                chat=chat,
                thread=thread,
                user_id=str(author.id),
                user_name=author.name,
                text=text,
                message_id=str(message.id),
                is_self=False,
                files=tuple(
                    InboundFile(str(a.id), a.filename, a.size, a.url,
                                audio=(a.content_type or "").startswith("audio/"))
                    for a in message.attachments
                ),
                authorized=authorized,
                is_group=message.guild is not None,
                addressed=mentioned or replies_to(message, bot_id),
            )
        )

    # --- chat extras ---

    async def typing(self, dest: Destination) -> None:
        try:
            client = await self._login()
            await client.get_partial_messageable(self._target(dest)).typing()
        except Exception as exc:  # an indicator is never worth failing a reply for
            log.debug("discord: typing failed: %s", self.map_exception(exc, map_error))

    async def download(self, file: InboundFile, dest_dir: Path, max_bytes: int) -> Path:
        """The attachment's CDN URL (signed by Discord; no token is sent with it)."""
        self.refuse_size(file, max_bytes)
        if not file.url or urlsplit(file.url).scheme not in ("http", "https"):
            raise PermanentError(f"{file.name}: no download URL", platform=self.name)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
                async with http.get(file.url) as resp:
                    if resp.status != 200:
                        raise (TransientError if resp.status >= 500 else PermanentError)(
                            f"{file.name}: download answered HTTP {resp.status}",
                            platform=self.name,
                        )
                    return await self.save_stream(
                        file, resp.content.iter_chunked(65536), dest_dir, max_bytes
                    )
        except PlatformError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientError(f"{file.name}: download failed ({type(exc).__name__})",
                                 platform=self.name) from None

    # --- sending ---

    @staticmethod
    def _target(dest: Destination) -> int:
        return int(dest.thread or dest.chat)

    def _reference(self, dest: Destination) -> discord.MessageReference | None:
        if dest.reply_to is None:
            return None
        return discord.MessageReference(
            message_id=int(dest.reply_to), channel_id=self._target(dest), fail_if_not_exists=False
        )

    async def _post(
        self, dest: Destination, content: str | None, paths: Sequence[Path] = ()
    ) -> list[str]:
        client = await self._login()
        channel = client.get_partial_messageable(self._target(dest))
        files = [discord.File(p, filename=clean_file_name(p.name)) for p in paths]
        try:
            kwargs: dict[str, Any] = {"files": files}
            if dest.silent:
                kwargs["silent"] = True
            reference = self._reference(dest)
            if reference is not None:
                kwargs["reference"] = reference
            msg = await channel.send(content=content, **kwargs)
        finally:
            for f in files:
                f.close()
        return [str(msg.id)]

    async def send(self, dest: Destination, text: str) -> Receipt:
        async def one(chunk: str) -> Receipt:
            return await self.guarded(lambda: self._post(dest, chunk), map_error)

        parts = self.message_parts(dest, text, protect=MARKDOWN_PROTECT)
        return await self.send_parts(parts, one)

    def _check(self, dest: Destination, path: Path) -> Receipt | None:
        refusal = self.check_file(path)
        if refusal is not None:
            return refusal
        limit = self._limit_for(self._target(dest))
        size = path.stat().st_size
        return Receipt.too_large(size, limit, name=path.name) if size > limit else None

    async def _send_files(
        self, dest: Destination, paths: Sequence[Path], caption: str | None
    ) -> list[Receipt]:
        receipts: list[Receipt] = []
        ok: list[Path] = []
        for path in paths:
            refusal = self._check(dest, path)
            if refusal is not None:
                receipts.append(refusal)
            else:
                ok.append(path)
        captions = split_message(caption or "", TEXT_LIMIT, protect=MARKDOWN_PROTECT)
        pending = captions[0] if captions else None
        for start in range(0, len(ok), FILES_PER_MESSAGE):
            group = ok[start : start + FILES_PER_MESSAGE]

            async def call(g: Sequence[Path] = group, c: str | None = pending) -> list[str]:
                return await self._post(dest, c, g)

            receipts.append(
                await self.guarded(call, map_error, name=", ".join(p.name for p in group))
            )
            pending = None
        return receipts

    async def send_document(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        return (await self._send_files(dest, [path], caption))[0]

    async def send_video(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        return (await self._send_files(dest, [path], caption))[0]

    async def send_multiple_images(
        self, dest: Destination, paths: Sequence[Path], caption: str | None = None
    ) -> list[Receipt]:
        return await self._send_files(dest, paths, caption)
