"""One gateway's metrics: its own registry, the counters and histograms, and the scrape.

Counters and histograms are updated where their events happen: the task counters and the
claim-to-start latency by :class:`~gateway.metrics.lifecycle.TaskLifecycle` (which follows the
boards' event logs, so the kernel knows nothing of metrics), sends by the notifier and the chat
router through :meth:`GatewayMetrics.sent`, the completion-to-notification latency by the
notifier through :meth:`GatewayMetrics.notified`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

from gateway.metrics.gauges import Snapshot, SnapshotCollector
from kanban.board.outbox import OutboxItem
from kanban.board.recovery import FAILURE_KINDS
from platforms.receipts import Receipt, ReceiptStatus

# Seconds: a claim usually starts its worker within a second; a notification can wait out a
# platform's rate limit or an outage (the outbox retries up to minutes apart).
START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
NOTIFY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class GatewayMetrics:
    """The metrics of one gateway; :meth:`exposition` renders them for ``GET /metrics``."""

    def __init__(self, snapshot: Callable[[], Awaitable[Snapshot]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self.clock = clock
        r = self.registry
        self.claims = Counter("relayboard_task_claims", "Runs opened by a claim.", ["board"],
                              registry=r)
        self.completions = Counter("relayboard_task_completions", "Tasks completed.", ["board"],
                                   registry=r)
        self.failures = Counter(
            "relayboard_task_failures",
            "Runs that failed: spawn_failed, crashed, timed_out, protocol_violation.",
            ["board", "kind"], registry=r)
        self.breaker_trips = Counter(
            "relayboard_breaker_trips",
            "Tasks the breaker blocked after repeated failures (gave_up).", ["board"],
            registry=r)
        self.claim_to_start = Histogram(
            "relayboard_claim_to_start_seconds",
            "From a claim to its worker process started.", ["board"], buckets=START_BUCKETS,
            registry=r)
        self.completion_to_notification = Histogram(
            "relayboard_completion_to_notification_seconds",
            "From a task's completion to its notification delivered, per chat platform.",
            ["platform"], buckets=NOTIFY_BUCKETS, registry=r)
        self.sends = Counter(
            "relayboard_sends",
            "Sends to chat platforms (notifications and replies), by receipt.",
            ["platform", "result"], registry=r)
        self.gauges: SnapshotCollector | None = None
        if snapshot is not None:
            self.gauges = SnapshotCollector(snapshot)
            r.register(self.gauges)
        self._scrape = asyncio.Lock()

    def board_seen(self, slug: str) -> None:
        """Start the board's counters at 0, so a rate over them is defined from the start."""
        self.claims.labels(slug)
        self.completions.labels(slug)
        self.breaker_trips.labels(slug)
        for kind in FAILURE_KINDS:
            self.failures.labels(slug, kind)

    def platform_seen(self, platform: str) -> None:
        for status in ReceiptStatus:
            self.sends.labels(platform, status.value)

    # ---- hooks for the notifier and the chat router --------------------------------------------
    def sent(self, platform: str, receipts: Sequence[Receipt]) -> None:
        for receipt in receipts:
            self.sends.labels(platform, receipt.status.value).inc()

    def notified(self, item: OutboxItem) -> None:
        """A notification went out for good: its latency, for a completion."""
        created = item.event.created_at
        if item.kind == "completed" and created is not None:
            self.completion_to_notification.labels(item.platform).observe(
                max(0.0, self.clock() - created))

    # ---- the scrape ------------------------------------------------------------------------------
    async def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type): the Prometheus text format, or OpenMetrics when the scraper's
        ``Accept`` asks for it, with the gauges read now (one scrape at a time)."""
        encode, content_type = choose_encoder(accept)
        async with self._scrape:
            if self.gauges is not None:
                await self.gauges.refresh()
            return encode(self.registry), content_type
