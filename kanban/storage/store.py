"""Synchronous building blocks run inside one write transaction on the database thread.

Every function here takes a :class:`~kanban.db.Tx`; none commits. The async :class:`Board` API
composes them so each public operation is exactly one transaction.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from typing import Any

from kanban.errors import Conflict, CycleError, InvalidInput, LeaseError, TaskNotFound
from kanban.models import SATISFIED, Run, Task
from kanban.storage.tx import Tx
from kanban.timeutil import now
from kanban.validation import describe_chain, in_int64


def same_token(stored: object, offered: str) -> bool:
    """Constant-time token comparison that takes any text (``compare_digest`` refuses non-ASCII
    ``str``; a worker may send anything as its lease)."""
    return secrets.compare_digest(str(stored).encode("utf-8", "surrogatepass"),
                                  offered.encode("utf-8", "surrogatepass"))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def load_task(tx: Tx, task_id: int, *, with_links: bool = False) -> Task:
    if not in_int64(task_id):
        raise TaskNotFound(task_id)
    row = tx.one("SELECT * FROM tasks WHERE id = ?", (task_id,))
    if row is None:
        raise TaskNotFound(task_id)
    task = Task.from_row(row)
    if with_links:
        task.parents = parent_ids(tx, task_id)
        task.children = child_ids(tx, task_id)
    return task


def parent_ids(tx: Tx, task_id: int) -> list[int]:
    rows = tx.all("SELECT parent_id FROM task_links WHERE child_id = ? ORDER BY parent_id",
                  (task_id,))
    return [int(r[0]) for r in rows]


def child_ids(tx: Tx, task_id: int) -> list[int]:
    rows = tx.all("SELECT child_id FROM task_links WHERE parent_id = ? ORDER BY child_id",
                  (task_id,))
    return [int(r[0]) for r in rows]


def unsatisfied_parents(tx: Tx, task_id: int, *, locked: bool = False) -> list[int]:
    """The task's parents that are not done or archived. On PostgreSQL the task's row is
    locked first (unless the caller holds it: ``locked``): whatever this transaction decides
    from the answer, a parent finishing at the same moment gates the task after it (and sees
    that decision), never before."""
    if tx.for_update and not locked:
        tx.one("SELECT 1 FROM tasks WHERE id = ?" + tx.for_update, (task_id,))
    rows = tx.all(
        "SELECT l.parent_id FROM task_links l JOIN tasks p ON p.id = l.parent_id "
        "WHERE l.child_id = ? AND p.status NOT IN ('done', 'archived') ORDER BY l.parent_id",
        (task_id,),
    )
    return [int(r[0]) for r in rows]


def append_event(
    tx: Tx, task_id: int | None, kind: str, payload: dict[str, Any] | None = None,
    *, run_id: int | None = None,
) -> int:
    row = tx.one(
        "INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES (?,?,?,?,?) "
        "RETURNING id", (task_id, run_id, kind, dumps(payload or {}), now()),
    )
    return int(row[0])


def last_event_id(tx: Tx) -> int:
    """The newest event's id (0 on an empty log)."""
    row = tx.one("SELECT MAX(id) FROM task_events")
    return int(row[0]) if row and row[0] is not None else 0


def add_comment(tx: Tx, task_id: int, author: str, body: str, *, kind: str = "human") -> int:
    row = tx.one(
        "INSERT INTO task_comments (task_id, author, author_kind, body, created_at) "
        "VALUES (?,?,?,?,?) RETURNING id",
        (task_id, author, kind, body, now()),
    )
    comment_id = int(row[0])
    append_event(tx, task_id, "commented", {"comment_id": comment_id, "author": author,
                                              "author_kind": kind})
    return comment_id


def set_status(tx: Tx, task_id: int, expected: str, new: str, **fields: Any) -> bool:
    """Compare-and-swap a task's status; True when this call made the change."""
    assignments = ["status = ?", "updated_at = ?"]
    params: list[Any] = [new, now()]
    for column, value in fields.items():
        assignments.append(f"{column} = ?")
        params.append(value)
    params.extend([task_id, expected])
    cur = tx.execute(
        f"UPDATE tasks SET {', '.join(assignments)} WHERE id = ? AND status = ?", params
    )
    return cur.rowcount == 1


