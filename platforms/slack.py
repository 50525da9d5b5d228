"""Slack through slack_sdk (async): Socket Mode inbound, Web API outbound, files upload v2.

Inbound (``run()``): ``apps.connections.open`` (app token) gives a WebSocket URL; the SDK's aiohttp
``SocketModeClient`` keeps it connected (reconnects on close/disconnect; ``run`` reports what it
sees of the socket as ``retrying``/``connected``), the adapter acks every
envelope and turns ``message`` events — and ``app_mention`` events (a message that mentions the
bot in a channel; the mention itself is dropped from the text) — into ``InboundMessage`` values.
A message seen both ways is delivered once. A message in a channel, a private channel or a group
DM is ``is_group``; it is ``addressed`` when it mentions the bot or is posted in a thread whose
first message the bot posted (the event's ``parent_user_id``). In a thread someone else started,
each message for the bot mentions it. With ``mode="events"``
the same events come over HTTP instead (the Events API, served by the gateway's web server and
checked by ``platforms.slack_events``), and no app-level token is needed.
Outbound: ``chat.postMessage`` (mrkdwn escaped for Slack, see ``platforms.markup``; ``thread_ts``)
and the current upload flow
(``files.getUploadURLExternal`` → POST → ``files.completeUploadExternal`` with ``channel_id`` and
``thread_ts``; several images in one completion). 429 (Retry-After) and 5xx are retried by the SDK's
retry handlers.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import RandomJitter
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from platforms.base import (
    AdapterState,
    AdapterStatus,
    AllowedUsers,
    Destination,
    InboundFile,
    InboundMessage,
    Limits,
    PlatformAdapter,
    Report,
)
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
from platforms.markup import SLACK_PROTECT, to_mrkdwn
from platforms.mentions import without_spans
from platforms.receipts import MiB, Receipt
from platforms.slack_events import SlackEvents
from platforms.untrusted import clean_file_name
from platforms.webhooks import WebhookReply

__all__ = ["SlackAdapter", "map_error", "to_mrkdwn"]

log = logging.getLogger(__name__)

TEXT_LIMIT = 4000  # Slack truncates at 40k, but recommends messages stay under 4k characters
FILES_PER_MESSAGE = 10
MAX_FILE_BYTES = 1024 * MiB
AUTH_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
NOT_FOUND_ERRORS = {"channel_not_found", "thread_not_found", "message_not_found", "not_in_channel"}
# Message subtypes that are people talking (everything else: joins, edits, bot posts …).
HUMAN_SUBTYPES = {None, "file_share", "thread_broadcast", "me_message"}
SEEN_MESSAGES = 500  # recent (channel, ts) pairs remembered to deliver a mention once
WORKING_REACTION = "eyes"


def is_group_event(event: Mapping[str, Any]) -> bool:
    """Whether a message event was posted where others read along: a channel, a private
    channel or a group DM, not the bot's DM. (``app_mention`` events carry no
    ``channel_type``; a DM's channel id starts with ``D``.)"""
    kind = event.get("channel_type")
    if isinstance(kind, str) and kind:
        return kind != "im"
    return not str(event.get("channel", "")).startswith("D")


