"""The one retry-delay formula in Relayboard: capped exponential, with jitter that only shortens.

Retry ``n`` (1 = the first retry after a failure) waits ``min(cap, base * 2**(n-1))`` seconds,
cut by a random fraction of at most ``jitter``. The jitter only shortens, never stretches, so
the cap stays a cap; it exists so that many things that failed together (tasks, workers,
pollers) do not come back together.

Where it lives, and why: ``kanban`` needs it (a task's retry not-before time, the worker's model
client) and may import neither ``gateway`` nor ``platforms``, so it is here, with nothing but
the standard library. ``gateway`` imports it (restarting components and adapters, notification
retries). ``platforms`` may not import ``kanban``, so it keeps no formula and no retry loop at
all: an adapter's ``run`` raises when its connection is lost, and the gateway's adapter runner
retries it with this formula. A library (tenacity, stamina) was not adopted: the kernel
would need a dependency the layering rule does not allow, for a dozen lines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """A retry schedule. ``rng`` is injectable so that tests (and the board, which keeps its
    own) decide where the jitter comes from; None means the ``random`` module."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2  # the largest fraction a delay is shortened by
    # For loops that can tell (the gateway's restarts): running this long ends a failure
    # streak, so the next failure waits ``base`` again.
    steady_seconds: float = 60.0
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first; less counts as 1)."""
        raw = min(self.cap, self.base * 2.0 ** min(max(retry, 1) - 1, 60))  # 2**60: past any cap
        return max(0.0, raw * (1.0 - self.jitter * (self.rng or random).random()))
