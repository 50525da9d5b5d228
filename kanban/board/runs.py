"""Claims, leases and the outcome of a run: the worker-facing half of the :class:`Board` API.

A claim opens a run (``task_runs``) with a random lease token and an expiry. Worker writes
(complete, block, heartbeat, comment) must present that token; a run that ended or was reclaimed
can never finish its successor's work. An operator may
complete or block a task too, but must say so (``as_operator=True``), and a task with a live run
additionally needs ``force=True``: the run then ends ``superseded`` and the event records it.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import shutil
import socket
from collections.abc import Sequence
from typing import Any

from kanban.board.shared import BoardCore
from kanban.board.staging import Limits, StagedArtifacts, check_count, stage
from kanban.errors import (
    CapReached,
    Conflict,
    InvalidInput,
    LeaseError,
    NotClaimable,
    TaskNotFound,
)
from kanban.fsutil import inside
from kanban.models import Claim, Run, Task, loads_json
from kanban.storage import artifact_rows, store
from kanban.storage.tx import Tx
from kanban.timeutil import iso, now
from kanban.validation import (
    MAX_TEXT_BYTES,
    check_metadata,
    check_opt_text,
    check_text,
    check_ttl,
    in_int64,
)

HOSTNAME = socket.gethostname()


def _need_identity(task_id: int, verb: str) -> LeaseError:
    return LeaseError(
        f"{verb} needs the run's lease (inside a worker) or an operator override", task_id)


class RunsMixin(BoardCore):
    """Claims, leases, worker writes and the dispatcher's bookkeeping of live runs."""

    # ---- claiming ---------------------------------------------------------------------------
    async def claim(
        self, task_id: int, *, ttl: float | None = None, claimed_by: str | None = None,
        profile: str | None = None, max_running: int | None = None, may_create: bool = False,
    ) -> Claim:
        """Claim a ready task: the single enforcement point of the parent gate.

        A ready task with an unfinished parent is demoted to todo (committed) and refused; a
        task backing off after a requeue or a failure is refused until its ``not_before``.
        Exactly one of several concurrent claimers wins (compare-and-swap on the status).

        ``max_running`` is a board-wide concurrency cap: the claim is refused
        (``NotClaimable``, "max_spawn reached") when that many tasks already run. It is counted
        inside the claim's ``BEGIN IMMEDIATE`` transaction, so dispatchers in several processes
        can never overshoot it together.

        ``may_create`` records on the run that its worker may create tasks (the dispatcher sets
        it for the orchestrator profile): the run's rights live with the run, not with anything
        its worker can change.
        """
        lease_ttl = check_ttl(self.options.claim_ttl_seconds if ttl is None else ttl,
                              "claim ttl")
        if not in_int64(task_id):
            raise TaskNotFound(task_id)
        if max_running is not None and (isinstance(max_running, bool) or max_running < 0):
            raise InvalidInput(f"max_running must be a whole number >= 0, not {max_running!r}")

        def run(tx: Tx) -> Claim | NotClaimable:
            at = self.clock()
            # One read for the task and its unfinished parents: this is the hottest write path.
            # On PostgreSQL the task's row is locked, and a row another claimer holds is passed
            # over at once (SKIP LOCKED) rather than waited for.
            row = tx.one(
                "SELECT t.status, t.assignee, t.workspace_kind, t.workspace_path, t.not_before, "
                f"(SELECT {tx.group_concat('l.parent_id')} FROM task_links l JOIN tasks p "
                " ON p.id = l.parent_id WHERE l.child_id = t.id "
                " AND p.status NOT IN ('done', 'archived')) AS pending "
                "FROM tasks t WHERE t.id = ?" + tx.skip_locked,
                (task_id,),
            )
            if row is None:
                held = tx.one("SELECT status FROM tasks WHERE id = ?", (task_id,))
                if held is None:
                    raise TaskNotFound(task_id)
                return NotClaimable(task_id, str(held["status"]),
                                    "another claimer holds it right now")
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
            not_before = row["not_before"]
            if isinstance(not_before, int | float) and not_before > at:
                return NotClaimable(task_id, status, (
                    f"retry not before {iso(not_before)} (in {not_before - at:.1f}s; "
                    "it is backing off after a requeue or a failure)"))
            if max_running is not None:
                # Under the cap's lock (SQLite: the write lock) no other claimer can slip in
                # between this count and the insert.
                tx.lock("spawn-cap")
                running = tx.one("SELECT COUNT(*) FROM tasks WHERE status = 'running'")
                if running is not None and int(running[0]) >= max_running:
                    return CapReached(task_id, status, (
                        f"max_spawn reached ({int(running[0])} of {max_running} running)"))
            stamp = now()
            lease = secrets.token_urlsafe(24)
            workspace = self.workspace_path(task_id, row["workspace_kind"], row["workspace_path"])
            run_id = int(tx.one(
                "INSERT INTO task_runs (task_id, lease, status, claimed_by, profile, claimed_at, "
                "expires_at, host, workspace, may_create) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "RETURNING id",
                (task_id, lease, "active", claimed_by, profile or row["assignee"], stamp,
                 stamp + lease_ttl, HOSTNAME,
                 str(workspace) if workspace else None, 1 if may_create else 0),
            )[0])
            if not store.set_status(tx, task_id, "ready", "running", current_run_id=run_id,
                                    started_at=stamp, not_before=None):
                raise NotClaimable(task_id, status, "another claimer won")
            store.append_event(tx, task_id, "claimed", {
                "run_id": run_id, "claimed_by": claimed_by, "expires_at": stamp + lease_ttl,
            }, run_id=run_id)
            return Claim(task_id, run_id, lease, str(workspace) if workspace else None,
                         stamp + lease_ttl)

        # Not exclusive: claims on PostgreSQL run side by side, held apart by the row lock.
        outcome = await self.db.write(run, exclusive=False)
        if isinstance(outcome, NotClaimable):
            raise outcome
        return outcome

    async def ready_candidates(self, limit: int = 50, *,
                               host_labels: Sequence[str] | None = None) -> list[Task]:
        """Claimable tasks, higher priority first, then oldest (uses the status index).
        Tasks backing off (``not_before`` in the future) are left out. With ``host_labels``
        (a dispatcher's), only tasks without a host label or with one of those."""
        labels = list(dict.fromkeys(host_labels or ()))
        # Judged in the query: tasks meant for other hosts never crowd this one's candidates out.
        only_here = ("" if host_labels is None else "AND (host_label IS NULL" + (
            " OR host_label IN (" + ",".join("?" * len(labels)) + ")" if labels else "") + ") ")

        def run(tx: Tx) -> list[Task]:
            at = self.clock()
            rows = tx.all(
                "SELECT * FROM tasks WHERE status = 'ready' "
                "AND (not_before IS NULL OR NOT not_before > ?) " + only_here
                + "ORDER BY priority DESC, created_at, id LIMIT ?",
                (at, *labels, limit),
            )
            return [Task.from_row(r) for r in rows]

        return await self.db.read(run)

    async def next_wakeup(self) -> float | None:
        """The earliest future ``not_before`` among ready tasks (epoch seconds), or None: a
        dispatcher with nothing claimable now can sleep exactly until then."""

        def run(tx: Tx) -> float | None:
            at = self.clock()
            row = tx.one("SELECT MIN(not_before) FROM tasks WHERE status = 'ready' "
                         "AND not_before > ?", (at,))
            value = row[0] if row is not None else None
            return float(value) if isinstance(value, int | float) else None

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

    async def active_run(self, task_id: int, lease: str) -> Run:
        """The task's active run whose lease is ``lease``; a :class:`LeaseError` saying why when
        there is none (the run ended, was reclaimed, or the lease is another task's)."""

        return await self.db.read(lambda tx: store.check_lease(tx, task_id, lease))

    async def run_by_lease(self, task_id: int, lease: str) -> Run | None:
        """The task's run that holds (or held) ``lease``, whatever its status; None if none."""

        def run(tx: Tx) -> Run | None:
            row = tx.one("SELECT * FROM task_runs WHERE task_id = ? AND lease = ?",
                         (task_id, lease))
            return None if row is None else Run.from_row(row)

        return await self.db.read(run)

    async def get_run(self, run_id: int) -> Run:
        def run(tx: Tx) -> Run:
            row = (tx.one("SELECT * FROM task_runs WHERE id = ?", (run_id,))
                   if in_int64(run_id) else None)
            if row is None:
                raise InvalidInput(f"run {run_id} not found")
            return Run.from_row(row)

        return await self.db.read(run)

    # ---- worker writes ------------------------------------------------------------------------
    async def heartbeat(
        self, task_id: int, *, lease: str, note: str | None = None, ttl: float | None = None
    ) -> Run:
        """Extend the lease of the task's live run."""
        lease_ttl = check_ttl(self.options.claim_ttl_seconds if ttl is None else ttl,
                              "heartbeat ttl")
        note = check_opt_text(note, "note")
        if not in_int64(task_id):
            raise TaskNotFound(task_id)

        def run(tx: Tx) -> Run:
            active = store.check_lease(tx, task_id, lease)
            stamp = now()
            cur = tx.execute(
                "UPDATE task_runs SET last_heartbeat_at = ?, expires_at = ? "
                "WHERE id = ? AND status = 'active'",
                (stamp, stamp + lease_ttl, active.id),
            )
            if cur.rowcount != 1:  # ended by a concurrent writer (PostgreSQL) since the check
                store.check_lease(tx, task_id, lease)
                raise LeaseError(f"lease refused for task {task_id}: its run just ended",
                                 task_id, active.id)
            store.append_event(tx, task_id, "heartbeat",
                               {"note": note, "expires_at": stamp + lease_ttl}, run_id=active.id)
            row = tx.one("SELECT * FROM task_runs WHERE id = ?", (active.id,))
            assert row is not None
            return Run.from_row(row)

        # Touches only its own run's row: independent of the board's other writers.
        return await self.db.write(run, exclusive=False)

    async def complete(
        self,
        task_id: int,
        *,
        lease: str | None = None,
        as_operator: bool = False,
        force: bool = False,
        result: str | None = None,
        summary: str | None = None,
        metadata: dict[str, Any] | None = None,
        artifacts: list[str] | tuple[str, ...] = (),
        by: str | None = None,
    ) -> Task:
        """Mark a task done and wake its children.

        With ``lease`` this is the worker finishing its own run (its summary, result and
        metadata are also kept on the run). Without one the caller must be an operator
        (``as_operator=True``); a task with a live run then also needs ``force=True`` and the
        run ends ``superseded``. ``artifacts`` are stored in the task's metadata and in the
        ``completed`` event; those inside the task's scratch workspace are first copied to
        its attachments directory, all or nothing and within the board's per-completion limits,
        so the recorded paths outlive the workspace (see :mod:`kanban.board.staging`). A
        manually claimed run's scratch workspace is removed after the commit (the dispatcher
        cleans up after its own workers).
        """
        if lease is None and not as_operator:
            raise _need_identity(task_id, "complete")
        if not in_int64(task_id):
            raise TaskNotFound(task_id)
        result = check_opt_text(result, "result")
        summary = check_opt_text(summary, "summary")
        if metadata is not None:
            metadata = check_metadata(metadata)
        # A board several hosts serve keeps the staged files' bytes in the database (the
        # gateway that delivers them may run elsewhere): bounded, and refused before any write.
        keep_bytes = self.storage.shared
        limit = self.options.max_artifact_bytes
        limits = Limits(max_count=self.options.max_artifacts_per_completion,
                        max_total_bytes=self.options.max_completion_bytes,
                        max_file_bytes=limit if keep_bytes else None)
        check_count(len(artifacts), limits)  # before even the paths are checked
        staged = StagedArtifacts(paths=[check_text(str(a), "artifact path", limit=4096)
                                        for a in artifacts])
        if staged.paths:
            staged = await stage(staged.paths, scratch=self.workspaces_dir / str(task_id),
                                 attachments=self.attachments_path(task_id), track=self.db.track,
                                 limits=limits)
        artifact_list = staged.paths

        def run(tx: Tx) -> Task:
            # The task's row is locked for the whole completion (PostgreSQL): a reclaim, a
            # block or a second completion of it waits, then finds it done.
            row = tx.one(
                "SELECT t.*, r.lease AS run_lease, r.status AS run_status, "
                "r.worker_pid AS run_worker_pid FROM tasks t "
                "LEFT JOIN task_runs r ON r.id = t.current_run_id WHERE t.id = ?"
                + tx.for_update_of("t"),
                (task_id,),
            )
            if row is None:
                raise TaskNotFound(task_id)
            task = Task.from_row(row)
            forced = False
            if lease is not None:
                if (row["run_status"] == "active"
                        and store.same_token(row["run_lease"], lease)):
                    run_id: int | None = task.current_run_id  # the common case
                else:
                    run_id = store.check_lease(tx, task_id, lease).id
                manual = row["run_worker_pid"] is None
            else:
                if task.status in ("done", "archived"):
                    raise Conflict(f"cannot complete task {task_id}: it is already {task.status}")
                run_id = store.operator_override(tx, task, "complete it as operator",
                                                 force=force)
                forced = run_id is not None
                manual = False  # no run of its own: any workspace is the dispatcher's to sweep
            # The caller is entitled: now (and only now) files may land in the attachments.
            staged.publish()
            if keep_bytes:
                artifact_rows.store_files(tx, task_id, self.attachments_path(task_id), staged.files,
                                  limit=limit)
            merged = dict(task.metadata)
            merged.update(metadata or {})
            if artifact_list:
                merged["artifacts"] = list(dict.fromkeys([*task.artifacts, *artifact_list]))
            if run_id is not None:
                if lease is not None:
                    said = dict(metadata or {})
                    if artifact_list:
                        said["artifacts"] = artifact_list
                    store.end_run(tx, run_id, "completed", summary=summary, result=result,
                                  metadata=said or None)
                else:
                    store.end_run(tx, run_id, "superseded", error="completed by an operator")
            stamp = now()
            if not store.set_status(tx, task_id, task.status, "done", completed_at=stamp,
                                    result=result, summary=summary,
                                    metadata=store.dumps(merged), current_run_id=None,
                                    blocked_by=None, blocked_reason=None, not_before=None,
                                    consecutive_requeues=0):
                raise Conflict(f"task {task_id} changed while completing; try again")
            store.append_event(tx, task_id, "completed", {
                "result": result, "summary": summary,
                "artifacts": merged.get("artifacts", []), "run_id": run_id,
                "by": "worker" if lease is not None else (by or "operator"),
                **({"forced": True} if forced else {}),
            }, run_id=run_id)
            children = store.child_ids(tx, task_id)
            store.gate_children(tx, task_id, children)
            if manual and task.workspace_kind == "scratch":
                tx.after_commit(functools.partial(self._remove_scratch, task_id),
                                in_thread=True)
            return dataclasses.replace(
                task, status="done", completed_at=stamp, updated_at=stamp, result=result,
                summary=summary, metadata=merged, current_run_id=None, blocked_by=None,
                blocked_reason=None, not_before=None, consecutive_requeues=0,
                parents=store.parent_ids(tx, task_id), children=children,
            )

        try:
            # Not under the board's write lock: completions on several hosts run side by side,
            # kept apart by row locks (the task, then its children in id order; see
            # store.gate, store.derive_status and store.insert_link).
            return await self.db.write(run, exclusive=False)
        finally:
            staged.discard()

    def _remove_scratch(self, task_id: int) -> None:
        """Remove a done task's scratch workspace (its artifacts were staged already)."""
        path = self.paths.scratch_path(task_id)
        if path.is_symlink():
            path.unlink(missing_ok=True)  # never follow a link a worker left in its place
        elif path.is_dir() and inside(path, self.workspaces_dir):
            shutil.rmtree(path, ignore_errors=True)

    async def block(
        self, task_id: int, reason: str, *, lease: str | None = None, as_operator: bool = False,
        force: bool = False, by: str | None = None,
    ) -> Task:
        """Block a task for a human. A worker (with its lease) blocks its own run; an operator
        (``as_operator=True``) may block any open task, one with a live run only with
        ``force=True`` (the run ends ``superseded``)."""
        if lease is None and not as_operator:
            raise _need_identity(task_id, "block")
        check_text(reason, "block reason", limit=MAX_TEXT_BYTES)
        if not reason.strip():
            raise InvalidInput("blocking needs a reason")
        if not in_int64(task_id):
            raise TaskNotFound(task_id)

        def run(tx: Tx) -> Task:
            task = store.load_task(tx, task_id)
            forced = False
            if lease is not None:
                own = store.check_lease(tx, task_id, lease).id
                store.end_run(tx, own, "blocked", error=reason, summary=reason)
                run_id: int | None = own
            else:
                if task.status in ("done", "archived"):
                    raise Conflict(f"cannot block task {task_id}: it is already {task.status}")
                if task.status == "blocked":
                    raise Conflict(f"task {task_id} is already blocked")
                run_id = store.operator_override(tx, task, "block it as operator", force=force)
                if run_id is not None:
                    forced = True
                    store.end_run(tx, run_id, "superseded", error=reason)
            who = "worker" if lease is not None else "human"
            store.set_status(tx, task_id, task.status, "blocked", blocked_by=who,
                             blocked_reason=reason, current_run_id=None, not_before=None)
            payload: dict[str, Any] = {"reason": reason, "by": by or who}
            if forced:
                payload["forced"] = True
            store.append_event(tx, task_id, "blocked", payload, run_id=run_id)
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
        """Push an expired claim's deadline out (its worker is alive)."""
        lease_ttl = check_ttl(self.options.claim_ttl_seconds if ttl is None else ttl,
                              "claim ttl")

        def run(tx: Tx) -> bool:
            active = store.active_run(tx, run_id)
            if active is None:
                return False
            expires = now() + lease_ttl
            tx.execute("UPDATE task_runs SET expires_at = ? WHERE id = ?", (expires, run_id))
            store.append_event(tx, active.task_id, "claim_extended", {
                "reason": reason, "previous_expires_at": active.expires_at,
                "expires_at": expires, **(payload or {}),
            }, run_id=run_id)
            return True

        return await self.db.write(run)
