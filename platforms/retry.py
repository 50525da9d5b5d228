"""How long an inbound connection loop waits before retry ``n`` (1 = the first after a failure).

The formula is not here: ``platforms`` may not import ``kanban``, where Relayboard's one backoff
formula lives (:mod:`kanban.backoff`), so a loop is handed it as a plain function of the retry
number, and the gateway (the composition root) passes that formula's. The loop counts its own
failures in a row and takes a server's Retry-After as a floor. Built without one (a test, a
script using the package on its own), a loop retries at a steady :data:`STEADY_RETRY_SECONDS`:
slow enough to spare the server, with no second formula to keep.
"""

from __future__ import annotations

from collections.abc import Callable

Delays = Callable[[int], float]  # seconds before retry n
STEADY_RETRY_SECONDS = 5.0


def steady(retry: int) -> float:
    return STEADY_RETRY_SECONDS