def find_cycle(tx: Tx, parent: int, child: int) -> list[int] | None:
    """The path child → … → parent if linking parent → child would close a cycle, else None.

    Walks only the descendants of ``child`` (breadth first), never the whole board.
    """
    if parent == child:
        return [parent]
    came_from: dict[int, int] = {child: child}
    queue = deque([child])
    while queue:
        node = queue.popleft()
        for nxt in child_ids(tx, node):
            if nxt in came_from:
                continue
            came_from[nxt] = node
            if nxt == parent:
                path = [parent]
                while path[-1] != child:
                    path.append(came_from[path[-1]])
                return list(reversed(path))
            queue.append(nxt)
    return None


def insert_link(tx: Tx, parent: int, child: int) -> bool:
    """Add the edge parent → child after the cycle check; False if it already existed."""
    for task_id, lock in ((parent, tx.for_share), (child, tx.for_update)):
        # Row locks (PostgreSQL), parent then child as a completion takes them: the parent
        # finishing now either committed first (seen done) or waits and then gates the child;
        # a claim of the child either finished first (it runs, as if claimed before the link)
        # or waits and sees the new parent.
        if not in_int64(task_id) or tx.one("SELECT 1 FROM tasks WHERE id = ?" + lock,
                                           (task_id,)) is None:
            raise TaskNotFound(task_id)
    cycle = find_cycle(tx, parent, child)
    if cycle is not None:
        chain = describe_chain([*cycle, child])
        raise CycleError(
            f"linking {parent} → {child} would create a cycle ({chain})"
            if parent != child else f"task {parent} cannot be its own parent",
            cycle,
        )
    cur = tx.execute(
        "INSERT INTO task_links (parent_id, child_id, created_at) VALUES (?,?,?) "
        "ON CONFLICT DO NOTHING",
        (parent, child, now()),
    )
    return cur.rowcount == 1


def remove_link(tx: Tx, parent: int, child: int) -> bool:
    """Remove the edge parent → child; False if there was none."""
    return tx.execute("DELETE FROM task_links WHERE parent_id = ? AND child_id = ?",
                      (parent, child)).rowcount == 1


def gate(tx: Tx, task_id: int, *, parent_finished: bool = False) -> str | None:
    """Re-evaluate one task against its parents; returns its new status when it changed.

    todo → ready when every parent is done or archived; ready → todo when one is not. A task its
    worker blocked is promoted (failure counters reset) only when ``parent_finished`` — one of
    its parents just became done or archived — and every parent is now satisfied: the block was
    waiting for that parent's work. A sweep (``recompute``), an unlink or a task without
    parents never lifts a block; human and breaker blocks wait for a person in every case.
    """
    # The child's row is locked first (PostgreSQL): two parents finishing at once gate it one
    # after the other, and the second sees the first done.
    row = tx.one("SELECT status, blocked_by FROM tasks WHERE id = ?" + tx.for_update,
                 (task_id,))
    if row is None:
        return None
    status = str(row["status"])
    if status not in ("todo", "ready", "blocked"):
        return None
    if status == "blocked" and not (parent_finished and row["blocked_by"] == "worker"):
        return None
    pending = unsatisfied_parents(tx, task_id, locked=True)
    if status == "todo" and not pending:
        if set_status(tx, task_id, "todo", "ready"):
            append_event(tx, task_id, "promoted", {"from": "todo", "to": "ready"})
            return "ready"
    elif status == "ready" and pending:
        if set_status(tx, task_id, "ready", "todo"):
            append_event(tx, task_id, "demoted", {"from": "ready", "to": "todo",
                                                  "waiting_for": pending})
            return "todo"
    elif status == "blocked" and not pending:
        if set_status(tx, task_id, "blocked", "ready", blocked_by=None, blocked_reason=None,
                      consecutive_failures=0, last_failure_error=None, not_before=None):
            append_event(tx, task_id, "promoted",
                         {"from": "blocked", "to": "ready", "reason": "parents done"})
            return "ready"
    return None


def gate_children(tx: Tx, task_id: int, children: list[int] | None = None) -> dict[int, str]:
    """Incremental readiness: only the children of a task that finished are re-evaluated."""
    changed: dict[int, str] = {}
    for child in child_ids(tx, task_id) if children is None else children:
        new = gate(tx, child, parent_finished=True)
        if new is not None:
            changed[child] = new
    return changed