def map_error(exc: BaseException) -> PlatformError | None:
    """Translate slack_sdk / aiohttp exceptions into the ``platforms.errors`` tree."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or "")
        status = int(response.status_code)
        if code == "ratelimited" or status == 429:
            after = response.headers.get("Retry-After", response.headers.get("retry-after", "1"))
            if isinstance(after, list):
                after = after[0]
            return RateLimited(code, retry_after=float(after or 1), platform="slack")
        if code in AUTH_ERRORS or status in (401, 403):
            return AuthError(code or str(status), platform="slack")
        if status >= 500:
            return TransientError(code or f"HTTP {status}", platform="slack")
        if not isinstance(response.data, dict):
            return ProtocolError(
                f"HTTP {status} from {response.api_url}: not a Slack Web API answer "
                "(is base_url slack-sdk's API base, like https://slack.com/api/?)",
                platform="slack",
            )
        if code in NOT_FOUND_ERRORS:
            return NotFound(code, platform="slack")
        return BadRequest(code or f"HTTP {status}", platform="slack")
    if isinstance(exc, SlackRequestError):
        # raised by the upload step: the upload URL refused the bytes
        return TransientError("file upload failed", platform="slack")
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        return TransientError(type(exc).__name__, platform="slack")
    if isinstance(exc, SlackClientError):
        return PermanentError(str(exc), platform="slack")
    return None


class SlackAdapter(PlatformAdapter):
    """Slack app with a bot token (Web API) and an app-level token (Socket Mode)."""

    name = "slack"

    def __init__(
        self,
        bot_token: str,
        app_token: str | None = None,
        *,
        allowed_users: Sequence[str],
        base_url: str | None = None,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_file_bytes: int = MAX_FILE_BYTES,
        ping_interval: float = 5.0,
        timeout: int = 30,
        watch_seconds: float = 1.0,
        mode: str = "socket",
        signing_secret: str | None = None,
    ) -> None:
        if not bot_token:
            raise AdapterConfigError("slack: no bot token given", platform="slack")
        if mode not in ("socket", "events"):
            raise AdapterConfigError(f"slack: mode must be socket or events, not {mode!r}",
                                     platform="slack")
        self.app_token = app_token
        self.users = AllowedUsers.parse(self.name, allowed_users)
        self._secrets = tuple(t for t in (bot_token, app_token, signing_secret) if t)
        self.events = SlackEvents(signing_secret) if mode == "events" else None
        self.ping_interval = ping_interval
        self.watch_seconds = watch_seconds
        self.max_file_bytes = max_file_bytes
        # slack-sdk joins method names onto its base_url, which therefore ends in a slash.
        api = (base_url or "https://slack.com/api/").rstrip("/") + "/"
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=api,
            timeout=timeout,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=max_retries),
                AsyncRateLimitErrorRetryHandler(max_retry_count=max_retries),
                AsyncServerErrorRetryHandler(
                    max_retry_count=max_retries,
                    interval_calculator=BackoffRetryIntervalCalculator(
                        backoff_factor=retry_backoff, jitter=RandomJitter()
                    ),
                ),
            ],
        )
        self._bot_token = bot_token
        self._api_host = urlsplit(api).hostname or "slack.com"
        self._seen: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        self._socket: SocketModeClient | None = None
        self._inbox: asyncio.Queue[InboundMessage] | None = None
        self._names: dict[str, str] = {}

    def limits(self) -> Limits:
        return Limits(
            text_length=TEXT_LIMIT,
            max_bytes={kind: self.max_file_bytes for kind in FileKind},
            group_size=FILES_PER_MESSAGE,
            default_max_bytes=self.max_file_bytes,
        )

    # --- lifecycle ---

    async def run(
        self, inbox: asyncio.Queue[InboundMessage], report: Report | None = None
    ) -> None:
        """auth.test, open the Socket Mode connection, serve ``inbox`` until cancelled.

        slack-sdk's client reconnects by itself and tells nobody, so while it serves, ``run``
        looks at its socket every ``watch_seconds`` and reports ``retrying``/``connected`` as
        that changes. It never ends by itself after connecting: the SDK retries for ever."""
        self.begin_run(report)
        if self.events is not None:
            await self._serve_events(inbox, self.events)
            return
        if not self.app_token:
            error = AdapterConfigError(
                "slack: inbound messages (Socket Mode) need an app-level token (xapp-…)",
                platform="slack",
            )
            raise self.start_failed(error, map_error)
        await self._identify()
        self._inbox = inbox
        socket = SocketModeClient(
            app_token=self.app_token,
            web_client=self.client,
            ping_interval=self.ping_interval,
            logger=logging.getLogger(f"{__name__}.socket"),
        )
        socket.socket_mode_request_listeners.append(self._on_request)  # type: ignore[arg-type]
        self._socket = socket
        try:
            try:
                # Ask for the URL ourselves first: connect() alone retries a refused token forever.
                socket.wss_uri = await socket.issue_new_wss_url()
                await socket.connect()  # type: ignore[no-untyped-call]
            except Exception as exc:
                raise self.start_failed(exc, map_error) from self.chain_for(exc)
            self._set_status(AdapterState.CONNECTED, "Socket Mode")
            while True:
                await asyncio.sleep(self.watch_seconds)
                now = self.status()
                self._set_status(now.state, now.detail)
        finally:
            # Shielded: a cancelled run still closes its socket (see DiscordAdapter.run).
            await asyncio.shield(self._release())

    async def whoami(self) -> str:
        """``auth.test``: the bot user and its workspace."""
        try:
            auth = await self.client.auth_test()
        except Exception as exc:
            raise self.start_failed(exc, map_error, when="auth.test") from self.chain_for(exc)
        user = auth.get("user") or auth.get("user_id")
        return f"{user} ({auth.get('team') or auth.get('team_id')})"

    async def _identify(self) -> None:
        """``auth.test``: the bot's own ids (to know its messages and mentions of it)."""
        try:
            auth = await self.client.auth_test()
        except Exception as exc:
            raise self.start_failed(exc, map_error) from self.chain_for(exc)
        self.bot_user_id = auth.get("user_id")
        self.bot_id = auth.get("bot_id")

    async def _serve_events(self, inbox: asyncio.Queue[InboundMessage],
                            events: SlackEvents) -> None:
        """auth.test, then turn the events ``receive_webhook`` queued into messages."""
        await self._identify()
        events.running = True
        self._set_status(AdapterState.CONNECTED, "Events API")
        try:
            while True:
                event = await events.queue.get()
                try:
                    msg = await self._inbound(event)
                except Exception:  # one odd event must not stop the adapter
                    log.exception("slack: skipped an event")
                    continue
                if msg is not None:
                    await inbox.put(msg)
        finally:
            events.running = False
            if self._status.state is not AdapterState.STOPPED:
                self._set_status(AdapterState.STOPPED, "closed")

    def receives_webhooks(self) -> bool:
        return self.events is not None

    async def receive_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        """One Events API request (see ``platforms.slack_events``); answered at once."""
        if self.events is None:
            return WebhookReply.text(404, "slack is not in events mode")
        return self.events.take(headers, body)

    async def _release(self) -> None:
        socket = self._socket
        if socket is not None:
            await socket.close()  # type: ignore[no-untyped-call]
            self._socket = None  # only once closed: an interrupted close is done again

    async def close(self) -> None:
        await self._stop_serving()
        await self._release()
        self._set_status(AdapterState.STOPPED, "closed")

    def status(self) -> AdapterStatus:
        # The SDK reconnects by itself and reports nothing back, so look at its socket.
        socket = self._socket
        if socket is not None and self._status.state in (
            AdapterState.CONNECTED,
            AdapterState.RETRYING,
        ):
            session = socket.current_session
            if session is None or session.closed or socket.stale:
                return AdapterStatus(
                    AdapterState.RETRYING,
                    "Socket Mode connection lost; the SDK is reconnecting",
                    self._status.since,
                )
            return AdapterStatus(AdapterState.CONNECTED, "Socket Mode", self._status.since)
        return self._status

    async def _on_request(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        # Ack first: Slack redelivers unacknowledged envelopes.
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        if req.type != "events_api":
            return
        event = req.payload.get("event") or {}
        msg = await self._inbound(event)
        if msg is not None and self._inbox is not None:
            await self._inbox.put(msg)

    async def _inbound(self, event: dict[str, Any]) -> InboundMessage | None:
        kind = event.get("type")
        if kind not in ("message", "app_mention") or event.get("subtype") not in HUMAN_SUBTYPES:
            return None
        user = event.get("user")
        if not user or event.get("bot_id") or user == self.bot_user_id:
            return None  # our own posts (and other bots') come back as events too
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        if self._already_seen(channel, ts):
            return None  # a mention in a channel the app reads arrives as both event types
        authorized = self.users.allows(user)
        if not authorized:
            log.info("slack: message from user %s, who is not in allowed_users", user)
        files = tuple(
            InboundFile(str(f["id"]), str(f.get("name") or f["id"]),
                        int(f["size"]) if isinstance(f.get("size"), int) else None,
                        f.get("url_private_download") or f.get("url_private"),
                        audio=str(f.get("mimetype") or "").startswith("audio/"))
            for f in event.get("files") or () if f.get("id")
        )
        text, mentioned = self._without_mention(str(event.get("text") or ""))
        return InboundMessage(
            platform=self.name,
            chat=channel,
            thread=event.get("thread_ts"),
            user_id=user,
            user_name=await self._user_name(user),
            text=text,
            message_id=ts,
            is_self=False,
            files=files,
            authorized=authorized,
            is_group=is_group_event(event),
            addressed=(mentioned or kind == "app_mention"
                       or (self.bot_user_id is not None
                           and event.get("parent_user_id") == self.bot_user_id)),
        )

    def _already_seen(self, channel: str, ts: str) -> bool:
        key = (channel, ts)
        if key in self._seen:
            return True
        self._seen[key] = None
        while len(self._seen) > SEEN_MESSAGES:
            self._seen.popitem(last=False)
        return False

    def _without_mention(self, text: str) -> tuple[str, bool]:
        """``<@UBOT> /kanban list`` → (``/kanban list``, True): the text without the bot's
        mentions (``<@UBOT>`` or ``<@UBOT|relay>``), and whether there was one."""
        if not self.bot_user_id:
            return text, False
        spans = [m.span() for m in re.finditer(rf"<@{re.escape(self.bot_user_id)}(?:\|[^>]*)?>",
                                               text)]
        return (without_spans(text, spans), True) if spans else (text, False)

    # --- chat extras ---

    async def typing(self, dest: Destination) -> None:
        """Slack has no typing indicator for bots: a reaction on the message being answered."""
        if dest.reply_to is None:
            return
        try:
            await self.client.reactions_add(channel=dest.chat, timestamp=dest.reply_to,
                                            name=WORKING_REACTION)
        except Exception as exc:  # already reacted, no permission …: never worth a failure
            log.debug("slack: reactions.add failed: %s", self.map_exception(exc, map_error))

    async def download(self, file: InboundFile, dest_dir: Path, max_bytes: int) -> Path:
        """The file's ``url_private`` (asked for with ``files.info`` if the event had none),
        fetched with the bot token — sent only to Slack's own hosts (or the configured API's)."""
        self.refuse_size(file, max_bytes)
        url = file.url
        try:
            if url is None:
                info = await self.client.files_info(file=file.ref)
                data = info.get("file") or {}
                url = data.get("url_private_download") or data.get("url_private")
                if isinstance(data.get("size"), int):
                    self.refuse_size(InboundFile(file.ref, file.name, data["size"]), max_bytes)
        except Exception as exc:
            mapped = self.map_exception(exc, map_error)
            if mapped is None:
                raise
            raise mapped from self.chain_for(exc)
        if not url:
            raise PermanentError(f"{file.name}: Slack gave no download URL", platform=self.name)
        host = urlsplit(url).hostname or ""
        if not (host == self._api_host or host == "slack.com" or host.endswith(".slack.com")):
            raise PermanentError(f"{file.name}: download URL is not Slack's", platform=self.name)
        headers = {"Authorization": f"Bearer {self._bot_token}"}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
                async with http.get(url, headers=headers) as resp:
                    if resp.status != 200:
                        error = (TransientError if resp.status >= 500 else PermanentError)(
                            f"{file.name}: download answered HTTP {resp.status}",
                            platform=self.name,
                        )
                        raise error
                    return await self.save_stream(
                        file, resp.content.iter_chunked(65536), dest_dir, max_bytes
                    )
        except PlatformError:
            raise
        except Exception as exc:
            mapped = self.map_exception(exc, map_error)
            if mapped is None:
                raise
            raise mapped from self.chain_for(exc)

    async def _user_name(self, user: str) -> str:
        if user not in self._names:
            try:
                info = await self.client.users_info(user=user)
                profile = info.get("user") or {}
                self._names[user] = str(profile.get("name") or profile.get("real_name") or user)
            except Exception as exc:  # a name is nice to have; the message matters
                log.info("slack users.info failed for %s: %s", user, map_error(exc) or exc)
                return user
        return self._names[user]

    # --- sending ---

    async def send(self, dest: Destination, text: str) -> Receipt:
        async def post(chunk: str) -> list[str]:
            resp = await self.client.chat_postMessage(
                channel=dest.chat, text=chunk, mrkdwn=True, thread_ts=dest.thread
            )
            return [str(resp.get("ts"))]

        async def one(chunk: str) -> Receipt:
            return await self.guarded(lambda: post(chunk), map_error)

        # Render first, then split: escaping makes the text longer, and Slack's limit applies to
        # what it receives. Cuts avoid links, mentions and entities (SLACK_PROTECT).
        parts = self.message_parts(dest, to_mrkdwn(text), protect=SLACK_PROTECT)
        return await self.send_parts(parts, one)

    async def _upload(
        self, dest: Destination, paths: Sequence[Path], caption: str | None
    ) -> Receipt:
        async def call() -> list[str]:
            resp = await self.client.files_upload_v2(
                file_uploads=[{"file": str(p), "filename": clean_file_name(p.name),
                               "title": clean_file_name(p.name)} for p in paths],
                channel=dest.chat,
                thread_ts=dest.thread,
                initial_comment=to_mrkdwn(caption) if caption else None,
            )
            return [str(f.get("id")) for f in resp.get("files") or ()]

        return await self.guarded(call, map_error, name=", ".join(p.name for p in paths))

    async def send_document(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        refusal = self.check_file(path, FileKind.DOCUMENT)
        return refusal or await self._upload(dest, [path], caption)

    async def send_video(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        refusal = self.check_file(path, FileKind.VIDEO)
        return refusal or await self._upload(dest, [path], caption)

    async def send_multiple_images(
        self, dest: Destination, paths: Sequence[Path], caption: str | None = None
    ) -> list[Receipt]:
        receipts: list[Receipt] = []
        ok: list[Path] = []
        for path in paths:
            refusal = self.check_file(path, FileKind.IMAGE)
            if refusal is not None:
                receipts.append(refusal)
            else:
                ok.append(path)
        pending = caption
        for start in range(0, len(ok), FILES_PER_MESSAGE):
            receipts.append(
                await self._upload(dest, ok[start : start + FILES_PER_MESSAGE], pending)
            )
            pending = None
        return receipts
