"""Claims, leases and the outcome of a run: the worker-facing half of the :class:`Board` API.

A claim opens a run (``task_runs``) with a random lease token and an expiry. Worker writes
(complete, block, heartbeat, comment) must present that token; a run that ended or was reclaimed
can never finish its successor's work (ARCHITECTURE section 3, invariant 5).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from kanban.board.artifacts import StagedArtifacts, stage_artifacts
from kanban.board.core import BoardCore
from kanban.errors import Conflict, InvalidInput, NotClaimable, TaskNotFound
from kanban.models import Claim, Run, Task, loads_json
from kanban.storage import store
from kanban.storage.db import Tx
from kanban.timeutil import now

HOSTNAME = socket.gethostname()

FAILURE_KINDS = ("spawn_failed", "crashed", "timed_out", "protocol_violation")


@dataclass(frozen=True)
class FailureOutcome:
    """What :meth:`RunsMixin.record_failure` did."""

    recorded: bool  # False: the run was no longer the task's current run (nothing changed)
    failures: int
    limit: int
    tripped: bool  # the breaker blocked the task (``gave_up``)
    status: str


class RunsMixin(BoardCore):
    """Claims, leases, worker writes and the dispatcher\'s bookkeeping."""

    # ---- claiming ---------------------------------------------------------------------------
    async def claim(
        self, task_id: int, *, ttl: float | None = None, claimed_by: str | None = None,
        profile: str | None = None,
    ) -> Claim:
        """Claim a ready task: the single enforcement point of the parent gate (S30).

        A ready task with an unfinished parent is demoted to todo (committed) and refused.
        Exactly one of several concurrent claimers wins (compare-and-swap on the status).
        """
        lease_ttl = self.options.claim_ttl_seconds if ttl is None else ttl
        if lease_ttl <= 0:
            raise InvalidInput(f"claim ttl must be positive (got {lease_ttl})")

        def run(tx: Tx) -> Claim | NotClaimable:
            # One read for the task and its unfinished parents: this is the hottest write path.
            row = tx.one(
                "SELECT t.status, t.assignee, t.workspace_kind, t.workspace_path, "
                "(SELECT group_concat(l.parent_id) FROM task_links l JOIN tasks p "
                " ON p.id = l.parent_id WHERE l.child_id = t.id "
                " AND p.status NOT IN ('done', 'archived')) AS pending "
                "FROM tasks t WHERE t.id = ?",
                (task_id,),
            )
            if row is None:
                raise TaskNotFound(task_id)
            status = str(row["status"])
            if status != "ready":
                return NotClaimable(task_id, status)
            pending = sorted(int(p) for p in str(row["pending"] or "").split(",") if p)
            if pending:
                store.set_status(tx, task_id, "ready", "todo")
                store.append_event(tx, task_id, "demoted", {
                    "from": "ready", "to": "todo", "waiting_for": pending,
                    "reason": "claim found unfinished parents",
                })
                return NotClaimable(
                    task_id, "todo",
                    "parent(s) " + ", ".join(map(str, pending))
                    + " not done; demoted to todo",
                )
            stamp = now()
            lease = secrets.token_urlsafe(24)
            workspace = self.workspace_path(task_id, row["workspace_kind"], row["workspace_path"])
            cur = tx.execute(
                "INSERT INTO task_runs (task_id, lease, status, claimed_by, profile, claimed_at, "
                "expires_at, host, workspace) VALUES (?,?,?,?,?,?,?,?,?)",
                (task_id, lease, "active", claimed_by, profile or row["assignee"], stamp,
                 stamp + lease_ttl, HOSTNAME,
                 str(workspace) if workspace else None),
            )
            run_id = int(cur.lastrowid or 0)
            if not store.set_status(tx, task_id, "ready", "running", current_run_id=run_id,
                                    started_at=stamp):
                raise NotClaimable(task_id, status, "another claimer won")
            store.append_event(tx, task_id, "claimed", {
                "run_id": run_id, "claimed_by": claimed_by, "expires_at": stamp + lease_ttl,
            }, run_id=run_id)
            return Claim(task_id, run_id, lease, str(workspace) if workspace else None,
                         stamp + lease_ttl)

        outcome = await self.db.write(run)
        if isinstance(outcome, NotClaimable):
            raise outcome
        return outcome

    async def ready_candidates(self, limit: int = 50) -> list[Task]:
        """Claimable tasks, higher priority first, then oldest (uses the status index)."""

        def run(tx: Tx) -> list[Task]:
            rows = tx.all(
                "SELECT * FROM tasks WHERE status = 'ready' "
                "ORDER BY priority DESC, created_at, id LIMIT ?",
                (limit,),
            )
            return [Task.from_row(r) for r in rows]

        return await self.db.read(run)

    async def count_running(self) -> int:
        def run(tx: Tx) -> int:
            row = tx.one("SELECT COUNT(*) FROM tasks WHERE status = 'running'")
            return int(row[0]) if row else 0

        return await self.db.read(run)

    async def active_runs(self) -> list[tuple[Run, Task]]:
        """Every active run with its task (the dispatcher's reaping view)."""

        def run(tx: Tx) -> list[tuple[Run, Task]]:
            out = []
            # An active run is always its task's current run, so the status index finds them.
            for row in tx.all(
                "SELECT r.* FROM tasks t JOIN task_runs r ON r.id = t.current_run_id "
                "WHERE t.status = 'running' AND r.status = 'active' ORDER BY r.id"
            ):
                active = Run.from_row(row)
                task_row = tx.one("SELECT * FROM tasks WHERE id = ?", (active.task_id,))
                if task_row is not None:
                    out.append((active, Task.from_row(task_row)))
            return out

        return await self.db.read(run)

    async def get_run(self, run_id: int) -> Run:
        def run(tx: Tx) -> Run:
            row = tx.one("SELECT * FROM task_runs WHERE id = ?", (run_id,))
            if row is None:
                raise InvalidInput(f"run {run_id} not found")
            return Run.from_row(row)

        return await self.db.read(run)

    # ---- worker writes ------------------------------------------------------------------------
    async def heartbeat(
        self, task_id: int, *, lease: str, note: str | None = None, ttl: float | None = None
    ) -> Run:
        """Extend the lease of the task's live run."""
        lease_ttl = self.options.claim_ttl_seconds if ttl is None else ttl

        def run(tx: Tx) -> Run:
            active = store.check_lease(tx, task_id, lease)
            stamp = now()
            tx.execute(
                "UPDATE task_runs SET last_heartbeat_at = ?, expires_at = ? WHERE id = ?",
                (stamp, stamp + lease_ttl, active.id),
            )
            store.append_event(tx, task_id, "heartbeat",
                               {"note": note, "expires_at": stamp + lease_ttl}, run_id=active.id)
            row = tx.one("SELECT * FROM task_runs WHERE id = ?", (active.id,))
            assert row is not None
            return Run.from_row(row)

        return await self.db.write(run)

    async def complete(
        self,
        task_id: int,
        *,
        lease: str | None = None,
        result: str | None = None,
        summary: str | None = None,
        metadata: dict[str, Any] | None = None,
        artifacts: list[str] | tuple[str, ...] = (),
        by: str | None = None,
    ) -> Task:
        """Mark a task done and wake its children.

        With ``lease`` this is the worker finishing its own run; without, an operator closing any
        open task (a running task's lease then becomes stale). ``artifacts`` are stored in the
        task's metadata and in the ``completed`` event payload (S15); those inside the task's
        scratch workspace are first moved to its attachments directory, so the recorded paths
        outlive the workspace (see :mod:`kanban.board.artifacts`).
        """
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInput("metadata must be a JSON object")
        staged = StagedArtifacts(paths=[str(a) for a in artifacts])
        if staged.paths:
            staged = await asyncio.to_thread(
                stage_artifacts, staged.paths, scratch=self.workspaces_dir / str(task_id),
                attachments=self.attachments_path(task_id),
            )
        artifact_list = staged.paths

        def run(tx: Tx) -> Task:
            row = tx.one(
                "SELECT t.*, r.lease AS run_lease, r.status AS run_status FROM tasks t "
                "LEFT JOIN task_runs r ON r.id = t.current_run_id WHERE t.id = ?",
                (task_id,),
            )
            if row is None:
                raise TaskNotFound(task_id)
            task = Task.from_row(row)
            if (lease is not None and row["run_status"] == "active"
                    and secrets.compare_digest(str(row["run_lease"]), lease)):
                run_id = task.current_run_id  # the live run's own token: the common case
            else:
                run_id = _writer_run(tx, task, lease, "complete")
            # The lease is good: now (and only now) files may land in the task's attachments.
            staged.publish()
            merged = dict(task.metadata)
            merged.update(metadata or {})
            if artifact_list:
                merged["artifacts"] = list(dict.fromkeys([*task.artifacts, *artifact_list]))
            if run_id is not None:
                store.end_run(tx, run_id, "completed" if lease else "superseded")
            stamp = now()
            if not store.set_status(tx, task_id, task.status, "done", completed_at=stamp,
                                    result=result, summary=summary,
                                    metadata=store.dumps(merged), current_run_id=None,
                                    blocked_by=None, blocked_reason=None):
                raise Conflict(f"task {task_id} changed while completing; try again")
            store.append_event(tx, task_id, "completed", {
                "result": result, "summary": summary,
                "artifacts": merged.get("artifacts", []), "run_id": run_id,
                "by": "worker" if lease else (by or "operator"),
            }, run_id=run_id)
            children = store.child_ids(tx, task_id)
            store.gate_children(tx, task_id, children)
            return dataclasses.replace(
                task, status="done", completed_at=stamp, updated_at=stamp, result=result,
                summary=summary, metadata=merged, current_run_id=None, blocked_by=None,
                blocked_reason=None, parents=store.parent_ids(tx, task_id), children=children,
            )

        try:
            return await self.db.write(run)
        finally:
            staged.discard()

    async def block(
        self, task_id: int, reason: str, *, lease: str | None = None, by: str | None = None
    ) -> Task:
        """Block a task for a human. A worker (with its lease) blocks its own run; an operator
        may block any open task."""
        if not reason.strip():
            raise InvalidInput("blocking needs a reason")

        def run(tx: Tx) -> Task:
            task = store.load_task(tx, task_id)
            if task.status == "blocked" and lease is None:
                raise Conflict(f"task {task_id} is already blocked")
            run_id = _writer_run(tx, task, lease, "block")
            if run_id is not None:
                store.end_run(tx, run_id, "blocked" if lease else "superseded", error=reason)
            who = "worker" if lease else "human"
            store.set_status(tx, task_id, task.status, "blocked", blocked_by=who,
                             blocked_reason=reason, current_run_id=None)
            store.append_event(tx, task_id, "blocked", {"reason": reason, "by": by or who},
                               run_id=run_id)
            return store.load_task(tx, task_id, with_links=True)

        return await self.db.write(run)

    # ---- dispatcher bookkeeping -------------------------------------------------------------
    async def record_saved_artifacts(self, task_id: int, copied: dict[str, str]) -> None:
        """Point a done task's artifact list at the durable copies made when its workspace was
        cleaned up."""

        def run(tx: Tx) -> None:
            row = tx.one("SELECT metadata, status FROM tasks WHERE id = ?", (task_id,))
            if row is None or row["status"] != "done":
                return
            metadata = loads_json(row["metadata"], {})
            if not isinstance(metadata, dict):
                return
            current = metadata.get("artifacts")
            if isinstance(current, list):
                metadata["artifacts"] = [copied.get(str(a), str(a)) for a in current]
            tx.execute("UPDATE tasks SET metadata = ?, updated_at = ? WHERE id = ? "
                       "AND status = 'done'", (store.dumps(metadata), now(), task_id))
            store.append_event(tx, task_id, "artifacts_saved", {"artifacts": copied})

        await self.db.write(run)

    async def set_worker(
        self, run_id: int, *, pid: int, started_at: float | None, host: str | None = None
    ) -> None:
        """Record the worker process of a run (pid plus its start time, so a recycled pid is
        never mistaken for our worker)."""

        def run(tx: Tx) -> None:
            tx.execute(
                "UPDATE task_runs SET worker_pid = ?, worker_started_at = ?, "
                "host = COALESCE(?, host) WHERE id = ?",
                (pid, started_at, host, run_id),
            )
            row = tx.one("SELECT task_id FROM task_runs WHERE id = ?", (run_id,))
            if row is not None:
                store.append_event(tx, int(row[0]), "spawned", {"pid": pid}, run_id=run_id)

        await self.db.write(run)

    async def extend_claim(
        self, run_id: int, *, ttl: float | None = None, reason: str = "worker alive",
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """Push an expired claim's deadline out (its worker is alive; S22)."""
        lease_ttl = self.options.claim_ttl_seconds if ttl is None else ttl

        def run(tx: Tx) -> bool:
            row = tx.one("SELECT * FROM task_runs WHERE id = ? AND status = 'active'", (run_id,))
            if row is None:
                return False
            active = Run.from_row(row)
            expires = now() + lease_ttl
            tx.execute("UPDATE task_runs SET expires_at = ? WHERE id = ?", (expires, run_id))
            store.append_event(tx, active.task_id, "claim_extended", {
                "reason": reason, "previous_expires_at": active.expires_at,
                "expires_at": expires, **(payload or {}),
            }, run_id=run_id)
            return True

        return await self.db.write(run)

    async def reclaim(self, run_id: int, *, payload: dict[str, Any] | None = None) -> bool:
        """End a stale run and put its task back to ready (not counted as a failure)."""
        return await self._release(run_id, "reclaimed", "reclaimed", payload or {})

    async def requeue(self, run_id: int, *, reason: str, exit_code: int | None = None) -> bool:
        """End a run without counting a failure (e.g. exit 75, "rate limited, retry later")."""
        return await self._release(run_id, "requeued", "requeued",
                                   {"reason": reason, "exit_code": exit_code},
                                   exit_code=exit_code)

    async def _release(self, run_id: int, run_status: str, kind: str,
                       payload: dict[str, Any], exit_code: int | None = None) -> bool:
        def run(tx: Tx) -> bool:
            row = tx.one("SELECT * FROM task_runs WHERE id = ? AND status = 'active'", (run_id,))
            if row is None:
                return False
            active = Run.from_row(row)
            task = store.load_task(tx, active.task_id)
            store.end_run(tx, run_id, run_status, error=payload.get("reason"), exit_code=exit_code)
            if task.status == "running" and task.current_run_id == run_id:
                target = "todo" if store.unsatisfied_parents(tx, task.id) else "ready"
                store.set_status(tx, task.id, "running", target, current_run_id=None)
            store.append_event(tx, task.id, kind, payload, run_id=run_id)
            return True

        return await self.db.write(run)

    async def record_failure(
        self,
        task_id: int,
        *,
        run_id: int | None,
        kind: str,
        error: str,
        force_trip: bool = False,
        exit_code: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> FailureOutcome:
        """Count a spawn failure, crash, timeout or protocol violation against the task.

        The breaker trips at the task's ``max_retries`` (else the board's ``failure_limit``):
        the task is blocked with a ``gave_up`` event. ``force_trip`` trips at once (systemic
        crashes, S6). Protocol violations count on their own small budget and leave a comment.
        """
        if kind not in FAILURE_KINDS:
            raise InvalidInput(f"unknown failure kind {kind!r}; expected one of {FAILURE_KINDS}")

        def run(tx: Tx) -> FailureOutcome:
            task = store.load_task(tx, task_id)
            violation = kind == "protocol_violation"
            limit = (self.options.protocol_violation_limit if violation
                     else task.max_retries or self.options.failure_limit)
            if run_id is not None:
                if task.current_run_id != run_id or task.status != "running":
                    store.end_run(tx, run_id, kind, error=error, exit_code=exit_code)
                    return FailureOutcome(False, task.consecutive_failures, limit, False,
                                          task.status)
                store.end_run(tx, run_id, kind, error=error, exit_code=exit_code)
            elif task.status not in ("ready", "running"):
                return FailureOutcome(False, task.consecutive_failures, limit, False, task.status)
            failures = (task.protocol_violations if violation else task.consecutive_failures) + 1
            counter = "protocol_violations" if violation else "consecutive_failures"
            tripped = force_trip or failures >= limit
            target = "blocked" if tripped else (
                "todo" if store.unsatisfied_parents(tx, task_id) else "ready")
            fields: dict[str, Any] = {counter: failures, "last_failure_error": error,
                                      "current_run_id": None}
            if tripped:
                fields.update(blocked_by="breaker",
                              blocked_reason=f"gave up after {failures} {kind}: {error}")
            store.set_status(tx, task_id, task.status, target, **fields)
            store.append_event(tx, task_id, kind, {
                "error": error, "exit_code": exit_code, "failures": failures, "limit": limit,
                **(payload or {}),
            }, run_id=run_id)
            if violation:
                store.add_comment(tx, task_id, "dispatcher", (
                    "The worker exited successfully without calling `relayboard kanban complete`"
                    " or `block`, so its result was lost. "
                    f"({failures}/{limit} before the task is blocked.)"
                ), kind="system")
            if tripped:
                store.append_event(tx, task_id, "gave_up", {
                    "kind": kind, "failures": failures, "limit": limit, "error": error,
                    "forced": force_trip and failures < limit,
                }, run_id=run_id)
            return FailureOutcome(True, failures, limit, tripped, target)

        return await self.db.write(run)


def _writer_run(tx: Tx, task: Task, lease: str | None, verb: str) -> int | None:
    """Who may write: the live run's lease holder, or an operator (no lease) on an open task.
    Returns the run to end, if any."""
    if lease is not None:
        return store.check_lease(tx, task.id, lease).id
    if task.status in ("done", "archived"):
        raise Conflict(f"cannot {verb} task {task.id}: it is already {task.status}")
    return task.current_run_id