def derive_status(tx: Tx, parents: list[int], *, triage: bool) -> str:
    if triage:
        return "triage"
    if not parents:
        return "ready"
    placeholders = ",".join("?" * len(parents))
    # Shared locks on the parents (PostgreSQL): a parent finishing at this moment either
    # committed first (seen done here) or waits and then gates the new child.
    rows = tx.all(f"SELECT id, status FROM tasks WHERE id IN ({placeholders}) ORDER BY id"
                  + tx.for_share, parents)
    satisfied = sum(1 for r in rows if str(r[1]) in SATISFIED)
    return "ready" if satisfied == len(parents) else "todo"


def check_parents_exist(tx: Tx, parents: list[int]) -> None:
    if not parents:
        return
    placeholders = ",".join("?" * len(parents))
    found = {int(r[0]) for r in tx.all(f"SELECT id FROM tasks WHERE id IN ({placeholders})",
                                       parents)}
    missing = [p for p in parents if p not in found]
    if missing:
        raise InvalidInput(f"unknown parent task(s): {', '.join(map(str, missing))}")


def end_run(tx: Tx, run_id: int, status: str, *, error: str | None = None,
            exit_code: int | None = None, summary: str | None = None, result: str | None = None,
            metadata: dict[str, Any] | None = None) -> bool:
    """End an active run; ``summary``/``result``/``metadata`` are what its worker said."""
    cur = tx.execute(
        "UPDATE task_runs SET status = ?, ended_at = ?, error = COALESCE(?, error), "
        "exit_code = COALESCE(?, exit_code), summary = COALESCE(?, summary), "
        "result = COALESCE(?, result), metadata = COALESCE(?, metadata) "
        "WHERE id = ? AND status = 'active'",
        (status, now(), error, exit_code, summary, result,
         None if metadata is None else dumps(metadata), run_id),
    )
    return cur.rowcount == 1


def active_run(tx: Tx, run_id: int) -> Run | None:
    """The run ``run_id`` if it is still active."""
    row = tx.one("SELECT * FROM task_runs WHERE id = ? AND status = 'active'", (run_id,))
    return None if row is None else Run.from_row(row)


def live_run_id(tx: Tx, task: Task) -> int | None:
    """The task's current run if it is still active (a worker may be working on it)."""
    if task.current_run_id is None:
        return None
    row = tx.one("SELECT status FROM task_runs WHERE id = ?", (task.current_run_id,))
    return task.current_run_id if row is not None and row["status"] == "active" else None


def operator_override(tx: Tx, task: Task, action: str, *, force: bool) -> int | None:
    """The live run an operator write would take over; refused unless ``force``.

    Without this an operator (or a worker that dropped its lease) could finish, block or
    archive a task under a worker that is still running it.
    """
    run_id = live_run_id(tx, task)
    if run_id is not None and not force:
        raise Conflict(f"task {task.id} is running (run {run_id}); use --force to {action}")
    return run_id


def check_lease(tx: Tx, task_id: int, lease: str) -> Run:
    """The task's active run if ``lease`` is its token; otherwise a clear :class:`LeaseError`.

    The hot path reads the task's current run by id and compares tokens in constant time; only a
    refusal looks the token up (indexed) to explain what went wrong.
    """
    current = tx.one(
        "SELECT r.* FROM tasks t JOIN task_runs r ON r.id = t.current_run_id WHERE t.id = ?",
        (task_id,),
    )
    if current is not None and current["status"] == "active" and same_token(
        current["lease"], lease
    ):
        return Run.from_row(current)
    row = tx.one("SELECT * FROM task_runs WHERE lease = ?", (lease,))
    if row is None:
        raise LeaseError(f"lease refused for task {task_id}: the token matches no run", task_id)
    found = Run.from_row(row)
    if found.task_id != task_id:
        raise LeaseError(
            f"lease refused: the token belongs to task {found.task_id}, not task {task_id}; "
            "a worker may only write to its own task",
            task_id, found.id,
        )
    if found.status != "active":
        raise LeaseError(
            f"lease refused for task {task_id}: run {found.id} already ended ({found.status}); "
            "its token is stale",
            task_id, found.id,
        )
    raise LeaseError(
        f"lease refused for task {task_id}: run {found.id} is no longer the task's current "
        "run (it was reclaimed)",
        task_id, found.id,
    )
