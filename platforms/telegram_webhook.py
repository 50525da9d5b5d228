"""Telegram's webhook mode: the settings, the secret-token check, and taking one update.

With ``mode: webhook`` the adapter calls ``setWebhook`` at start with the public ``webhook_url``
and a ``secret_token``; Telegram then POSTs every update there with the header
``X-Telegram-Bot-Api-Secret-Token``. A request without that exact token (compared in constant
time) is refused with 401 and nothing of it is read. An update id seen in the last day (Telegram
keeps an undelivered update that long and redelivers it when an answer was slow) is answered 200
and not handled again. When the gateway's inbox is full the answer is 503: Telegram keeps the
update and tries again, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import telegram

from platforms.base import InboundMessage
from platforms.errors import AdapterConfigError
from platforms.webhooks import OK, RecentKeys, WebhookReply

log = logging.getLogger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
# What Telegram accepts as a secret_token: 1-256 of A-Z, a-z, 0-9, _ and -.
SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")
UPDATE_MEMORY_SECONDS = 86400.0


class TelegramWebhook:
    """The webhook side of one adapter: ``url`` set at start, ``secret`` checked per request."""

    def __init__(self, url: str | None, secret: str | None) -> None:
        if not url:
            raise AdapterConfigError(
                "telegram: mode is webhook, but there is no webhook_url (set "
                "platforms.telegram.webhook_url, or dashboard.public_url)", platform="telegram")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise AdapterConfigError(f"telegram: webhook_url {url!r} is not an http(s) URL",
                                     platform="telegram")
        if not secret:
            raise AdapterConfigError(
                "telegram: mode is webhook, but the webhook secret is not set (the variable "
                "platforms.telegram.webhook_secret_env names)", platform="telegram")
        if not SECRET_SHAPE.fullmatch(secret):
            raise AdapterConfigError(
                "telegram: the webhook secret must be 1-256 of A-Z, a-z, 0-9, _ and -",
                platform="telegram")
        if parts.scheme != "https":
            log.warning("telegram: webhook_url is not https; the Bot API itself accepts only "
                        "https on ports 443, 80, 88 or 8443")
        self.url = url
        self.secret = secret
        self.host = parts.hostname
        self.seen = RecentKeys(UPDATE_MEMORY_SECONDS)

    def authentic(self, headers: Mapping[str, str]) -> bool:
        given = headers.get(SECRET_HEADER, "")
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.secret.encode())

    def take(self, headers: Mapping[str, str], body: bytes, bot: telegram.Bot,
             inbox: asyncio.Queue[InboundMessage] | None,
             translate: Callable[[telegram.Update], InboundMessage | None]) -> WebhookReply:
        """One POST from Telegram → the reply; its message (if any) put into ``inbox``."""
        if not self.authentic(headers):
            log.warning("telegram: webhook request without the right secret token refused")
            return WebhookReply.text(401, "unauthorized")
        if inbox is None:  # the adapter is not running (yet): Telegram will try again
            return WebhookReply.text(503, "not ready")
        try:
            data = json.loads(body)
            update = telegram.Update.de_json(data, bot) if isinstance(data, dict) else None
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("telegram: a webhook body that is not an update (%s)", type(exc).__name__)
            return WebhookReply.text(400, "not a Telegram update")
        if update is None:
            return WebhookReply.text(400, "not a Telegram update")
        key = str(update.update_id)
        if not self.seen.add(key):
            log.info("telegram: update %s delivered again; handled once", key)
            return OK
        try:
            message = translate(update)
        except Exception:  # one odd update must not stop the bot (as when polling)
            log.exception("telegram: skipped update %s", key)
            return OK
        if message is not None:
            try:
                inbox.put_nowait(message)
            except asyncio.QueueFull:
                self.seen.discard(key)  # taken again when Telegram redelivers it
                log.warning("telegram: the gateway's inbox is full; update %s left to Telegram "
                            "to deliver again", key)
                return WebhookReply.text(503, "busy")
        return OK
