"""Telegram through python-telegram-bot v22 (``ExtBot`` + ``AIORateLimiter``), long polling.

Only the Bot API client of PTB is used, not ``Application``: the adapter's polling task fetches
updates and puts ``InboundMessage`` values into the gateway's inbox; the gateway dispatches.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import telegram
import telegram.error as tg_error
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

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
from platforms.files import FileKind, image_size
from platforms.retry import Backoff
from platforms.text import split_text, utf16_len

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096  # UTF-16 code units
CAPTION_LIMIT = 1024
PHOTO_MAX_BYTES = 10 * MiB
PHOTO_MAX_SIDES = 10000  # width + height
PHOTO_MAX_RATIO = 20
GROUP_SIZE = 10


def photo_ok(path: Path, size: int) -> bool:
    """Whether Telegram accepts the file as a photo; otherwise it must go as a document."""
    if size > PHOTO_MAX_BYTES or path.suffix.lower() not in {
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".webp",
        ".bmp",
    }:
        return False
    dims = image_size(path)
    if dims is None:
        return path.suffix.lower() == ".bmp"  # no header reader for BMP; let Telegram decide
    w, h = dims
    if w <= 0 or h <= 0 or w + h > PHOTO_MAX_SIDES:
        return False
    return max(w, h) / min(w, h) <= PHOTO_MAX_RATIO


def retry_after_seconds(exc: tg_error.RetryAfter) -> float:
    # PTB 22 warns when retry_after is read as an int unless PTB_TIMEDELTA is set; accept both.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def map_error(exc: BaseException) -> PlatformError | None:
    """Translate a PTB exception into the ``platforms.errors`` tree (None: not ours)."""
    text = str(exc)
    if isinstance(exc, tg_error.RetryAfter):
        return RateLimited(text, retry_after=retry_after_seconds(exc), platform="telegram")
    if isinstance(exc, tg_error.InvalidToken):
        return AuthError(text, platform="telegram")
    if isinstance(exc, tg_error.Forbidden):
        return PermanentError(text, platform="telegram")
    if isinstance(exc, tg_error.BadRequest):
        if "not found" in text.lower():
            return NotFound(text, platform="telegram")
        return BadRequest(text, platform="telegram")
    if isinstance(exc, tg_error.ChatMigrated):
        return PermanentError(f"chat migrated to {exc.new_chat_id}", platform="telegram")
    if isinstance(exc, tg_error.Conflict | tg_error.TimedOut | tg_error.NetworkError):
        return TransientError(text, platform="telegram")
    if isinstance(exc, tg_error.TelegramError):
        return PermanentError(text, platform="telegram")
    if isinstance(exc, OSError):
        return TransientError(str(exc) or type(exc).__name__, platform="telegram")
    return None


class TelegramAdapter(PlatformAdapter):
    """Telegram bot. ``base_url`` points at a self-hosted Bot API server (or a test fake)."""

    name = "telegram"

    def __init__(
        self,
        token: str,
        *,
        allowed_users: Sequence[str] | None = None,
        base_url: str | None = None,
        base_file_url: str | None = None,
        max_upload_bytes: int = 50 * MiB,
        poll_timeout: float = 30.0,
        request_timeout: float = 20.0,
        backoff: Backoff | None = None,
        rate_limiter_retries: int = 2,
    ) -> None:
        if not token:
            raise ValueError("telegram adapter needs a token")
        root = (base_url or "https://api.telegram.org").rstrip("/")
        self.allowed_users = None if allowed_users is None else {str(u) for u in allowed_users}
        self.max_upload_bytes = max_upload_bytes
        self.poll_timeout = poll_timeout
        self.backoff = backoff or Backoff(base=1.0, cap=60.0)
        self.connections = 0  # getUpdates failures followed by a retry (for health checks)
        self._requests = (self._request(request_timeout), self._request(request_timeout))
        self.bot: ExtBot[int] = ExtBot(
            token,
            base_url=f"{root}/bot",
            base_file_url=base_file_url or f"{root}/file/bot",
            request=self._requests[0],
            get_updates_request=self._requests[1],
            rate_limiter=AIORateLimiter(max_retries=rate_limiter_retries),
        )
        self._inbox: asyncio.Queue[InboundMessage] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._initialized = False

    @staticmethod
    def _request(timeout: float) -> HTTPXRequest:
        return HTTPXRequest(
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            pool_timeout=timeout,
            connection_pool_size=8,
        )

    def limits(self) -> Limits:
        return Limits(
            text_length=TEXT_LIMIT,
            max_bytes={kind: self.max_upload_bytes for kind in FileKind},
            group_size=GROUP_SIZE,
            default_max_bytes=self.max_upload_bytes,
        )

    # --- lifecycle ---

    async def _ensure_initialized(self) -> None:
        if self._initialized:
            return
        try:
            await self.bot.initialize()  # getMe: learns the bot's own id
        except BaseException:
            # A failed getMe leaves PTB's HTTP clients open; close them so no socket leaks.
            await asyncio.gather(*(r.shutdown() for r in self._requests))
            raise
        self._initialized = True

    async def start(self, inbox: asyncio.Queue[InboundMessage]) -> None:
        try:
            await self._ensure_initialized()
        except Exception as exc:
            raise (map_error(exc) or exc) from exc
        self._inbox = inbox
        self._poller = asyncio.create_task(self._poll(), name="telegram-poll")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._initialized:
            await self.bot.shutdown()
            self._initialized = False

    async def _poll(self) -> None:
        offset: int | None = None
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset,
                    timeout=int(self.poll_timeout),
                    allowed_updates=["message"],
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                mapped = map_error(exc)
                retry_after = mapped.retry_after if isinstance(mapped, RateLimited) else None
                delay = self.backoff.next_delay(retry_after)
                self.connections += 1
                log.warning("telegram getUpdates failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            self.backoff.reset()
            for update in updates:
                offset = update.update_id + 1
                msg = self._inbound(update)
                if msg is not None and self._inbox is not None:
                    await self._inbox.put(msg)

    def _inbound(self, update: telegram.Update) -> InboundMessage | None:
        message = update.message
        if message is None or message.from_user is None:
            return None
        user = message.from_user
        is_self = user.id == self.bot.id
        if is_self:
            return None
        if self.allowed_users is not None and str(user.id) not in self.allowed_users:
            log.info("telegram: ignoring message from unlisted user %s", user.id)
            return None
        thread = message.message_thread_id if message.is_topic_message else None
        files: list[str] = []
        if message.document is not None:
            files.append(message.document.file_id)
        if message.photo:
            files.append(message.photo[-1].file_id)
        return InboundMessage(
            platform=self.name,
            chat=str(message.chat.id),
            thread=None if thread is None else str(thread),
            user_id=str(user.id),
            user_name=user.username or user.full_name,
            text=message.text or message.caption or "",
            message_id=str(message.message_id),
            is_self=is_self,
            files=tuple(files),
        )

    # --- sending ---

    @staticmethod
    def _where(dest: Destination) -> dict[str, object]:
        where: dict[str, object] = {"chat_id": dest.chat}
        if dest.thread is not None:
            where["message_thread_id"] = int(dest.thread)
        if dest.reply_to is not None:
            where["reply_parameters"] = telegram.ReplyParameters(
                message_id=int(dest.reply_to), allow_sending_without_reply=True
            )
        return where

    async def send(self, dest: Destination, text: str) -> Receipt:
        async def one(chunk: str) -> Receipt:
            return await self._guarded(lambda: self._send_message(dest, chunk))

        return await self.send_parts(split_text(text, TEXT_LIMIT, length=utf16_len), one)

    async def _guarded(
        self, call: Callable[[], Awaitable[Sequence[str]]], *, name: str | None = None
    ) -> Receipt:
        async def initialized_call() -> Sequence[str]:
            await self._ensure_initialized()
            return await call()

        return await self.guarded(initialized_call, map_error, name=name)

    async def _send_message(self, dest: Destination, text: str) -> list[str]:
        msg = await self.bot.send_message(text=text, **self._where(dest))  # type: ignore[arg-type]
        return [str(msg.message_id)]

    def _caption(self, caption: str | None) -> str | None:
        if caption is None:
            return None
        chunks = split_text(caption, CAPTION_LIMIT, length=utf16_len)
        return chunks[0] if chunks else None

    async def send_document(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        refusal = self.check_file(path, FileKind.DOCUMENT)
        if refusal is not None:
            return refusal

        async def call() -> list[str]:
            msg = await self.bot.send_document(
                document=path,
                caption=self._caption(caption),
                filename=path.name,
                **self._where(dest),  # type: ignore[arg-type]
            )
            return [str(msg.message_id)]

        return await self._guarded(call, name=path.name)

    async def send_video(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        refusal = self.check_file(path, FileKind.VIDEO)
        if refusal is not None:
            return refusal

        async def call() -> list[str]:
            msg = await self.bot.send_video(
                video=path,
                caption=self._caption(caption),
                filename=path.name,
                supports_streaming=True,
                **self._where(dest),  # type: ignore[arg-type]
            )
            return [str(msg.message_id)]

        return await self._guarded(call, name=path.name)

    async def send_photo(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        async def call() -> list[str]:
            msg = await self.bot.send_photo(
                photo=path,
                caption=self._caption(caption),
                filename=path.name,
                **self._where(dest),  # type: ignore[arg-type]
            )
            return [str(msg.message_id)]

        return await self._guarded(call, name=path.name)

    async def send_multiple_images(
        self, dest: Destination, paths: Sequence[Path], caption: str | None = None
    ) -> list[Receipt]:
        receipts: list[Receipt] = []
        photos: list[Path] = []
        as_documents: list[Path] = []
        for path in paths:
            refusal = self.check_file(path, FileKind.IMAGE)
            if refusal is not None:
                receipts.append(refusal)
            elif photo_ok(path, path.stat().st_size):
                photos.append(path)
            else:
                as_documents.append(path)
        pending = caption
        for start in range(0, len(photos), GROUP_SIZE):
            group = photos[start : start + GROUP_SIZE]
            if len(group) == 1:
                receipts.append(await self.send_photo(dest, group[0], pending))
            else:
                receipts.append(await self._send_group(dest, group, pending))
            pending = None
        for path in as_documents:
            receipts.append(await self.send_document(dest, path, pending))
            pending = None
        return receipts

    async def _send_group(
        self, dest: Destination, group: Sequence[Path], caption: str | None
    ) -> Receipt:
        async def call() -> list[str]:
            media = [
                telegram.InputMediaPhoto(
                    media=path.read_bytes(),
                    filename=path.name,
                    caption=self._caption(caption) if i == 0 else None,
                )
                for i, path in enumerate(group)
            ]
            msgs = await self.bot.send_media_group(media=media, **self._where(dest))  # type: ignore[arg-type]
            return [str(m.message_id) for m in msgs]

        return await self._guarded(call, name=", ".join(p.name for p in group))
