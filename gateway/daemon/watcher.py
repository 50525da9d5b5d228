"""The dispatcher watcher: on each wake-up, kick triage decompositions, then one dispatch cycle
per board.

Wakes on any board change (see :mod:`gateway.daemon.hub`), on a worker exit (checked every
``exit_check_seconds`` through the dispatcher's live-worker count), and on the
``kanban.dispatch_interval_seconds`` tick, which is only a safety net. ``kanban.auto_decompose``
and its per-tick budget are re-read from the config file when its mtime changes, so a toggle on
disk applies without a restart. Decompositions run in the background (``BackgroundDecomposer``):
a slow LLM never delays a dispatch cycle. They are kicked only while ``leader()`` says this
gateway leads (on a shared PostgreSQL board one gateway decomposes; every one dispatches, since
claims are safe to share).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio

from gateway.config import Config, load_config
from gateway.daemon.hub import BoardHub
from gateway.errors import ConfigError
from gateway.kernel_settings import decompose_settings
from kanban.agents.decomposer import BackgroundDecomposer
from kanban.board import Board
from kanban.errors import KanbanError
from kanban.runtime.dispatcher import Dispatcher

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
    def __init__(self, hub: BoardHub, dispatcher: Dispatcher, decomposer: BackgroundDecomposer,
                 config: Callable[[], Config], *, exit_check_seconds: float = 0.2,
                 leader: Callable[[], bool] = lambda: True) -> None:
        self.hub = hub
        self.leader = leader
        self.dispatcher = dispatcher
        self.decomposer = decomposer
        self.config = config
        self.exit_check_seconds = exit_check_seconds
        self.cycles = 0
        self.ready = anyio.Event()
        self._swept: set[str] = set()

    async def run(self) -> None:
        await self.hub.ready.wait()
        while True:
            version = self.hub.changes.version
            await self.wake()
            self.ready.set()
            await self._wait(version)

    async def wake(self) -> None:
        """One wake-up: decompositions kicked (not awaited), then a cycle on every board."""
        config = self.config()
        settings = decompose_settings(config)
        if settings != self.decomposer.settings:
            self.decomposer.settings = settings
        boards = self.hub.open_boards()
        decompose = settings.auto_decompose and self.leader()
        for board in boards:
            if decompose:
                self.decomposer.kick(board)
            await self._cycle(board)
        self.cycles += 1

    async def _cycle(self, board: Board) -> None:
        try:
            if board.slug not in self._swept:
                self._swept.add(board.slug)
                await self.dispatcher.sweep(board)
            report = await self.dispatcher.run_cycle(board)
            if report.busy:
                log.info("dispatch %s: %s", board.slug, _summary(report.to_dict()))
        except (KanbanError, OSError) as exc:
            log.warning("dispatch cycle on board %s failed: %s", board.slug, exc)

    async def _wait(self, version: int) -> None:
        interval = self.config().kanban.dispatch_interval_seconds
        deadline = time.monotonic() + interval
        live = self.dispatcher.live_workers()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            moved = await self.hub.changes.wait(version, min(remaining, self.exit_check_seconds))
            if moved != version or self.dispatcher.live_workers() != live:
                return


def _summary(report: Mapping[str, object]) -> str:
    parts = [f"{k}={len(v)}" for k, v in report.items()
             if isinstance(v, list) and v and k != "planned"]
    return " ".join(parts) or "idle"
