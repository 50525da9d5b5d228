"""The per-hook rate limit: a token bucket in this process's memory.

Each hook's bucket holds ``burst`` tokens and refills at ``rate_per_minute``; a request that
finds it empty is answered 429 with ``Retry-After`` (seconds until a token is back). The bucket
lives in the gateway process: a restart refills it, and two gateways behind one address each
keep their own (docs/hooks.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate_per_second: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self.stamp = self.clock()

    def take(self) -> float:
        """Take one token: 0.0 when one was there, else the seconds until one will be."""
        now = self.clock()
        refill = (now - self.stamp) * self.rate_per_second
        self.tokens = min(float(self.burst), self.tokens + refill)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_second


class RateLimits:
    """One bucket per hook name; a hook whose rate or burst changed gets a fresh bucket."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, name: str, rate_per_minute: float, burst: int) -> int:
        """0 when the request may go ahead, else whole seconds to wait (for Retry-After)."""
        bucket = self.buckets.get(name)
        rate = rate_per_minute / 60.0
        if bucket is None or (bucket.rate_per_second, bucket.burst) != (rate, burst):
            bucket = self.buckets[name] = TokenBucket(rate, burst, self.clock)
        wait = bucket.take()
        return 0 if wait == 0.0 else max(1, math.ceil(wait))
