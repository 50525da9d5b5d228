"""The dispatch loop's part in recurring schedules: make due occurrences, and say when the
next one is due.

Only the process that leads makes occurrences (``leader``; on a PostgreSQL board shared by
several gateways, the gateway leadership of :mod:`kanban.storage.leader`; alone on SQLite, always).
Even so the kernel makes each occurrence once (:mod:`kanban.board.schedules`), so a second
process that believed it led would do no harm. The loop sleeps no longer than the next due
time (:meth:`Scheduler.deadlines`), so an occurrence is made on time, not at the next
safety-net tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from kanban.board import Board
from kanban.errors import KanbanError
from kanban.runtime.report import CycleReport

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, leader: Callable[[], bool] = lambda: True) -> None:
        self.leader = leader

    async def tick(self, board: Board, report: CycleReport) -> None:
        """Make ``board``'s due occurrences (on the leader); they are listed in the report."""
        if not self.leader():
            return
        try:
            fired = await board.fire_schedules()
        except KanbanError as exc:
            report.errors.append(f"schedules: {exc}")
            log.warning("schedules on board %s: %s", board.slug, exc)
            return
        report.scheduled.extend(f.to_dict() for f in fired)

    async def deadlines(self, boards: Sequence[Board]) -> list[float]:
        """The next due time of each board's schedules (none off the leader)."""
        if not self.leader():
            return []
        out: list[float] = []
        for board in boards:
            try:
                due = await board.next_schedule_at()
            except KanbanError as exc:
                log.warning("next schedule time failed on board %s: %s", board.slug, exc)
                continue
            if due is not None:
                out.append(due)
        return out


__all__ = ["Scheduler"]
