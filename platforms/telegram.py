"""Telegram through python-telegram-bot v22 (``ExtBot`` + ``AIORateLimiter``): long polling,
or a webhook served by the gateway's web server (``mode="webhook"``, see
``platforms.telegram_webhook``).

Only the Bot API client of PTB is used, not ``Application``: the adapter's polling task fetches
updates and puts ``InboundMessage`` values into the gateway's inbox; the gateway dispatches.

In webhook mode ``run()`` calls ``setWebhook`` (with the secret token) and then waits while
``receive_webhook`` takes the updates Telegram POSTs, through the same translation as polling.
Polling ``run()`` deletes any webhook first (Telegram refuses ``getUpdates`` while one is set),
then long polls until cancelled. It does not retry: a failed ``getUpdates`` ends it with the mapped
error, and the gateway's runner (one backoff policy for every platform) runs it again. A 409
Conflict means someone else holds the token — a second poller with the same bot token, or a webhook
set after we started — and ends it with ``platforms.errors.Conflict``, which the runner shows as
the ``conflict`` state and logs once per streak. Sends keep PTB's own retry for flood control
(``AIORateLimiter``).

Text goes as Bot API HTML converted from our Markdown (``platforms.markup``); if Telegram refuses
the markup, the same part is sent again as plain text.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import telegram
import telegram.error as tg_error
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

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
from platforms.chunking import split_message, utf16_len
from platforms.errors import (
    AdapterConfigError,
    AuthError,
    BadRequest,
    Conflict,
    NotFound,
    PermanentError,
    PlatformError,
    RateLimited,
    TransientError,
)
from platforms.files import FileKind, image_size
from platforms.markup import MARKDOWN_PROTECT, to_telegram_html
from platforms.receipts import MiB, Receipt
from platforms.redact import protect_loggers
from platforms.telegram_inbound import for_another_bot, group_facts, inbound_files
from platforms.telegram_webhook import TelegramWebhook
from platforms.untrusted import clean_file_name
from platforms.webhooks import WebhookReply

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096  # UTF-16 code units
CAPTION_LIMIT = 1024
PHOTO_MAX_BYTES = 10 * MiB
PHOTO_MAX_SIDES = 10000  # width + height
PHOTO_MAX_RATIO = 20
GROUP_SIZE = 10
DEFAULT_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_FILE_URL = "https://api.telegram.org/file/bot"
HTML = "HTML"
# Loggers that print the token (PTB puts it in every URL; httpx logs URLs at INFO).
SDK_LOGGERS = (
    "httpx",
    "telegram.Bot",
    "telegram.ext.ExtBot",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
    "telegram.ext.AIORateLimiter",
    __name__,  # our own tracebacks, in case an SDK message inside one names the token
)
CONFLICT_DETAIL = (
    "409 Conflict: another process is polling with this bot token, or a webhook was set; retrying"
)


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
    if isinstance(exc, tg_error.Conflict):
        return Conflict(text, platform="telegram")
    if isinstance(exc, tg_error.TimedOut | tg_error.NetworkError):
        return TransientError(text, platform="telegram")
    if isinstance(exc, tg_error.TelegramError):
        return PermanentError(text, platform="telegram")
    if isinstance(exc, OSError):
        return TransientError(str(exc) or type(exc).__name__, platform="telegram")
    return None


def file_base_url(base_url: str) -> str | None:
    """PTB's file URL beside an API base that ends in ``/bot`` (None: not derivable)."""
    return base_url.removesuffix("/bot") + "/file/bot" if base_url.endswith("/bot") else None


