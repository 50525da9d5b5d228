"""Capped, jittered exponential backoff for inbound connection loops."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays base, 2*base, 4*base … capped at ``cap``, each scaled by a random factor in
    [1 - jitter, 1] so that many clients do not reconnect in lockstep."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.5
    attempts: int = field(default=0, init=False)

    def next_delay(self, retry_after: float | None = None) -> float:
        """The next delay; a server's ``retry_after`` is honoured as a floor."""
        raw = min(self.cap, self.base * float(2 ** min(self.attempts, 30)))
        self.attempts += 1
        delay = raw * (1 - self.jitter * random.random())
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def reset(self) -> None:
        self.attempts = 0
