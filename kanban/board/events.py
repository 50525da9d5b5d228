"""The event log (read by cursor) and board statistics."""

from __future__ import annotations

import collections
from typing import Any, Protocol

from kanban.board.shared import BoardCore
from kanban.models import Event
from kanban.storage import store
from kanban.storage.tx import Tx
from kanban.validation import check_events_limit, check_int64


class EventsMixin(BoardCore):
    async def events(
        self, *, task_id: int | None = None, since: int = 0, limit: int = 500,
        kinds: tuple[str, ...] | None = None,
    ) -> list[Event]:
        """Events with id > ``since``, oldest first (a cursor: pass the last id you saw).
        ``limit`` is 1 to 10,000."""
        check_events_limit(limit)
        check_int64(since, "since")
        if task_id is not None:
            check_int64(task_id, "task id")
        clauses = ["id > ?"]
        params: list[Any] = [since]
        if task_id is not None:
            clauses.append("task_id = ?")
            params.append(task_id)
        if kinds:
            clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
            params.extend(kinds)
        sql = (f"SELECT * FROM task_events WHERE {' AND '.join(clauses)} ORDER BY id "
               f"LIMIT {int(limit)}")
        return await self.db.read(lambda tx: [Event.from_row(r) for r in tx.all(sql, params)])

    async def last_event_id(self) -> int:
        return await self.db.read(store.last_event_id)

    async def status_counts(self) -> dict[str, int]:
        """Tasks per status: one ``GROUP BY`` on the status index (what a metrics scrape reads)."""
        return await self.db.read(lambda tx: {str(r[0]): int(r[1]) for r in tx.all(
            "SELECT status, COUNT(*) FROM tasks GROUP BY status")})

    async def stats(self) -> dict[str, Any]:
        def run(tx: Tx) -> dict[str, Any]:
            by_status = {str(r[0]): int(r[1]) for r in tx.all(
                "SELECT status, COUNT(*) FROM tasks GROUP BY status")}
            by_assignee = {str(r[0] or "(unassigned)"): int(r[1]) for r in tx.all(
                "SELECT assignee, COUNT(*) FROM tasks WHERE status NOT IN ('done','archived') "
                "GROUP BY assignee")}
            row = tx.one("SELECT COUNT(*) FROM tasks t JOIN task_runs r ON r.id = t.current_run_id "
                         "WHERE t.status = 'running' AND r.status = 'active'")
            return {
                "board": self.slug,
                "by_status": by_status,
                "open_by_assignee": by_assignee,
                "total": sum(by_status.values()),
                "active_runs": int(row[0]) if row else 0,
                "last_event_id": store.last_event_id(tx),
                "journal_mode": self.db.journal_mode,
            }

        return await self.db.read(run)


LAG_WINDOW = 64
"""Event ids a tail re-reads behind its cursor. On PostgreSQL a claim or a heartbeat commits
beside other writes, so an event can become visible after one with a higher id; looking this far
back (and handing each id out once) still delivers it."""


class _Reader(Protocol):
    async def events(self, *, task_id: int | None = None, since: int = 0, limit: int = 500,
                     kinds: tuple[str, ...] | None = None) -> list[Event]: ...


class EventTail:
    """Follows a board's event log forward: each call of :meth:`read` returns the events not
    handed out before, oldest first, including one that committed below the cursor within
    :data:`LAG_WINDOW` ids. ``cursor`` is the highest id seen (what a client resumes from)."""

    def __init__(self, board: _Reader, since: int, *, task_id: int | None = None) -> None:
        self.board = board
        self.cursor = since
        self.task_id = task_id
        self._recent: collections.deque[int] = collections.deque(maxlen=4 * LAG_WINDOW)
        self._seen: set[int] = set()

    async def prime(self) -> None:
        """Count what is at or below the cursor as seen (history, not news), so the first
        re-read behind the cursor does not replay it."""
        window = await self.board.events(task_id=self.task_id,
                                         since=max(0, self.cursor - LAG_WINDOW),
                                         limit=LAG_WINDOW)
        cursor = self.cursor
        self.mark([e for e in window if e.id <= cursor])

    def mark(self, events: list[Event]) -> list[Event]:
        """Record ``events`` as handed out; returns those that were not already."""
        fresh = [e for e in events if e.id not in self._seen]
        for event in fresh:
            if len(self._recent) == self._recent.maxlen:
                self._seen.discard(self._recent[0])
            self._recent.append(event.id)
            self._seen.add(event.id)
        if events:
            self.cursor = max(self.cursor, events[-1].id)
        return fresh

    async def read(self, limit: int = 500) -> tuple[list[Event], bool]:
        """(new events, more) — ``more`` when a full page was read and another may follow."""
        read = await self.board.events(task_id=self.task_id,
                                       since=max(0, self.cursor - LAG_WINDOW), limit=limit)
        return self.mark(read), len(read) >= limit
