"""Slack's Events API over HTTP (``mode: events``): signature check, replay refusal, dispatch.

Slack signs every request with the app's signing secret: ``X-Slack-Signature`` is
``v0=`` + HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}``. A request is refused with
401 when the signature is missing or wrong (compared in constant time by slack-sdk's
``SignatureVerifier``), when its timestamp is more than five minutes from now, or when the same
signature was already seen within that window — a captured request sent again. Slack's own
retries (``X-Slack-Retry-Num``) carry a new timestamp and signature but the same ``event_id``,
which is answered 200 and handled once.

``url_verification`` (when the Request URL is saved in the app's settings) is answered with its
challenge. An ``event_callback`` is queued for the adapter's ``run`` and answered 200 at once:
Slack wants an answer within three seconds, and turning an event into a message may call the Web
API (the user's name).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk.signature import Clock, SignatureVerifier

from platforms.errors import AdapterConfigError
from platforms.webhooks import OK, RecentKeys, WebhookReply

log = logging.getLogger(__name__)

WINDOW_SECONDS = 300.0  # Slack's own rule for the timestamp
EVENT_MEMORY_SECONDS = 3600.0  # Slack retries a failed delivery three times within the hour
QUEUE_SIZE = 1000


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackEvents:
    """The Events API side of one adapter: checks each request and queues its event."""

    def __init__(self, signing_secret: str | None,
                 clock: Callable[[], float] = time.time) -> None:
        if not signing_secret:
            raise AdapterConfigError(
                "slack: mode is events, but the signing secret is not set (the variable "
                "platforms.slack.signing_secret_env names)", platform="slack")
        self.clock = clock
        self.verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self.signatures = RecentKeys(WINDOW_SECONDS * 2, clock=clock)
        self.events = RecentKeys(EVENT_MEMORY_SECONDS)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.running = False

    def take(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        refused = self._refusal(headers, body)
        if refused is not None:
            log.warning("slack: Events API request refused: %s", refused)
            return WebhookReply.text(401, refused)
        try:
            data = json.loads(body)
        except ValueError:
            return WebhookReply.text(400, "not JSON")
        if not isinstance(data, dict):
            return WebhookReply.text(400, "not a Slack event")
        kind = data.get("type")
        if kind == "url_verification":
            return WebhookReply.json(200, {"challenge": str(data.get("challenge", ""))})
        if kind != "event_callback" or not isinstance(data.get("event"), dict):
            return OK  # app_rate_limited and the like: nothing to do
        if not self.running:
            return WebhookReply.text(503, "not ready")  # Slack retries
        event_id = str(data.get("event_id") or "")
        if event_id and not self.events.add(event_id):
            log.info("slack: event %s delivered again (retry %s); handled once", event_id,
                     headers.get("x-slack-retry-num", "?"))
            return OK
        try:
            self.queue.put_nowait(data["event"])
        except asyncio.QueueFull:
            self.events.discard(event_id)
            log.warning("slack: too many events waiting; %s left to Slack to retry", event_id)
            return WebhookReply.text(503, "busy")
        return OK

    def _refusal(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why the request is refused, or None when it is Slack's and fresh."""
        stamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not stamp or not signature:
            return "not signed"
        try:
            age = abs(self.clock() - int(stamp))
        except ValueError:
            return "a bad timestamp"
        if age > WINDOW_SECONDS:
            return "timestamp outside the five-minute window"
        if not self.verifier.is_valid(body, stamp, signature):
            return "wrong signature"
        if not self.signatures.add(signature):
            return "replayed"
        return None
