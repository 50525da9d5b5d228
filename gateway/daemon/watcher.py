"""The gateway's dispatcher: the one dispatch loop (:meth:`Dispatcher.run`) with the gateway's
hooks, not a loop of its own.

The loop wakes on any board change (the hub's combined signal, see :mod:`gateway.daemon.hub`), on
a worker exit (a pidfd per worker, or a bounded poll where there is none), on the earliest
not-before of a backed-off task, and on the ``kanban.dispatch_interval_seconds`` tick, which is
only a safety net. What is the gateway's own comes in as :class:`LoopHooks`: the boards are the
hub's (boards that appear or go are picked up on the next pass), the interval and
``kanban.auto_decompose`` are re-read from the config file when its mtime changes (a toggle on disk
applies without a restart), and every pass first kicks triage decompositions in the background
(``BackgroundDecomposer``) so a slow LLM never delays a dispatch cycle. They are kicked only while
``leader()`` says this gateway leads (on a shared PostgreSQL board one gateway decomposes; every
one dispatches, since claims are safe to share).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gateway.config import Config, load_config
from gateway.daemon.hub import BoardHub
from gateway.errors import ConfigError
from gateway.kernel_settings import decompose_settings
from kanban.agents.decomposer import BackgroundDecomposer
from kanban.board import Board
from kanban.runtime.dispatcher import Dispatcher
from kanban.runtime.wakeups import LoopHooks

log = logging.getLogger(__name__)


class ConfigFollower:
    """The config as on disk now: reloaded when the file's mtime (or existence) changes."""

    def __init__(self, config: Config, file: Path | None, environ: Mapping[str, str]) -> None:
        self.config = config
        self.file = file if file is not None else config.home / "config.yaml"
        self.environ = environ
        self._stamp = self._mtime()

    def _mtime(self) -> float | None:
        try:
            return self.file.stat().st_mtime_ns / 1e9
        except OSError:
            return None

    def current(self) -> Config:
        stamp = self._mtime()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.config = load_config(self.file if stamp is not None else None,
                                          self.environ, home=self.config.home)
                log.info("config reloaded (auto_decompose=%s)", self.config.kanban.auto_decompose)
            except ConfigError as exc:
                log.warning("config change ignored: %s", exc)
        return self.config


class DispatchWatcher:
    """Runs :meth:`Dispatcher.run` over the hub's boards until cancelled (the supervisor stops
    it that way); ``ready`` is set after its first pass."""

    def __init__(self, hub: BoardHub, dispatcher: Dispatcher, decomposer: BackgroundDecomposer,
                 config: Callable[[], Config], *,
                 leader: Callable[[], bool] = lambda: True) -> None:
        self.hub = hub
        self.leader = leader
        self.dispatcher = dispatcher
        self.decomposer = decomposer
        self.config = config

    @property
    def cycles(self) -> int:
        """Passes of the loop so far (each one cycle per board)."""
        return self.dispatcher.passes

    @property
    def ready(self) -> asyncio.Event:
        return self.dispatcher.ready

    async def run(self) -> None:
        await self.hub.ready.wait()
        await self.dispatcher.run(hooks=LoopHooks(
            boards=self.hub.open_boards, changes=self.hub.changes,
            before_pass=self.before_pass, interval=self._interval))

    def _interval(self) -> float:
        return self.config().kanban.dispatch_interval_seconds

    async def before_pass(self, boards: Sequence[Board]) -> None:
        """Decompositions kicked (not awaited) on every board while this gateway leads."""
        settings = decompose_settings(self.config())
        if settings != self.decomposer.settings:
            self.decomposer.settings = settings
        if settings.auto_decompose and self.leader():
            for board in boards:
                self.decomposer.kick(board)
