"""The event log (read by cursor) and board statistics."""

from __future__ import annotations

from typing import Any

from kanban.board.core import BoardCore
from kanban.models import Event
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
        def run(tx: Tx) -> int:
            row = tx.one("SELECT MAX(id) FROM task_events")
            return int(row[0]) if row and row[0] is not None else 0

        return await self.db.read(run)

    async def stats(self) -> dict[str, Any]:
        def run(tx: Tx) -> dict[str, Any]:
            by_status = {str(r[0]): int(r[1]) for r in tx.all(
                "SELECT status, COUNT(*) FROM tasks GROUP BY status")}
            by_assignee = {str(r[0] or "(unassigned)"): int(r[1]) for r in tx.all(
                "SELECT assignee, COUNT(*) FROM tasks WHERE status NOT IN ('done','archived') "
                "GROUP BY assignee")}
            row = tx.one("SELECT COUNT(*) FROM tasks t JOIN task_runs r ON r.id = t.current_run_id "
                         "WHERE t.status = 'running' AND r.status = 'active'")
            ev = tx.one("SELECT MAX(id) FROM task_events")
            return {
                "board": self.slug,
                "by_status": by_status,
                "open_by_assignee": by_assignee,
                "total": sum(by_status.values()),
                "active_runs": int(row[0]) if row else 0,
                "last_event_id": int(ev[0]) if ev and ev[0] is not None else 0,
                "journal_mode": self.db.journal_mode,
            }

        return await self.db.read(run)
