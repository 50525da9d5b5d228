"""Inbound over HTTP: the seam between an adapter that receives webhooks and a web server.

An adapter in a webhook mode (Telegram ``mode: webhook``, Slack ``mode: events``) implements
:class:`WebhookReceiver`: the gateway's web server hands it each request to
``/webhooks/<platform>`` — headers and raw body, nothing parsed — and sends back the
:class:`WebhookReply` it returns. Authentication is the adapter's, since only it knows the
platform's scheme (Telegram's secret-token header, Slack's signed body); the web server adds none
of its own on these paths. An adapter answers fast: it checks, queues the message for its own
``run`` and returns; anything slow (a user name look-up) happens in ``run``'s task.

:class:`RecentKeys` remembers what was seen lately (update ids, event ids, signatures), so a
platform's redelivery is handled once and a captured request sent again is refused.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MAX_BODY_BYTES = 1024 * 1024  # Telegram's and Slack's updates are a few kilobytes


@dataclass(frozen=True)
class WebhookReply:
    """What the web server answers: a status, a body, its content type."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def text(cls, status: int, text: str) -> WebhookReply:
        return cls(status, text.encode())

    @classmethod
    def json(cls, status: int, value: object) -> WebhookReply:
        return cls(status, json.dumps(value).encode(), "application/json")


OK = WebhookReply(200, b"ok")


@runtime_checkable
class WebhookReceiver(Protocol):
    """An adapter that takes its inbound messages from HTTP requests to the gateway."""

    name: str

    def receives_webhooks(self) -> bool:
        """True when this adapter is configured for a webhook mode (otherwise the web server
        answers 404 on its path)."""
        ...

    async def receive_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        """Check and take one request; ``headers`` have lower-case names."""
        ...


class RecentKeys:
    """Keys seen within the last ``window`` seconds (at most ``limit`` of them)."""

    def __init__(self, window: float, limit: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.limit = limit
        self.clock = clock
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()

    def add(self, key: str) -> bool:
        """Record ``key``; False if it was seen within the window already."""
        now = self.clock()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= self.window and len(self._seen) < self.limit:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def discard(self, key: str) -> None:
        """Forget ``key`` (its request was not taken after all: a redelivery is welcome)."""
        self._seen.pop(key, None)
