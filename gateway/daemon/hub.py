"""The boards of the home, kept open, and one change signal that any commit on any of them bumps.

Two sources feed the signal: this process's commits (each board's own ``changes``, forwarded the
moment they happen) and other processes' commits — a CLI ``kanban create`` in another terminal,
a worker's ``kanban complete`` — seen by polling ``PRAGMA data_version`` on every board every
``poll_seconds``. That pragma reads one counter in shared memory, so a 15 ms poll costs next to
nothing and a change made elsewhere is noticed within one interval, not at the next tick. The
list of boards is re-read every ``rescan_seconds``, so a board created while the daemon runs is
served without a restart.
"""

from __future__ import annotations

import logging
import time

import anyio
from anyio.abc import TaskGroup

from kanban.board import Board, ChangeSignal
from kanban.errors import KanbanError
from kanban.home import Boards

log = logging.getLogger(__name__)


class BoardHub:
    def __init__(self, boards: Boards, *, poll_seconds: float = 0.015,
                 rescan_seconds: float = 0.5) -> None:
        self.boards = boards
        self.poll_seconds = poll_seconds
        self.rescan_seconds = rescan_seconds
        self.changes = ChangeSignal()
        self.ready = anyio.Event()
        self._open: dict[str, Board] = {}
        self._forwarders: dict[str, anyio.CancelScope] = {}

    def open_boards(self) -> list[Board]:
        return list(self._open.values())

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                await self.refresh(group)
                self.ready.set()
                last_scan = time.monotonic()
                while True:
                    for board in self.open_boards():
                        try:
                            await board.poll_external()  # bumps board.changes → forwarded
                        except KanbanError as exc:
                            log.warning("polling board %s failed: %s", board.slug, exc)
                    if time.monotonic() - last_scan >= self.rescan_seconds:
                        last_scan = time.monotonic()
                        await self.refresh(group)
                    await anyio.sleep(self.poll_seconds)
        finally:
            self._forwarders.clear()
            self._open.clear()

    async def refresh(self, group: TaskGroup) -> bool:
        """Open boards that appeared, forget boards that went; True (and a bump) if any did."""
        slugs = {info.slug for info in await self.boards.list()}
        changed = False
        for slug in sorted(slugs - set(self._open)):
            try:
                board = await self.boards.open(slug)
            except KanbanError as exc:
                log.warning("cannot open board %s: %s", slug, exc)
                continue
            self._open[slug] = board
            scope = anyio.CancelScope()
            self._forwarders[slug] = scope
            group.start_soon(self._forward, board, scope, name=f"board-changes-{slug}")
            if self.ready.is_set():
                log.info("serving new board %s", slug)
            changed = True
        for slug in sorted(set(self._open) - slugs):
            self._open.pop(slug)
            self._forwarders.pop(slug).cancel()
            log.info("board %s is gone; no longer served", slug)
            changed = True
        if changed:
            self.changes.bump()
        return changed

    async def _forward(self, board: Board, scope: anyio.CancelScope) -> None:
        with scope:
            version = board.changes.version
            while True:
                version = await board.changes.wait(version, None)
                self.changes.bump()
