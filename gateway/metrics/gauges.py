"""The gauges a scrape computes: tasks per status, the outbox, workers, adapters, leadership.

Prometheus calls :meth:`SnapshotCollector.collect` synchronously while the board queries are
async, so a scrape first awaits a fresh :class:`Snapshot` (:meth:`SnapshotCollector.refresh`) and
the collector then renders that snapshot. Nothing here is kept between scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kanban.models import STATUSES

# Every state an adapter's runner can be in, so each platform shows one series per state.
ADAPTER_STATES = ("connecting", "connected", "retrying", "conflict", "standby", "stopped")


@dataclass(frozen=True)
class BoardSnapshot:
    tasks: Mapping[str, int] = field(default_factory=dict)  # status → count
    outbox_pending: int = 0
    outbox_oldest: float | None = None  # epoch seconds the oldest undelivered row was queued
    workers: int = 0  # worker processes this gateway watches that are alive
    readable: bool = True  # False: the scrape's query on this board failed


@dataclass(frozen=True)
class Snapshot:
    boards: Mapping[str, BoardSnapshot] = field(default_factory=dict)
    adapters: Mapping[str, str] = field(default_factory=dict)  # platform → state
    leader: bool = False
    leadership_shared: bool = False
    components: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # state, restarts
    started_at: float | None = None
    at: float = 0.0  # when it was read (epoch seconds)


class SnapshotCollector(Collector):
    def __init__(self, read: Callable[[], Awaitable[Snapshot]]) -> None:
        self.read = read
        self.snapshot = Snapshot()

    async def refresh(self) -> None:
        self.snapshot = await self.read()

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        snap = self.snapshot
        now = snap.at or time.time()
        tasks = GaugeMetricFamily("relayboard_tasks", "Tasks on each board, by status.",
                                  labels=["board", "status"])
        pending = GaugeMetricFamily(
            "relayboard_outbox_pending",
            "Notifications queued and not yet delivered (enabled subscriptions).",
            labels=["board"])
        oldest = GaugeMetricFamily(
            "relayboard_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered notification (0 when none waits).", labels=["board"])
        workers = GaugeMetricFamily("relayboard_workers_running",
                                    "Worker processes this gateway watches that are alive.",
                                    labels=["board"])
        readable = GaugeMetricFamily("relayboard_board_up",
                                     "1 when this scrape could read the board, else 0.",
                                     labels=["board"])
        for slug, board in sorted(snap.boards.items()):
            readable.add_metric([slug], 1.0 if board.readable else 0.0)
            workers.add_metric([slug], float(board.workers))
            if not board.readable:
                continue
            for status in (*STATUSES, *sorted(set(board.tasks) - set(STATUSES))):
                tasks.add_metric([slug, status], float(board.tasks.get(status, 0)))
            pending.add_metric([slug], float(board.outbox_pending))
            age = max(0.0, now - board.outbox_oldest) if board.outbox_oldest else 0.0
            oldest.add_metric([slug], age)
        yield from (tasks, pending, oldest, workers, readable)

        adapters = GaugeMetricFamily(
            "relayboard_adapter_state",
            "1 for the state each chat platform's adapter is in, 0 for the others.",
            labels=["platform", "state"])
        for platform, state in sorted(snap.adapters.items()):
            for known in (*ADAPTER_STATES, *([state] if state not in ADAPTER_STATES else [])):
                adapters.add_metric([platform, known], 1.0 if known == state else 0.0)
        yield adapters

        yield GaugeMetricFamily("relayboard_leader",
                                "1 while this gateway holds the leadership (always on SQLite).",
                                value=1.0 if snap.leader else 0.0)
        yield GaugeMetricFamily("relayboard_leadership_shared",
                                "1 when other gateways can lead (boards on PostgreSQL).",
                                value=1.0 if snap.leadership_shared else 0.0)
        up = GaugeMetricFamily("relayboard_component_up",
                               "1 while a daemon component runs, 0 while it waits to restart.",
                               labels=["component"])
        restarts = CounterMetricFamily("relayboard_component_restarts",
                                       "Restarts of each daemon component after a failure.",
                                       labels=["component"])
        for name, (state, count) in sorted(snap.components.items()):
            up.add_metric([name], 1.0 if state == "running" else 0.0)
            restarts.add_metric([name], float(count))
        yield up
        yield restarts
        if snap.started_at is not None:
            yield GaugeMetricFamily("relayboard_start_time_seconds",
                                    "When this gateway started (epoch seconds).",
                                    value=snap.started_at)
