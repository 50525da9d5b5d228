"""The strangers' refusal budget: one polite refusal per user per interval, across restarts.

A user not on a platform's allow-list is told once why the bot does not answer, then ignored for
``interval`` seconds. The times of those refusals live in ``<home>/run/chat-refusals.json``
(0600 in a 0700 folder), so a gateway restarted within the hour stays quiet instead of refusing
everyone again.

Why a file in ``run/`` rather than a table on the default board: the budget belongs to the one
gateway that owns the home (a lock keeps it to one), not to a board a second host may share over
PostgreSQL; it needs no schema or migration on either backend; and it is disposable — a missing or
unreadable file costs at most one extra refusal per user, never a lost message. Times are wall
clock (``time.time``), since a monotonic clock restarts with the process. Entries older than the
interval are dropped on every write, and at most ``MAX_ENTRIES`` are kept (a busy public channel
full of strangers cannot grow it without bound).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from kanban.storage.modes import PRIVATE_FILE_MODE, private_dir

log = logging.getLogger(__name__)

FILE_NAME = "chat-refusals.json"
MAX_ENTRIES = 10_000


def budget_path(home: Path) -> Path:
    return home / "run" / FILE_NAME


class RefusalBudget:
    """Whether a stranger may be refused now (:meth:`take`), remembered in a private file."""

    def __init__(self, path: Path, interval: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] | None = None  # "platform\x1fuser" -> wall-clock time
        self._lock = asyncio.Lock()

    async def take(self, platform: str, user_id: str) -> bool:
        """True (and recorded, on disk before returning) if ``user_id`` was not refused within
        the interval; False if they were, so this message is ignored."""
        async with self._lock:
            if self._last is None:
                self._last = await asyncio.to_thread(self._load)
            key = f"{platform}\x1f{user_id}"
            now = self.clock()
            last = self._last.get(key)
            if last is not None and 0 <= now - last < self.interval:
                return False
            self._last[key] = now
            self._prune(now)
            snapshot = dict(self._last)
            await asyncio.to_thread(self._save, snapshot)
            return True

    def _prune(self, now: float) -> None:
        assert self._last is not None
        cutoff = now - self.interval
        live = {k: t for k, t in self._last.items() if t >= cutoff}
        if len(live) > MAX_ENTRIES:  # keep the most recent ones
            live = dict(sorted(live.items(), key=lambda kv: kv[1])[-MAX_ENTRIES:])
        self._last = live

    def _load(self) -> dict[str, float]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("chat: the refusal budget %s is unreadable (%s); starting afresh",
                        self.path.name, exc)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {str(k): float(v) for k, v in raw.items()
                if isinstance(v, int | float) and not isinstance(v, bool)}

    def _save(self, entries: dict[str, float]) -> None:
        try:
            private_dir(self.path.parent)
            part = self.path.with_name(f".{self.path.name}.part")
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                         PRIVATE_FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entries, fh, separators=(",", ":"))
            os.chmod(part, PRIVATE_FILE_MODE)
            os.replace(part, self.path)
        except OSError as exc:
            # Still refused at most once per interval while this process runs (in memory).
            log.warning("chat: could not record the refusal budget in %s: %s",
                        self.path.name, exc.strerror or exc)
