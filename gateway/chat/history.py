"""Conversation history per chat thread, kept in the home so it survives a restart.

One JSON-lines file per thread under ``<home>/chat/history/<platform>/``, named by a hash of
(chat, thread) so no platform id becomes a path. Bounded: only the last ``limit`` entries are
read, and a file is compacted when it holds twice that many lines (amortised O(1) per message).
Private like the rest of the home: folders 0700, files 0600 (:mod:`platforms.private_files`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from platforms.private_files import append_text, private_dirs, tighten_tree, write_private_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    role: str  # "user" or "assistant"
    text: str
    name: str | None = None  # the user's display name
    at: float = 0.0


def thread_key(platform: str, chat: str, thread: str | None) -> str:
    """A file-system-safe key for one conversation (a chat, or a thread inside it)."""
    raw = f"{platform}\0{chat}\0{thread or ''}"
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class History:
    def __init__(self, root: Path, limit: int = 20) -> None:
        self.root = root
        self.limit = limit
        self._locks: dict[Path, asyncio.Lock] = {}
        self._tightened = False

    async def _tighten(self) -> None:
        """Once per process: a history an older version left readable (0755/0644) is made
        private before it is used."""
        if not self._tightened:
            self._tightened = True
            await asyncio.to_thread(_tighten, self.root)

    def path(self, platform: str, chat: str, thread: str | None) -> Path:
        safe = "".join(c for c in platform if c.isalnum() or c in "-_") or "chat"
        return self.root / safe / f"{thread_key(platform, chat, thread)}.jsonl"

    async def recent(self, platform: str, chat: str, thread: str | None) -> list[Entry]:
        if self.limit <= 0:
            return []
        await self._tighten()
        return await asyncio.to_thread(_read, self.path(platform, chat, thread), self.limit)

    async def append(self, platform: str, chat: str, thread: str | None, *entries: Entry) -> None:
        if self.limit <= 0 or not entries:
            return
        path = self.path(platform, chat, thread)
        lock = self._locks.setdefault(path, asyncio.Lock())
        await self._tighten()
        async with lock:
            await asyncio.to_thread(_append, path, entries, self.limit, self.root.parent)


def _tighten(root: Path) -> None:
    if root.is_dir():
        private_dirs(root, top=root.parent)  # <home>/chat and <home>/chat/history
        tighten_tree(root)


def entry(role: str, text: str, name: str | None = None) -> Entry:
    return Entry(role=role, text=text, name=name, at=time.time())


def _read(path: Path, limit: int) -> list[Entry]:
    try:
        with path.open(encoding="utf-8") as fh:
            lines = deque(fh, maxlen=limit)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("chat history %s unreadable: %s", path.name, exc)
        return []
    out: list[Entry] = []
    for line in lines:
        try:
            data = json.loads(line)
            out.append(Entry(role=str(data["role"]), text=str(data["text"]),
                             name=data.get("name"), at=float(data.get("at") or 0.0)))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line after a crash: skip it
    return out


def _append(path: Path, entries: tuple[Entry, ...], limit: int, top: Path) -> None:
    private_dirs(path.parent, top=top)
    with append_text(path) as fh:
        for e in entries:
            fh.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")
    with path.open("rb") as fh:
        count = sum(1 for _ in fh)
    if count > 2 * limit:
        with path.open(encoding="utf-8") as fh:
            kept = deque(fh, maxlen=limit)
        temp = path.with_suffix(".tmp")
        write_private_text(temp, "".join(kept))
        temp.replace(path)
