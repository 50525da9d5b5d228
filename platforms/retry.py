"""A streak of failed tries in an inbound connection loop, and how long to wait before the next.

The delay formula is not here: ``platforms`` may not import ``kanban``, where Relayboard's one
backoff formula lives (:mod:`kanban.backoff`), so a loop is handed it as a plain function of the
retry number, and the gateway (the composition root) passes that formula's. Built without one
(a test, a script using the package on its own), a loop retries at a steady
:data:`STEADY_RETRY_SECONDS`: slow enough to spare the server, with no second formula to keep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Delays = Callable[[int], float]  # seconds before retry n (1 = the first retry)
STEADY_RETRY_SECONDS = 5.0


def steady(retry: int) -> float:
    return STEADY_RETRY_SECONDS


@dataclass
class RetryStreak:
    delays: Delays = steady
    attempts: int = field(default=0, init=False)

    def next_delay(self, retry_after: float | None = None) -> float:
        """The next delay; a server's ``retry_after`` is honoured as a floor."""
        self.attempts += 1
        delay = self.delays(self.attempts)
        return delay if retry_after is None else max(delay, retry_after)

    def reset(self) -> None:
        self.attempts = 0
