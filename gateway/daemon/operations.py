"""What the daemon tells its operator over HTTP: readiness (``/readyz``) and the metrics'
scrape-time gauges (``/metrics``); see docs/operations.md.

Ready means: the boards are open and every component started, the leadership is decided (this
gateway leads or knows another does), no board hub failure is being retried, and every chat
adapter is connected, retrying or standing by — an adapter still making its first connection is
not ready yet; one that keeps failing is ``retrying`` and does not hold readiness back (its
state is in ``/metrics`` and ``/status``), so a platform's outage never makes an orchestrator
restart a gateway that cannot fix it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gateway.metrics import BoardSnapshot, Snapshot
from kanban.errors import KanbanError

if TYPE_CHECKING:
    from gateway.daemon.components import Daemon

NOT_READY_ADAPTER = ("connecting", "stopped")


class DaemonOperations:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def readiness(self) -> list[str]:
        d = self.daemon
        if d.stopping:
            return ["stopping"]
        reasons: list[str] = []
        if not d.ready.is_set():
            reasons.append("starting: boards not open yet")
        boards = d.supervisor.components.get("boards")
        if boards is not None and boards.state == "retrying":
            reasons.append("boards: retrying after a failure")
        if d.leadership.state == "starting":
            reasons.append("leadership: not decided yet")
        for name, runner in sorted(d.runners.items()):
            state = runner.state.state
            if state in NOT_READY_ADAPTER:
                reasons.append(f"adapter {name}: {state}")
        return reasons

    async def exposition(self, accept: str) -> tuple[bytes, str]:
        return await self.daemon.metrics.exposition(accept)

    async def snapshot(self) -> Snapshot:
        d = self.daemon
        boards: dict[str, BoardSnapshot] = {}
        for board in d.hub.open_boards():
            workers = sum(1 for _, _, proc in d.dispatcher.workers(board.slug) if proc.poll())
            try:
                tasks = await board.status_counts()
                pending, oldest = await board.outbox_backlog()
            except KanbanError:
                boards[board.slug] = BoardSnapshot(workers=workers, readable=False)
                continue
            boards[board.slug] = BoardSnapshot(tasks=tasks, outbox_pending=pending,
                                               outbox_oldest=oldest, workers=workers)
        return Snapshot(
            boards=boards,
            adapters={name: runner.state.state for name, runner in d.runners.items()},
            leader=d.leadership.held, leadership_shared=d.leadership.shared,
            components={name: (c.state, c.restarts)
                        for name, c in d.supervisor.components.items()},
            started_at=d.started_at, at=time.time())
