"""Task lifecycle from the boards' event logs: the task counters, and one log line per milestone.

The kernel writes every claim, start, completion, failure and breaker trip to its event log in
the same transaction as the change; following that log (a cursor per board, the kernel's
:class:`~kanban.board.events.EventTail`) counts what happened on the board whoever did it — this
gateway's dispatcher and worker API, a CLI in another terminal, another host on PostgreSQL —
without the kernel importing any metrics library. Each served board is read on every change the
hub signals (and every ``tick_seconds`` as a safety net), starting from the log's end when the
board is first seen: history is not counted again after a restart. ``ready`` is set once the
boards open at ``start_after`` (the hub's readiness) are followed, so the daemon announces itself
ready only when nothing it does from then on goes uncounted.

Each milestone is also logged (``claimed``, ``started``, ``completed``, failures, ``gave up``)
with the board, task id and run id as record fields, so JSON logs can be filtered per task.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence

import anyio

from gateway.metrics.registry import GatewayMetrics
from kanban.board import Board, ChangeSignal
from kanban.board.events import EventTail
from kanban.board.recovery import FAILURE_KINDS
from kanban.errors import KanbanError
from kanban.models import Event

log = logging.getLogger(__name__)

PENDING_CLAIMS = 10_000  # claims remembered until their start (bounded: manual claims never start)


class TaskLifecycle:
    def __init__(self, metrics: GatewayMetrics, boards: Callable[[], Sequence[Board]],
                 changes: ChangeSignal, *, tick_seconds: float = 5.0,
                 start_after: anyio.Event | None = None) -> None:
        self.metrics = metrics
        self.boards = boards
        self.changes = changes
        self.tick_seconds = tick_seconds
        self.start_after = start_after
        self.ready = anyio.Event()
        self._tails: dict[str, EventTail] = {}
        self._claimed: OrderedDict[tuple[str, int], float] = OrderedDict()

    async def run(self) -> None:
        """Follow the boards until cancelled."""
        if self.start_after is not None:
            await self.start_after.wait()
        while True:
            version = self.changes.version
            await self.read()
            self.ready.set()
            await self.changes.wait(version, self.tick_seconds)

    async def read(self) -> None:
        """Take in every new event of every served board."""
        boards = list(self.boards())
        for board in boards:
            tail = self._tails.get(board.slug)
            try:
                if tail is None or tail.board is not board:
                    tail = EventTail(board, await board.last_event_id())
                    await tail.prime()
                    self._tails[board.slug] = tail
                    self.metrics.board_seen(board.slug)
                more = True
                while more:
                    events, more = await tail.read()
                    for event in events:
                        self._take(board.slug, event)
            except KanbanError as exc:
                log.warning("reading the events of board %s failed: %s", board.slug, exc,
                            extra={"board": board.slug})
        for slug in set(self._tails) - {b.slug for b in boards}:
            del self._tails[slug]

    def _take(self, slug: str, event: Event) -> None:
        m = self.metrics
        kind, task, run = event.kind, event.task_id, event.run_id
        fields = {"board": slug, "task_id": task, "run_id": run}
        payload = event.payload
        if kind == "claimed":
            m.claims.labels(slug).inc()
            if run is not None and event.created_at is not None:
                self._claimed[(slug, run)] = event.created_at
                while len(self._claimed) > PENDING_CLAIMS:
                    self._claimed.popitem(last=False)
            log.info("task #%s claimed (run %s)", task, run, extra=fields)
        elif kind == "spawned":
            claimed = self._claimed.pop((slug, run), None) if run is not None else None
            if claimed is not None and event.created_at is not None:
                m.claim_to_start.labels(slug).observe(max(0.0, event.created_at - claimed))
            log.info("task #%s started (run %s, pid %s)", task, run, payload.get("pid"),
                     extra=fields)
        elif kind == "completed":
            m.completions.labels(slug).inc()
            log.info("task #%s completed (run %s)", task, run, extra=fields)
        elif kind in FAILURE_KINDS:
            m.failures.labels(slug, kind).inc()
            log.warning("task #%s %s (run %s, failure %s of %s): %s", task,
                        kind.replace("_", " "), run, payload.get("failures"),
                        payload.get("limit"), payload.get("error"), extra=fields)
        elif kind == "gave_up":
            m.breaker_trips.labels(slug).inc()
            log.warning("task #%s blocked by the breaker after %s %s: %s", task,
                        payload.get("failures"), payload.get("kind"), payload.get("error"),
                        extra=fields)
        if run is not None and kind not in ("claimed", "spawned", "heartbeat", "claim_extended"):
            self._claimed.pop((slug, run), None)  # the run ended without a start
