"""Enabled platforms → adapters, each kept connected by its own retry loop.

An adapter that cannot connect (a refused token, a server that is down) does not stop the
daemon: its state says ``retrying`` with the reason, the log says when it tries again, and sends
through it keep being attempted by the notifier (which retries them on its own schedule).
``allowed_users`` is always passed explicitly: ``[]`` serves nobody, ``["*"]`` everyone.

Once connected, the runner watches the adapter's own ``status()``: an adapter whose inbound side
gave up for good (discord.py stops after a revoked token or a switched-off intent; a Telegram
poller that died) reports ``stopped``, and the runner closes it and starts a fresh one with the
same backoff as a failed connection.

On a standby gateway (another one leads, see :mod:`kanban.storage.leader`) the runner does not
run: :meth:`AdapterRunner.standby` puts a fresh adapter that is never started in its place.
Sending needs no inbound connection on any platform (Telegram's and Slack's Web APIs, Discord's
REST API), so the standby's notifier and chat replies still go out; nothing is received there.
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
from kanban.backoff import Backoff
from platforms.base import InboundMessage, PlatformAdapter
from platforms.errors import PlatformError
from platforms.registry import create_adapter

log = logging.getLogger(__name__)

AdapterFactory = Callable[[], PlatformAdapter]
EXTERNAL = ("telegram", "slack", "discord")


@dataclass
class AdapterState:
    state: str = "starting"  # starting | connected | retrying | conflict | stopped | standby
    detail: str | None = None
    since: float = 0.0
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "since": self.since,
                "attempts": self.attempts}


def adapter_options(platform: PlatformConfig) -> dict[str, Any]:
    # Admins are served too: being an admin implies being allowed.
    served = list(dict.fromkeys([*platform.allowed_users, *platform.admins]))
    options: dict[str, Any] = {"allowed_users": served}
    secrets = platform.secrets
    if platform.name in ("telegram", "discord"):
        options["token"] = secrets.get("token") or ""
    if platform.name == "telegram":  # its long-polling loop retries on its own
        options["backoff"] = Backoff().delay  # 1 s doubling up to a minute
    if platform.name == "slack":
        options["bot_token"] = secrets.get("bot_token") or ""
        options["app_token"] = secrets.get("app_token")
    if platform.name in EXTERNAL:
        options["base_url"] = platform.base_url
    if platform.name == "discord":
        options["gateway_url"] = platform.gateway_url
    return options


def adapter_factories(config: Config) -> dict[str, AdapterFactory]:
    """One factory per enabled external platform (the daemon adds the web chat itself)."""
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
                 close_seconds: float = 5.0, watch_seconds: float = 1.0) -> None:
        self.name = name
        self.factory = factory
        self.adapters = adapters
        self.inbox = inbox
        self.backoff = backoff or Backoff()  # 1 s doubling up to a minute
        self.close_seconds = close_seconds
        self.watch_seconds = watch_seconds
        self.state = AdapterState(since=time.time())
        self._sender: PlatformAdapter | None = None  # the standby's never-started adapter

    def standby(self) -> None:
        """Not leading: a never-started adapter stands in ``adapters[name]`` for sending."""
        if self._sender is None:
            self._sender = self.factory()
        self.adapters[self.name] = self._sender
        self._set("standby", "another gateway receives; sends go out from here")

    async def aclose(self) -> None:
        """Close the standby's adapter, if any (the running one is closed by cancelling run)."""
        sender, self._sender = self._sender, None
        if sender is not None:
            await self._close(sender)

    def status(self) -> dict[str, Any]:
        """The adapter's own status when it reports one, else what this runner saw."""
        data = self.state.to_dict()
        adapter = self.adapters.get(self.name)
        reporter = getattr(adapter, "status", None)
        if callable(reporter) and self.state.state not in ("retrying", "stopped", "standby"):
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
            await self.aclose()  # after the swap: a send never finds a closed adapter in place
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
            self._set("connected")
            log.info("%s: connected", self.name)
            connected_at = time.monotonic()
            try:
                reason = await self._watch(adapter, time.time())
            finally:
                self._set("stopped")
                await self._close(adapter)
            if time.monotonic() - connected_at >= self.backoff.steady_seconds:
                failures = 0
            failures += 1
            delay = self.backoff.delay(failures)
            self._set("retrying", f"{reason} (restart {failures} in {delay:.0f} s)")
            log.warning("%s: stopped after connecting (%s); starting it again in %.1f s",
                        self.name, reason, delay)
            await anyio.sleep(delay)

    async def _watch(self, adapter: PlatformAdapter, connected: float) -> str:
        """Wait while the adapter runs; the reason once it reports ``stopped`` by itself.

        Only a stop that began after the connection counts: an adapter that never reports its
        status keeps the "not started" value it was built with, and is left alone."""
        while True:
            await anyio.sleep(self.watch_seconds)
            try:
                own = adapter.status()
            except Exception as exc:  # a status probe never kills the runner
                log.debug("%s: status() failed: %s", self.name, exc)
                continue
            since = getattr(own, "since", None)
            if (str(getattr(own, "state", "")) == "stopped" and isinstance(since, float | int)
                    and since >= connected - 1.0):
                return str(getattr(own, "detail", "") or "the adapter stopped")

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

