"""Slack through slack_sdk (async): Socket Mode inbound, Web API outbound, files upload v2.

Inbound: ``apps.connections.open`` (app token) gives a WebSocket URL; the SDK's aiohttp
``SocketModeClient`` keeps it connected (reconnects on close/disconnect), the adapter acks every
envelope and turns ``message`` events into ``InboundMessage`` values.
Outbound: ``chat.postMessage`` (mrkdwn, ``thread_ts``) and the current upload flow
(``files.getUploadURLExternal`` → POST → ``files.completeUploadExternal`` with ``channel_id`` and
``thread_ts``; several images in one completion). 429 (Retry-After) and 5xx are retried by the SDK's
retry handlers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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

from platforms.base import Destination, InboundMessage, Limits, MiB, PlatformAdapter, Receipt
from platforms.errors import (
    AuthError,
    BadRequest,
    NotFound,
    PermanentError,
    PlatformError,
    RateLimited,
    TransientError,
)
from platforms.files import FileKind
from platforms.text import split_text

log = logging.getLogger(__name__)

TEXT_LIMIT = 4000  # Slack truncates at 40k, but recommends messages stay under 4k characters
FILES_PER_MESSAGE = 10
MAX_FILE_BYTES = 1024 * MiB
AUTH_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
NOT_FOUND_ERRORS = {"channel_not_found", "thread_not_found", "message_not_found", "not_in_channel"}
# Message subtypes that are people talking (everything else: joins, edits, bot posts …).
HUMAN_SUBTYPES = {None, "file_share", "thread_broadcast", "me_message"}


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


_CODE_SPLIT = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)


def to_mrkdwn(text: str) -> str:
    """Common Markdown to Slack mrkdwn (bold, strike, links, headings), leaving code alone."""
    parts = _CODE_SPLIT.split(text)
    for i in range(0, len(parts), 2):
        s = parts[i]
        s = re.sub(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", s)
        s = re.sub(r"\*\*(.+?)\*\*", r"*\1*", s)
        s = re.sub(r"__(.+?)__", r"*\1*", s)
        s = re.sub(r"~~(.+?)~~", r"~\1~", s)
        s = re.sub(r"(?m)^#{1,6}\s+(.+)$", r"*\1*", s)
        parts[i] = s
    return "".join(parts)


class SlackAdapter(PlatformAdapter):
    """Slack app with a bot token (Web API) and an app-level token (Socket Mode)."""

    name = "slack"

    def __init__(
        self,
        bot_token: str,
        app_token: str | None = None,
        *,
        base_url: str | None = None,
        allowed_users: Sequence[str] | None = None,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_file_bytes: int = MAX_FILE_BYTES,
        ping_interval: float = 5.0,
        timeout: int = 30,
    ) -> None:
        if not bot_token:
            raise ValueError("slack adapter needs a bot token")
        self.app_token = app_token
        self.allowed_users = None if allowed_users is None else {str(u) for u in allowed_users}
        self.ping_interval = ping_interval
        self.max_file_bytes = max_file_bytes
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

    async def start(self, inbox: asyncio.Queue[InboundMessage]) -> None:
        if not self.app_token:
            raise ValueError("slack inbound (Socket Mode) needs an app token")
        try:
            auth = await self.client.auth_test()
        except Exception as exc:
            raise (map_error(exc) or exc) from exc
        self.bot_user_id = auth.get("user_id")
        self.bot_id = auth.get("bot_id")
        self._inbox = inbox
        self._socket = SocketModeClient(
            app_token=self.app_token,
            web_client=self.client,
            ping_interval=self.ping_interval,
            logger=logging.getLogger(f"{__name__}.socket"),
        )
        self._socket.socket_mode_request_listeners.append(self._on_request)  # type: ignore[arg-type]
        try:
            # Ask for the URL ourselves first: connect() alone retries a refused token forever.
            self._socket.wss_uri = await self._socket.issue_new_wss_url()
            await self._socket.connect()  # type: ignore[no-untyped-call]
        except Exception as exc:
            await self._socket.close()  # type: ignore[no-untyped-call]
            self._socket = None
            raise (map_error(exc) or exc) from exc

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()  # type: ignore[no-untyped-call]
            self._socket = None

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
        if event.get("type") != "message" or event.get("subtype") not in HUMAN_SUBTYPES:
            return None
        user = event.get("user")
        if not user or event.get("bot_id") or user == self.bot_user_id:
            return None  # our own posts (and other bots') come back as events too
        if self.allowed_users is not None and user not in self.allowed_users:
            log.info("slack: ignoring message from unlisted user %s", user)
            return None
        files = tuple(str(f.get("id")) for f in event.get("files") or () if f.get("id"))
        return InboundMessage(
            platform=self.name,
            chat=str(event.get("channel", "")),
            thread=event.get("thread_ts"),
            user_id=user,
            user_name=await self._user_name(user),
            text=str(event.get("text") or ""),
            message_id=str(event.get("ts", "")),
            is_self=False,
            files=files,
        )

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

        return await self.send_parts(split_text(to_mrkdwn(text), TEXT_LIMIT), one)

    async def _upload(
        self, dest: Destination, paths: Sequence[Path], caption: str | None
    ) -> Receipt:
        async def call() -> list[str]:
            resp = await self.client.files_upload_v2(
                file_uploads=[{"file": str(p), "filename": p.name, "title": p.name} for p in paths],
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
