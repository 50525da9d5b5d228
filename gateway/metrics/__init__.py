"""The gateway's Prometheus metrics (docs/operations.md lists them).

* :class:`GatewayMetrics` — one ``CollectorRegistry`` per gateway (never the process-global one,
  so several gateways can live in one process): the counters and histograms, updated where their
  events happen, and the scrape-time gauges.
* :class:`Snapshot` — what the gauges show, read fresh (one cheap query per board) on each scrape.
* :class:`TaskLifecycle` — follows every served board's event log: the task counters and the
  claim-to-start latency, and one log line per run milestone.
"""

from gateway.metrics.gauges import BoardSnapshot, Snapshot
from gateway.metrics.lifecycle import TaskLifecycle
from gateway.metrics.registry import GatewayMetrics

__all__ = ["BoardSnapshot", "GatewayMetrics", "Snapshot", "TaskLifecycle"]
