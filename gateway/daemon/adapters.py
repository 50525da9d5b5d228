"""Enabled platforms → adapters, each kept connected by its own retry loop.

An adapter that cannot connect (a refused token, a server that is down) does not stop the
daemon: its state says ``retrying`` with the reason, the log says when it tries again, and sends
through it keep being attempted by the notifier (which retries them on its own schedule).
``allowed_users`` is always passed explicitly: ``[]`` serves nobody, ``["*"]`` everyone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio

from gateway.config import Config, PlatformConfig
from gateway.daemon.supervisor import Backoff
from platforms.base import InboundMessage, PlatformAdapter
from platforms.errors import PlatformError
from platforms.registry import create_adapter

log = logging.getLogger(__name__)

AdapterFactory = Callable[[], PlatformAdapter]
EXTERNAL = ("telegram", "slack", "discord")


@dataclass
class AdapterState:
    state: str = "starting"  # starting | connected | retrying | conflict | stopped
    detail: str | None = None
    since: float = 0.0
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "since": self.since,
                "attempts": self.attempts}


def adapter_options(platform: PlatformConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"allowed_users": list(platform.allowed_users)}
    secrets = platform.secrets
    if platform.name in ("telegram", "discord"):
        options["token"] = secrets.get("token") or ""
    if platform.name == "slack":
        options["bot_token"] = secrets.get("bot_token") or ""
        options["app_token"] = secrets.get("app_token")
    if platform.name in EXTERNAL:
        options["base_url"] = platform.base_url
    if platform.name == "discord":
        options["gateway_url"] = platform.gateway_url
    return options


def adapter_factories(config: Config) -> dict[str, AdapterFactory]:
    """One factory per enabled platform the registry knows (the web chat is not one yet)."""
    out: dict[str, AdapterFactory] = {}
    for name, platform in sorted(config.platforms.items()):
        if not platform.enabled or name == "web":
            continue
        out[name] = functools.partial(create_adapter, name, **adapter_options(platform))
    return out


class AdapterRunner:
    """Keeps one platform's adapter started; the current adapter is in ``adapters[name]``."""

    def __init__(self, name: str, factory: AdapterFactory,
                 adapters: MutableMapping[str, PlatformAdapter],
                 inbox: asyncio.Queue[InboundMessage], backoff: Backoff | None = None,
                 close_seconds: float = 5.0) -> None:
        self.name = name
        self.factory = factory
        self.adapters = adapters
        self.inbox = inbox
        self.backoff = backoff or Backoff(base=1.0, cap=60.0)
        self.close_seconds = close_seconds
        self.state = AdapterState(since=time.time())

    def status(self) -> dict[str, Any]:
        """The adapter's own status when it reports one, else what this runner saw."""
        data = self.state.to_dict()
        adapter = self.adapters.get(self.name)
        reporter = getattr(adapter, "status", None)
        if callable(reporter) and self.state.state not in ("retrying", "stopped"):
            try:
                own = reporter()
                data["state"] = str(getattr(own, "state", data["state"]))
                data["detail"] = getattr(own, "detail", data["detail"])
            except Exception as exc:  # a status probe never breaks /status
                data["detail"] = f"status unavailable: {exc}"
        return data

    async def run(self) -> None:
        failures = 0
        while True:
            adapter = self.factory()
            self.adapters[self.name] = adapter
            self._set("starting")
            try:
                await adapter.start(self.inbox)
            except PlatformError as exc:
                failures += 1
                delay = self.backoff.delay(failures)
                self._set("retrying", f"{exc} (retry {failures} in {delay:.0f} s)")
                log.warning("%s: cannot connect: %s; retrying in %.1f s", self.name, exc, delay)
                await self._close(adapter)
                await anyio.sleep(delay)
                continue
            except BaseException:
                await self._close(adapter)
                raise
            failures = 0
            self._set("connected")
            log.info("%s: connected", self.name)
            try:
                await anyio.sleep_forever()
            finally:
                self._set("stopped")
                await self._close(adapter)

    def _set(self, state: str, detail: str | None = None) -> None:
        self.state.state, self.state.detail, self.state.since = state, detail, time.time()
        if state == "starting":
            self.state.attempts += 1

    async def _close(self, adapter: PlatformAdapter) -> None:
        with anyio.move_on_after(self.close_seconds, shield=True):
            try:
                await adapter.close()
            except Exception as exc:
                log.warning("%s: close failed: %s", self.name, exc)


async def drain_inbox(inbox: asyncio.Queue[InboundMessage]) -> None:
    """Until the chat router exists, inbound messages are read and dropped (never piled up)."""
    while True:
        msg = await inbox.get()
        log.info("%s: message in %s not handled (the chat router is not part of this "
                 "version)", msg.platform, msg.chat)
