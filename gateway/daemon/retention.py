"""The ``retention`` component: ``kanban.retention`` applied to every open board once per
``interval_hours`` (docs/maintenance.md), the same pass as ``relayboard kanban gc``.

The first pass runs a few minutes after start-up, not at once: a gateway restarted in a loop
does not prune on every start. On PostgreSQL only the leader runs it (every gateway would
otherwise do the same deletes). A pass that fails is logged and tried again next interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from kanban.board import Board
from kanban.errors import KanbanError
from kanban.retention import GcReport, RetentionSettings, collect

log = logging.getLogger(__name__)

FIRST_PASS_SECONDS = 300.0


class RetentionWatcher:
    def __init__(self, boards: Callable[[], list[Board]], settings: RetentionSettings, *,
                 interval_seconds: float, leader: Callable[[], bool] = lambda: True,
                 first_pass_seconds: float = FIRST_PASS_SECONDS) -> None:
        self.boards = boards
        self.settings = settings
        self.interval_seconds = interval_seconds
        self.first_pass_seconds = min(first_pass_seconds, interval_seconds)
        self.leader = leader
        self.passes = 0
        self.last: list[GcReport] = []
        self.passed = anyio.Event()  # set after each pass (tests wait on it), then renewed

    async def run(self) -> None:
        await anyio.sleep(self.first_pass_seconds)
        while True:
            if self.leader():
                await self.pass_once()
            await anyio.sleep(self.interval_seconds)

    async def pass_once(self) -> list[GcReport]:
        reports = []
        for board in self.boards():
            try:
                reports.append(await collect(board, self.settings))
            except KanbanError as exc:
                log.warning("retention on board %s failed: %s (tried again in %.0f h)",
                            board.slug, exc, self.interval_seconds / 3600)
        self.last = reports
        self.passes += 1
        self.passed.set()
        self.passed = anyio.Event()
        return reports
