"""Time helpers. Timestamps are stored as epoch seconds (REAL); readers tolerate anything."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_clock = threading.local()


def now() -> float:
    """Epoch seconds: the host's clock, or inside a PostgreSQL transaction the database
    server's (one clock for leases and due times, whatever the hosts' say)."""
    source: Callable[[], float] | None = getattr(_clock, "source", None)
    return time.time() if source is None else source()


@contextmanager
def clock_source(source: Callable[[], float]) -> Iterator[None]:
    """Have :func:`now` on this thread read ``source`` until the block ends."""
    previous = getattr(_clock, "source", None)
    _clock.source = source
    try:
        yield
    finally:
        _clock.source = previous


def to_epoch(value: object) -> float | None:
    """Best-effort conversion of a stored timestamp to epoch seconds.

    Old rows may hold ISO-8601 strings ("2026-05-10T15:00:00Z") or garbage; a value that cannot
    be read is ``None`` ("unknown"), never an exception.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        f = float(text)
    except ValueError:
        pass
    else:
        return f if math.isfinite(f) else None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def iso(value: object) -> str | None:
    """Render a stored timestamp as ISO-8601 UTC, or ``None`` when unknown."""
    epoch = to_epoch(value)
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")


def age_text(value: object, *, at: float | None = None) -> str:
    """A short human age such as ``3m`` or ``2h``; ``unknown`` for unreadable values."""
    epoch = to_epoch(value)
    if epoch is None:
        return "unknown"
    seconds = max(0.0, (at if at is not None else now()) - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