class TelegramAdapter(PlatformAdapter):
    """Telegram bot. ``base_url`` is PTB's ``base_url`` (``https://api.telegram.org/bot``, the
    token is appended to it): a self-hosted Bot API server, a proxy, or a test fake."""

    name = "telegram"

    def __init__(
        self,
        token: str,
        *,
        allowed_users: Sequence[str],
        base_url: str | None = None,
        base_file_url: str | None = None,
        max_upload_bytes: int = 50 * MiB,
        poll_timeout: float = 30.0,
        request_timeout: float = 20.0,
        rate_limiter_retries: int = 2,
        mode: str = "polling",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        if not token:
            raise AdapterConfigError("telegram: no bot token given", platform="telegram")
        if mode not in ("polling", "webhook"):
            raise AdapterConfigError(f"telegram: mode must be polling or webhook, not {mode!r}",
                                     platform="telegram")
        self.users = AllowedUsers.parse(self.name, allowed_users)
        self._secrets = tuple(s for s in (token, webhook_secret) if s)
        self.webhook = (TelegramWebhook(webhook_url, webhook_secret) if mode == "webhook"
                        else None)
        self._inbox: asyncio.Queue[InboundMessage] | None = None
        protect_loggers(self._secrets, SDK_LOGGERS)  # before PTB logs its URLs
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base.endswith("/bot") and "{token}" not in base:
            log.warning(
                "telegram: base_url %s does not end in /bot; python-telegram-bot appends the "
                "token to it as it is (the official value is %s)",
                base,
                DEFAULT_BASE_URL,
            )
        self.max_upload_bytes = max_upload_bytes
        self.poll_timeout = poll_timeout
        self._requests = (self._request(request_timeout), self._request(request_timeout))
        file_url = base_file_url or file_base_url(base) or DEFAULT_FILE_URL
        self.bot: ExtBot[int] = ExtBot(
            token,
            base_url=base,
            base_file_url=file_url,
            request=self._requests[0],
            get_updates_request=self._requests[1],
            rate_limiter=AIORateLimiter(max_retries=rate_limiter_retries),
        )
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
            # A failed getMe leaves PTB's HTTP clients open; close them so no socket leaks, through
            # the bot so that a later initialize() opens them again.
            await self.bot.shutdown()
            raise
        self._initialized = True

    async def run(
        self, inbox: asyncio.Queue[InboundMessage], report: Report | None = None
    ) -> None:
        """getMe, deleteWebhook, then long polling into ``inbox`` until cancelled.

        A failed ``getUpdates`` ends the run with the mapped error — ``Conflict`` for a 409 —
        and the gateway's runner decides when to poll again; one odd update is skipped."""
        self.begin_run(report)
        if self.webhook is not None:
            await self._serve_webhook(inbox, self.webhook)
            return
        try:
            await self._ensure_initialized()
            # getUpdates is refused (409) while a webhook is set; pending updates are kept.
            await self.bot.delete_webhook(drop_pending_updates=False)
        except Exception as exc:
            raise self.start_failed(exc, map_error) from self.chain_for(exc)
        try:
            await self._poll(inbox)
        finally:
            if self._status.state is not AdapterState.STOPPED:
                self._set_status(AdapterState.STOPPED, "closed")

    async def whoami(self) -> str:
        """``getMe``: the bot's ``@username``."""
        try:
            await self._ensure_initialized()
        except Exception as exc:
            raise self.start_failed(exc, map_error, when="getMe") from self.chain_for(exc)
        return f"@{self.bot.username}"

    async def _serve_webhook(self, inbox: asyncio.Queue[InboundMessage],
                             webhook: TelegramWebhook) -> None:
        """setWebhook, then serve until cancelled; the updates come in ``receive_webhook``.

        The webhook stays set when the gateway stops: Telegram keeps the updates that arrive
        meanwhile and delivers them once the gateway answers again."""
        try:
            await self._ensure_initialized()
            await self.bot.set_webhook(url=webhook.url, secret_token=webhook.secret,
                                       allowed_updates=["message"], drop_pending_updates=False)
        except Exception as exc:
            raise self.start_failed(exc, map_error) from self.chain_for(exc)
        self._inbox = inbox
        self._set_status(AdapterState.CONNECTED, f"webhook on {webhook.host}")
        try:
            await asyncio.Event().wait()
        finally:
            self._inbox = None
            if self._status.state is not AdapterState.STOPPED:
                self._set_status(AdapterState.STOPPED, "closed")

    def receives_webhooks(self) -> bool:
        return self.webhook is not None

    async def receive_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        """One update Telegram POSTed to the gateway (see ``platforms.telegram_webhook``)."""
        if self.webhook is None:
            return WebhookReply.text(404, "telegram is not in webhook mode")
        return self.webhook.take(headers, body, self.bot, self._inbox, self._inbound)

    async def close(self) -> None:
        await self._stop_serving()
        if self._initialized:
            await self.bot.shutdown()
            self._initialized = False
        self._set_status(AdapterState.STOPPED, "closed")

    async def _poll(self, inbox: asyncio.Queue[InboundMessage]) -> None:
        offset: int | None = None
        # The first poll does not wait for updates: its answer says at once whether this process
        # holds the token (``connected``) or someone else does (409), instead of a long poll later.
        timeout = 0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset,
                    timeout=timeout,
                    allowed_updates=["message"],
                )
            except Exception as exc:
                raise self._poll_failed(exc) from self.chain_for(exc)
            timeout = int(self.poll_timeout)
            self._set_status(AdapterState.CONNECTED, "long polling")
            for update in updates:
                offset = update.update_id + 1
                try:
                    msg = self._inbound(update)
                except Exception:  # one odd update must not stop the bot
                    log.exception("telegram: skipped update %s", update.update_id)
                    continue
                if msg is not None:
                    await inbox.put(msg)

    def _poll_failed(self, exc: Exception) -> PlatformError:
        """The error a failed getUpdates ends the run with; the status says ``stopped`` with it
        (the runner then shows ``conflict`` or ``retrying`` while it waits)."""
        if isinstance(exc, tg_error.Conflict):
            self._set_status(AdapterState.STOPPED, CONFLICT_DETAIL)
            return Conflict(CONFLICT_DETAIL, platform="telegram")
        return self.start_failed(exc, map_error, when="getUpdates failed")

    def _inbound(self, update: telegram.Update) -> InboundMessage | None:
        message = update.message
        if message is None or message.from_user is None:
            return None
        user = message.from_user
        is_self = user.id == self.bot.id
        if is_self or user.is_bot or for_another_bot(message, self.bot.username):
            return None
        authorized = self.users.allows(str(user.id))
        if not authorized:
            # The id, never the text: this is how an operator finds an id for allowed_users.
            log.info("telegram: message from user %s, who is not in allowed_users", user.id)
        thread = message.message_thread_id if message.is_topic_message else None
        is_group, addressed, text = group_facts(message, self.bot.id, self.bot.username)
        return InboundMessage(
            platform=self.name,
            chat=str(message.chat.id),
            thread=None if thread is None else str(thread),
            user_id=str(user.id),
            user_name=user.username or user.full_name,
            text=text,
            message_id=str(message.message_id),
            is_self=is_self,
            files=inbound_files(message),
            authorized=authorized,
            is_group=is_group,
            addressed=addressed,
        )

    # --- chat extras ---

    async def typing(self, dest: Destination) -> None:
        try:
            await self.bot.send_chat_action(
                chat_id=dest.chat,
                action=telegram.constants.ChatAction.TYPING,
                message_thread_id=int(dest.thread) if dest.thread is not None else None,
            )
        except Exception as exc:  # an indicator is never worth failing a reply for
            log.debug("telegram: sendChatAction failed: %s", self.map_exception(exc, map_error))

    async def download(self, file: InboundFile, dest_dir: Path, max_bytes: int) -> Path:
        """getFile, then the file from the Bot API's file URL (``base_file_url``)."""
        self.refuse_size(file, max_bytes)
        try:
            await self._ensure_initialized()
            tg_file = await self.bot.get_file(file.ref)
            if tg_file.file_size is not None:
                self.refuse_size(InboundFile(file.ref, file.name, tg_file.file_size), max_bytes)
            data = bytes(await tg_file.download_as_bytearray())
        except PlatformError:
            raise
        except Exception as exc:
            mapped = self.map_exception(exc, map_error)
            if mapped is None:
                raise
            raise mapped from self.chain_for(exc)

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        return await self.save_stream(file, chunks(), dest_dir, max_bytes)

    # --- sending ---

    @staticmethod
    def _where(dest: Destination) -> dict[str, object]:
        where: dict[str, object] = {"chat_id": dest.chat}
        if dest.silent:
            where["disable_notification"] = True
        if dest.thread is not None:
            where["message_thread_id"] = int(dest.thread)
        if dest.reply_to is not None:
            where["reply_parameters"] = telegram.ReplyParameters(
                message_id=int(dest.reply_to), allow_sending_without_reply=True
            )
        return where

    async def send(self, dest: Destination, text: str) -> Receipt:
        # Split the Markdown, then render each part: Telegram counts the limit on the text after
        # entity parsing, which is never longer than its Markdown source.
        parts = self.message_parts(dest, text, length=utf16_len, protect=MARKDOWN_PROTECT)

        async def one(part: str) -> Receipt:
            async def call(html: bool) -> list[str]:
                msg = await self.bot.send_message(
                    text=to_telegram_html(part) if html else part,
                    parse_mode=HTML if html else None,
                    **self._where(dest),  # type: ignore[arg-type]
                )
                return [str(msg.message_id)]

            return await self._guarded(call)

        return await self.send_parts(parts, one)

    async def _guarded(
        self, call: Callable[[bool], Awaitable[Sequence[str]]], *, name: str | None = None
    ) -> Receipt:
        """Run ``call(html=True)``; if Telegram refuses the markup, ``call(html=False)``."""

        async def initialized_call() -> Sequence[str]:
            await self._ensure_initialized()
            try:
                return await call(True)
            except tg_error.BadRequest as exc:
                if "can't parse entities" not in str(exc).lower():
                    raise
                log.warning("telegram: markup refused (%s); sending it as plain text", exc)
                return await call(False)

        return await self.guarded(initialized_call, map_error, name=name)

    @staticmethod
    def _caption(caption: str | None, html: bool) -> dict[str, object]:
        """Caption keywords: the first 1024 units of ``caption``, rendered or plain."""
        if caption is None:
            return {}
        parts = split_message(caption, CAPTION_LIMIT, length=utf16_len, protect=MARKDOWN_PROTECT)
        if not parts:
            return {}
        if not html:
            return {"caption": parts[0]}
        return {"caption": to_telegram_html(parts[0]), "parse_mode": HTML}

    async def send_document(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        refusal = self.check_file(path, FileKind.DOCUMENT)
        if refusal is not None:
            return refusal

        async def call(html: bool) -> list[str]:
            msg = await self.bot.send_document(
                document=path,
                filename=clean_file_name(path.name),
                **self._caption(caption, html),  # type: ignore[arg-type]
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

        async def call(html: bool) -> list[str]:
            msg = await self.bot.send_video(
                video=path,
                filename=clean_file_name(path.name),
                supports_streaming=True,
                **self._caption(caption, html),  # type: ignore[arg-type]
                **self._where(dest),  # type: ignore[arg-type]
            )
            return [str(msg.message_id)]

        return await self._guarded(call, name=path.name)

    async def send_photo(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        async def call(html: bool) -> list[str]:
            msg = await self.bot.send_photo(
                photo=path,
                filename=clean_file_name(path.name),
                **self._caption(caption, html),  # type: ignore[arg-type]
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
        async def call(html: bool) -> list[str]:
            media = [
                telegram.InputMediaPhoto(
                    media=path.read_bytes(),
                    filename=clean_file_name(path.name),
                    **(self._caption(caption, html) if i == 0 else {}),  # type: ignore[arg-type]
                )
                for i, path in enumerate(group)
            ]
            msgs = await self.bot.send_media_group(media=media, **self._where(dest))  # type: ignore[arg-type]
            return [str(m.message_id) for m in msgs]

        return await self._guarded(call, name=", ".join(p.name for p in group))
