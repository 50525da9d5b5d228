"""Enabled platforms → adapters, each run by an :class:`AdapterRunner` in the daemon's task group.

An adapter's inbound side is one coroutine, ``adapter.run(inbox, report)`` (the contract in
:mod:`platforms.base`): it connects, serves until cancelled, and raises a ``platforms.errors``
exception when its connection is lost for good. The runner awaits it in the daemon's task group,
so cancelling the group stops it with nothing left behind, and runs it again after a raise with
the gateway's one backoff formula. An adapter that cannot connect (a refused token, a server that
is down) does not stop the daemon: its state says ``retrying`` with the reason (``conflict`` for
Telegram's 409), the log says when it tries again, and sends through it keep being attempted by
the notifier (which retries them on its own schedule). ``allowed_users`` is always passed
explicitly: ``[]`` serves nobody, ``["*"]`` everyone.

On a standby gateway (another one leads, see :mod:`kanban.storage.leader`) the runner does not
run: :meth:`AdapterRunner.standby` puts a fresh adapter that is never run in its place. Sending
needs no inbound connection on any platform (Telegram's and Slack's Web APIs, Discord's REST
API), so the standby's notifier and chat replies still go out; nothing is received there.
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
from platforms.base import AdapterState as PlatformState
from platforms.base import InboundMessage, PlatformAdapter
from platforms.errors import Conflict, PlatformError, RateLimited, TransientError
from platforms.registry import create_adapter

log = logging.getLogger(__name__)

AdapterFactory = Callable[[], PlatformAdapter]
EXTERNAL = ("telegram", "slack", "discord")


@dataclass
class AdapterState:
    """What ``/status`` shows for one platform; only its :class:`AdapterRunner` writes it."""

    state: str = "connecting"  # connecting | connected | retrying | conflict | stopped | standby
    detail: str | None = None
    since: float = 0.0
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "since": self.since,
                "attempts": self.attempts}


WEBHOOK_PATH = "/webhooks/{platform}"  # on the gateway's web server (the dashboard's)


def webhook_url(public_url: str | None, platform: str) -> str | None:
    """Where a platform POSTs to reach ``/webhooks/<platform>`` under ``dashboard.public_url``."""
    if not public_url:
        return None
    return public_url.rstrip("/") + WEBHOOK_PATH.format(platform=platform)


def adapter_options(platform: PlatformConfig, public_url: str | None = None) -> dict[str, Any]:
    # Admins are served too: being an admin implies being allowed.
    served = list(dict.fromkeys([*platform.allowed_users, *platform.admins]))
    options: dict[str, Any] = {"allowed_users": served}
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
    mode = platform.options.get("mode")
    if platform.name == "telegram" and mode == "webhook":
        options["mode"] = mode
        options["webhook_url"] = (platform.options.get("webhook_url")
                                  or webhook_url(public_url, "telegram"))
        options["webhook_secret"] = secrets.get("webhook_secret")
    if platform.name == "slack" and mode == "events":
        options["mode"] = mode
        options["signing_secret"] = secrets.get("signing_secret")
    return options


def adapter_factories(config: Config) -> dict[str, AdapterFactory]:
    """One factory per enabled external platform (the daemon adds the web chat itself)."""
    out: dict[str, AdapterFactory] = {}
    for name, platform in sorted(config.platforms.items()):
        if not platform.enabled or name == "web":
            continue
        out[name] = functools.partial(create_adapter, name, **adapter_options(
            platform, config.dashboard.public_url))
    return out


class AdapterRunner:
    """Runs one platform's adapter in the daemon's task group; the current one is in
    ``adapters[name]``, and :attr:`state` is its only state for ``/status``.

    Who retries what, innermost first — each failure is handled by exactly one layer:

    1. The platform SDK, for what it does itself while a connection lives: discord.py
       reconnects and resumes its gateway socket, slack-sdk's Socket Mode client reconnects its
       WebSocket (both show here as ``retrying`` through the adapter's report), and sends retry
       flood control in the SDK (PTB's ``AIORateLimiter``, slack-sdk's retry handlers). Adapters
       add no retry loop of their own.
    2. This runner, for a connection lost for good: ``adapter.run`` raised a
       ``platforms.errors`` exception (a refused token, an unreachable server, Telegram's
       ``getUpdates`` failing or answering 409 ``Conflict``, discord.py giving up). It waits
       ``backoff.delay(n)`` for the n-th failure in a row, never less than a ``RateLimited``
       error's ``retry_after``, with a fresh adapter each time; a run that stayed connected for
       ``backoff.steady_seconds`` ends the streak.
    3. The daemon's :class:`~gateway.daemon.supervisor.Supervisor`, for bugs: any other
       exception escapes this runner, is logged with its traceback and the runner is started
       again on the supervisor's backoff.

    Sends are not retried here: the notifier retries a failed notification on its own schedule.
    """

    def __init__(self, name: str, factory: AdapterFactory,
                 adapters: MutableMapping[str, PlatformAdapter],
                 inbox: asyncio.Queue[InboundMessage], backoff: Backoff | None = None,
                 close_seconds: float = 5.0) -> None:
        self.name = name
        self.factory = factory
        self.adapters = adapters
        self.inbox = inbox
        self.backoff = backoff or Backoff()  # 1 s doubling up to a minute
        self.close_seconds = close_seconds
        self.state = AdapterState(since=time.time())
        self._sender: PlatformAdapter | None = None  # the standby's never-run adapter
        self._connected_at: float | None = None  # monotonic; when the current run connected

    def standby(self) -> None:
        """Not leading: a never-run adapter stands in ``adapters[name]`` for sending."""
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
        """The state for ``/status``: what the adapter last reported, or this runner's own."""
        return self.state.to_dict()

    async def run(self) -> None:
        """Run the adapter until cancelled, again after each ``PlatformError`` (see the class)."""
        failures = 0
        while True:
            adapter = self.factory()
            self.adapters[self.name] = adapter
            await self.aclose()  # after the swap: a send never finds a closed adapter in place
            self._connected_at = None
            if failures:
                self.state.attempts += 1  # still retrying (or in conflict) until it connects
            else:
                self._set("connecting", "connecting")
            try:
                await adapter.run(self.inbox, self._report)
                error: PlatformError = TransientError(
                    f"{self.name}: run() returned without being cancelled", platform=self.name)
            except PlatformError as exc:
                error = exc
            except BaseException:
                self._set("stopped", "stopped")
                raise
            finally:
                await self._close(adapter)
            connected_at = self._connected_at
            if connected_at is not None and (
                    time.monotonic() - connected_at >= self.backoff.steady_seconds):
                failures = 0
            failures += 1
            retry_after = error.retry_after if isinstance(error, RateLimited) else 0.0
            delay = max(self.backoff.delay(failures), retry_after)
            self._retrying(error, failures, delay, was_connected=connected_at is not None)
            await anyio.sleep(delay)

    def _report(self, state: PlatformState, detail: str) -> None:
        """The adapter's typed callback: a state change while its ``run`` runs.

        ``connecting`` and ``stopped`` are the runner's to say: while it retries, the state stays
        ``retrying`` (or ``conflict``) until the adapter connects, and a run that ends reaches
        the runner as its return or raise."""
        if state in (PlatformState.CONNECTING, PlatformState.STOPPED):
            return
        if state is PlatformState.CONNECTED:
            if self._connected_at is None:
                self._connected_at = time.monotonic()
            if self.state.state != "connected":
                log.info("%s: connected", self.name, extra={"platform": self.name})
        self._set(str(state), detail)

    def _retrying(self, error: PlatformError, failures: int, delay: float, *,
                  was_connected: bool) -> None:
        conflict = isinstance(error, Conflict)
        streak = self.state.state == ("conflict" if conflict else "retrying")
        what = "lost its connection" if was_connected else "cannot connect"
        self._set("conflict" if conflict else "retrying",
                  f"{error} (retry {failures} in {delay:.0f} s)")
        if conflict:
            if not streak:  # once per streak: a conflict can last as long as the other side
                log.error("%s: %s; only one of them can receive. Stop the other one; retrying "
                          "with backoff (logged once until it connects again)", self.name, error,
                          extra={"platform": self.name})
        else:
            log.warning("%s: %s: %s; retrying in %.1f s", self.name, what, error, delay,
                        extra={"platform": self.name})

    def _set(self, state: str, detail: str | None = None) -> None:
        if state == "connecting":
            self.state.attempts += 1
        if state == self.state.state and detail == self.state.detail:
            return
        since = self.state.since if state == self.state.state else time.time()
        self.state.state, self.state.detail, self.state.since = state, detail, since

    async def _close(self, adapter: PlatformAdapter) -> None:
        # Shielded: the run was cancelled, and the SDK's sockets must still be closed.
        with anyio.move_on_after(self.close_seconds, shield=True):
            try:
                await adapter.close()
            except Exception as exc:
                log.warning("%s: close failed: %s", self.name, exc,
                            extra={"platform": self.name})
