"""Tasks: create, read, list, edit fields, unblock, archive, delete, comment, recompute.

Each public coroutine is one transaction (``BEGIN IMMEDIATE`` with compare-and-swap updates), so
the daemon and a CLI in another process stay correct against each other. Every state change
appends a ``task_events`` row inside the same transaction; side effects run after COMMIT.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanban.board.attachments import MAX_INPUTS, StagedInputs, stage_inputs_async
from kanban.board.shared import BoardCore
from kanban.board.worker_context import as_recorded, build_context
from kanban.errors import Conflict, InvalidInput, StorageError, TaskNotFound
from kanban.fsutil import inside
from kanban.models import Comment, Event, Run, Task, TaskDetail
from kanban.storage import artifact_rows, store
from kanban.storage.tx import Tx
from kanban.timeutil import now
from kanban.validation import (
    MAX_TITLE,
    check_int64,
    check_max_retries,
    check_max_runtime,
    check_model,
    check_name,
    check_opt_text,
    check_priority,
    check_skills,
    check_text,
    check_title,
    check_workspace_dir,
    in_int64,
    parse_workspace,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Created:
    task: Task
    created: bool  # False when an idempotency key returned an existing task


@dataclass(frozen=True)
class TaskTemplate:
    """The checked fields a task is made from (by ``create_task``, or by each occurrence of a
    schedule)."""

    title: str
    body: str
    assignee: str | None
    priority: int
    max_runtime_seconds: int | None
    max_retries: int | None
    model_override: str | None
    skills: list[str]
    workspace_kind: str
    workspace_path: str | None
    host_label: str | None


def check_template(
    board_root: Path, *, title: str, body: str, assignee: str | None, priority: int,
    max_runtime_seconds: int | None, max_retries: int | None, model_override: str | None,
    skills: Sequence[str], workspace: str, host_label: str | None,
) -> TaskTemplate:
    """Check a task's fields (one-line :class:`InvalidInput` for the first bad one)."""
    title = check_title(title)
    check_text(body, "body")
    for value, what in ((assignee, "assignee"), (model_override, "model")):
        check_opt_text(value, what, limit=MAX_TITLE)
    check_priority(priority)
    check_max_runtime(max_runtime_seconds)
    check_max_retries(max_retries)
    model_override = check_model(model_override)
    if host_label is not None:
        check_name(host_label, "host label")
    skill_list = check_skills(list(skills))
    ws_kind, ws_path = parse_workspace(workspace)
    if ws_path is not None and (ws_kind == "dir" or Path(ws_path).is_absolute()):
        # <home>/boards/<slug>/kanban.db: the home is two levels above the board's folder
        # (a board file opened outside a home protects its own folder).
        home = board_root.parent.parent if board_root.parent.name == "boards" else board_root
        check_workspace_dir(ws_path, home=home)
    return TaskTemplate(title, body, assignee, priority, max_runtime_seconds, max_retries,
                        model_override, skill_list, ws_kind, ws_path, host_label)


class TasksMixin(BoardCore):
    """Creating, reading, editing and retiring tasks; comments; the repair sweep."""

    async def create_task(
        self,
        title: str,
        *,
        body: str = "",
        assignee: str | None = None,
        parents: list[int] | tuple[int, ...] = (),
        triage: bool = False,
        initial_status: str = "running",
        priority: int = 0,
        max_runtime_seconds: int | None = None,
        max_retries: int | None = None,
        model_override: str | None = None,
        skills: list[str] | tuple[str, ...] = (),
        workspace: str = "scratch",
        idempotency_key: str | None = None,
        created_by: str | None = None,
        attachments: Sequence[str | Path] = (),
        host_label: str | None = None,
        not_before: float | None = None,
    ) -> Created:
        """Create a task; its status is derived from its parents.

        ``initial_status="running"`` (the default) means "derive": triage with ``triage=True``,
        todo while any parent is unfinished, else ready. ``"blocked"`` parks it in blocked with a
        ``blocked`` event for a person to review.

        ``attachments`` are files that come with the task (a CSV attached in chat, say). They
        are copied (never through a link; hard-linked files refused) before the transaction and
        put in ``attachments/<id>/`` inside it, so whoever sees the task sees its files; their
        durable paths are recorded as ``metadata["inputs"]`` and in the ``created`` event. When
        an idempotency key returns an existing task, nothing is attached to it.

        ``host_label``: only a dispatcher configured with this label (``kanban.host_labels``)
        spawns the task — say, the host its ``dir:`` workspace is on. None: any dispatcher.

        ``not_before`` (epoch seconds; ``--at``/``--in``): the task is not claimable before
        then; it waits as ready (or todo) with that time, and ``unblock``/``run-now`` start it
        at once.
        """
        fields = check_template(
            self.root, title=title, body=body, assignee=assignee, priority=priority,
            max_runtime_seconds=max_runtime_seconds, max_retries=max_retries,
            model_override=model_override, skills=skills, workspace=workspace,
            host_label=host_label)
        title, model_override, skill_list = fields.title, fields.model_override, fields.skills
        ws_kind, ws_path = fields.workspace_kind, fields.workspace_path
        for value, what in ((idempotency_key, "idempotency key"), (created_by, "created_by")):
            check_opt_text(value, what, limit=MAX_TITLE)
        if not_before is not None and not math.isfinite(not_before):
            raise InvalidInput("a task's start time must be a finite number of seconds")
        if initial_status not in ("running", "blocked"):
            raise InvalidInput(
                f"initial status must be running or blocked (got {initial_status!r})"
            )
        parent_list = list(dict.fromkeys(check_int64(p, "parent id") for p in parents))
        if idempotency_key is not None and not idempotency_key.strip():
            raise InvalidInput("idempotency key must not be empty")
        sources = [check_text(str(a), "attachment path", limit=4096) for a in attachments]
        if len(sources) > MAX_INPUTS:
            raise InvalidInput(f"{len(sources)} attachments; the limit is {MAX_INPUTS}")
        staged = StagedInputs(names=[])
        if sources:
            staged = await stage_inputs_async(sources, attachments=self.attachments_dir,
                                              track=self.db.track)

        def run(tx: Tx) -> Created:
            store.check_parents_exist(tx, parent_list)
            status = store.derive_status(tx, parent_list, triage=triage)
            blocked = initial_status == "blocked"
            stamp = now()
            # ON CONFLICT DO NOTHING passes over every unique index (the idempotency key's too).
            inserted = tx.one(
                "INSERT INTO tasks (title, body, status, assignee, priority, created_at, "
                "updated_at, created_by, max_runtime_seconds, max_retries, model_override, "
                "skills, workspace_kind, workspace_path, idempotency_key, blocked_by, "
                "blocked_reason, host_label, not_before) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT DO NOTHING RETURNING id",
                (
                    title, body, "blocked" if blocked else status, assignee, priority,
                    stamp, stamp, created_by, max_runtime_seconds, max_retries,
                    model_override, store.dumps(skill_list), ws_kind, ws_path,
                    idempotency_key, "human" if blocked else None,
                    "created blocked for review" if blocked else None, host_label,
                    not_before,
                ),
            )
            if inserted is None:
                # The partial unique index found a live task with this key: return it.
                row = tx.one(
                    "SELECT id FROM tasks WHERE idempotency_key = ? AND status != 'archived'",
                    (idempotency_key,),
                )
                if row is None:
                    raise StorageError("a unique index refused the new task")
                return Created(store.load_task(tx, int(row[0]), with_links=True), False)
            task_id = int(inserted[0])
            for parent in parent_list:
                store.insert_link(tx, parent, task_id)
            inputs = staged.paths_in(self.attachments_path(task_id))
            if inputs:
                tx.execute("UPDATE tasks SET metadata = ? WHERE id = ?",
                           (store.dumps({"inputs": inputs}), task_id))
            store.append_event(tx, task_id, "created", {
                "title": title, "status": "blocked" if blocked else status, "assignee": assignee,
                "parents": parent_list, "created_by": created_by,
                **({"inputs": inputs} if inputs else {}),
                **({"not_before": not_before} if not_before is not None else {}),
            })
            if blocked:
                store.append_event(tx, task_id, "blocked",
                                   {"reason": "created blocked for review", "by": "human"})
            created = Created(store.load_task(tx, task_id, with_links=True), True)
            # Last: only storing the bytes (a shared board keeps them in the database, for a
            # worker on another host) can fail after the files are in place, and then the
            # write rolls back and the caller takes the folder away again (unpublish).
            staged.publish(self.attachments_path(task_id))
            if self.storage.shared and staged.names:
                artifact_rows.store_files(tx, task_id, self.attachments_path(task_id), staged.names,
                                  limit=self.options.max_artifact_bytes, inputs=True)
            return created

        try:
            return await self.db.write(run)
        except asyncio.CancelledError:
            raise  # the write may still have committed: its files stay with it
        except Exception:
            # Rolled back (or the commit failed): the folder belongs to no task.
            await asyncio.to_thread(staged.unpublish)
            raise
        finally:
            staged.discard()

    async def get_task(self, task_id: int) -> Task:
        return await self.db.read(lambda tx: store.load_task(tx, task_id, with_links=True))

    async def show_task(self, task_id: int, *, event_limit: int = 50) -> TaskDetail:
        def run(tx: Tx) -> TaskDetail:
            task = store.load_task(tx, task_id, with_links=True)
            comments = [Comment.from_row(r) for r in tx.all(
                "SELECT * FROM task_comments WHERE task_id = ? ORDER BY id", (task_id,))]
            runs = [Run.from_row(r) for r in tx.all(
                "SELECT * FROM task_runs WHERE task_id = ? ORDER BY id", (task_id,))]
            events = [Event.from_row(r) for r in reversed(tx.all(
                "SELECT * FROM task_events WHERE task_id = ? ORDER BY id DESC LIMIT ?",
                (task_id, event_limit)))]
            return TaskDetail(task, comments, runs, events)

        return await self.db.read(run)

    async def list_tasks(
        self,
        *,
        status: str | None = None,
        assignee: str | None = None,
        include_archived: bool = False,
        limit: int | None = None,
        with_body: bool = True,
    ) -> list[Task]:
        """Tasks by priority (high first), then age (oldest first). Corrupt rows still appear.

        ``with_body=False`` leaves the body column unread (``Task.body`` is then ""): a body may
        be up to 1 MB, and a board view or a table never shows it."""
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        elif not include_archived:
            clauses.append("status != 'archived'")
        if assignee is not None:
            clauses.append("assignee = ?")
            params.append(assignee)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = f"FROM tasks {where} ORDER BY priority DESC, created_at, id"
        if limit is not None:
            order += f" LIMIT {int(limit)}"

        def run(tx: Tx) -> list[Task]:
            columns = "*"
            if not with_body:
                # Named from the table itself (one cheap catalog read), so a column added by a
                # later migration is never silently left out.
                columns = ", ".join(f'"{name}"' for name in tx.columns("tasks")
                                    if name != "body")
            tasks = [Task.from_row(r) for r in tx.all(f"SELECT {columns} {order}", params)]
            by_id = {t.id: t for t in tasks}
            ids = list(by_id)
            # Links of the listed tasks only, in chunks that stay under SQLite's variable limit.
            links: set[tuple[int, int]] = set()
            for start in range(0, len(ids), 400):
                chunk = ids[start:start + 400]
                marks = ",".join("?" * len(chunk))
                links.update((int(p), int(c)) for p, c in tx.all(
                    "SELECT parent_id, child_id FROM task_links "
                    f"WHERE child_id IN ({marks}) OR parent_id IN ({marks})",
                    [*chunk, *chunk],
                ))
            for parent, child in sorted(links):
                if child in by_id:
                    by_id[child].parents.append(parent)
                if parent in by_id:
                    by_id[parent].children.append(child)
            return tasks

        return await self.db.read(run)

    # ---- fields -----------------------------------------------------------------------------
    async def assign(self, task_id: int, profile: str | None, *, force: bool = False) -> Task:
        """Give a task to ``profile`` (None: nobody). A task with a live run is refused — its
        worker would go on under the old profile — unless ``force``, which releases the run
        (the task goes back to ready, or todo while parents are unfinished)."""
        check_opt_text(profile, "assignee", limit=MAX_TITLE)
        if not in_int64(task_id):
            raise TaskNotFound(task_id)

        def run(tx: Tx) -> Task:
            task = store.load_task(tx, task_id)
            if task.status == "archived":
                raise Conflict(f"task {task_id} is archived")
            run_id = store.operator_override(
                tx, task, "reassign it (its run is released)", force=force)
            payload: dict[str, Any] = {"assignee": profile, "previous": task.assignee}
            # A back-off ends with a new profile; a time the task was scheduled for stays.
            fields: dict[str, Any] = {"assignee": profile}
            if task.waiting_until is None:
                fields["not_before"] = None
            if run_id is not None:
                store.end_run(tx, run_id, "released", error=f"reassigned to {profile}")
                target = "todo" if store.unsatisfied_parents(tx, task_id) else "ready"
                if not store.set_status(tx, task_id, task.status, target, current_run_id=None,
                                        **fields):
                    raise Conflict(f"task {task_id} changed while reassigning; try again")
                payload.update(forced=True, released_run=run_id, to=target)
            else:
                assignments = ", ".join(f"{column} = ?" for column in fields)
                tx.execute(f"UPDATE tasks SET {assignments}, updated_at = ? WHERE id = ?",
                           (*fields.values(), now(), task_id))
            store.append_event(tx, task_id, "assigned", payload, run_id=run_id)
            return store.load_task(tx, task_id, with_links=True)

        return await self.db.write(run)

    async def set_model(self, task_id: int, model: str | None) -> Task:
        check_opt_text(model, "model", limit=MAX_TITLE)
        model = check_model(model)
        return await self._set_field(task_id, "model_override", model, "model_set")

    async def set_priority(self, task_id: int, priority: int) -> Task:
        check_priority(priority)
        return await self._set_field(task_id, "priority", priority, "priority_set")

    async def _set_field(self, task_id: int, column: str, value: Any, kind: str) -> Task:
        def run(tx: Tx) -> Task:
            task = store.load_task(tx, task_id)
            if task.status == "archived":
                raise Conflict(f"task {task_id} is archived")
            tx.execute(f"UPDATE tasks SET {column} = ?, updated_at = ? WHERE id = ?",
                       (value, now(), task_id))
            store.append_event(tx, task_id, kind, {column: value})
            return store.load_task(tx, task_id, with_links=True)

        return await self.db.write(run)

    # ---- human lifecycle --------------------------------------------------------------------
    async def unblock(self, task_ids: list[int]) -> list[Task]:
        """blocked → ready or todo (re-gated on parents); failure counters reset. A ready or
        todo task waiting for its start time (``--at``/``--in``) or a back-off loses the wait:
        it may run at once."""

        unique = list(dict.fromkeys(task_ids))

        def run(tx: Tx) -> list[Task]:
            out = []
            for task_id in unique:
                task = store.load_task(tx, task_id)
                if task.status in ("ready", "todo") and task.not_before is not None:
                    tx.execute("UPDATE tasks SET not_before = NULL, consecutive_requeues = 0, "
                               "updated_at = ? WHERE id = ? AND status = ?",
                               (now(), task_id, task.status))
                    store.append_event(tx, task_id, "started_now",
                                       {"was_waiting_until": task.not_before})
                    out.append(store.load_task(tx, task_id, with_links=True))
                    continue
                if task.status != "blocked":
                    raise Conflict(f"task {task_id} is {task.status}, not blocked")
                target = "todo" if store.unsatisfied_parents(tx, task_id) else "ready"
                store.set_status(tx, task_id, "blocked", target, blocked_by=None,
                                 blocked_reason=None, consecutive_failures=0,
                                 last_failure_error=None, protocol_violations=0,
                                 not_before=None, consecutive_requeues=0)
                store.append_event(tx, task_id, "unblocked", {"to": target})
                out.append(store.load_task(tx, task_id, with_links=True))
            return out

        return await self.db.write(run)

    async def archive(self, task_ids: list[int], *, force: bool = False) -> list[Task]:
        """Archive tasks (all or none). Archived parents satisfy their children. A task
        with a live run is refused unless ``force``: its run is then cancelled and its lease
        becomes stale."""

        unique = list(dict.fromkeys(task_ids))

        def run(tx: Tx) -> list[Task]:
            out = []
            for task_id in unique:
                task = store.load_task(tx, task_id)
                if task.status == "archived":
                    out.append(task)
                    continue
                run_id = store.operator_override(tx, task, "archive it", force=force)
                if run_id is not None:
                    store.end_run(tx, run_id, "cancelled", error="task archived")
                store.set_status(tx, task_id, task.status, "archived", current_run_id=None,
                                 not_before=None)
                store.append_event(tx, task_id, "archived", {
                    "from": task.status, **({"forced": True} if run_id is not None else {}),
                }, run_id=run_id)
                store.gate_children(tx, task_id)
                out.append(store.load_task(tx, task_id, with_links=True))
            return out

        return await self.db.write(run)

    async def delete_archived(self, task_ids: list[int]) -> list[int]:
        """Permanently delete archived tasks with their links, comments, events, runs,
        subscriptions and attachment files. Any non-archived id refuses the whole call."""

        unique = list(dict.fromkeys(task_ids))

        def run(tx: Tx) -> list[int]:
            not_archived = []
            for task_id in unique:
                task = store.load_task(tx, task_id)
                if task.status != "archived":
                    not_archived.append(f"{task_id} ({task.status})")
            if not_archived:
                raise Conflict(
                    "only archived tasks can be deleted; archive these first: "
                    + ", ".join(not_archived)
                )
            for task_id in unique:
                tx.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
                store.append_event(tx, None, "deleted", {"task_id": task_id})
                tx.after_commit(functools.partial(self._remove_task_files, task_id),
                                in_thread=True)
            return unique

        return await self.db.write(run)

    def _remove_task_files(self, task_id: int) -> None:
        for path in (self.attachments_path(task_id), self.workspaces_dir / str(task_id)):
            if path.is_dir() and inside(path, self.root):
                shutil.rmtree(path, ignore_errors=True)
        self.log_path(task_id).unlink(missing_ok=True)

    async def comment(
        self, task_id: int, text: str, *, author: str, lease: str | None = None
    ) -> Comment:
        """Add a comment. With a lease it is the worker speaking, and the lease must be live."""
        check_text(text, "comment")
        check_text(author, "author", limit=MAX_TITLE)
        if not text.strip():
            raise InvalidInput("a comment needs some text")

        def run(tx: Tx) -> Comment:
            store.load_task(tx, task_id)
            kind = "human"
            who = author
            if lease is not None:
                active = store.check_lease(tx, task_id, lease)
                kind = "worker"
                who = active.profile or active.claimed_by or author
            comment_id = store.add_comment(tx, task_id, who, text, kind=kind)
            row = tx.one("SELECT * FROM task_comments WHERE id = ?", (comment_id,))
            assert row is not None
            return Comment.from_row(row)

        return await self.db.write(run)

    async def recompute(self) -> dict[str, int]:
        """Full repair sweep over todo and ready tasks against their parents. Not on any hot
        path. It never lifts a block: a blocked task waits for a person (or, if its worker
        blocked it, for a parent to finish; see :func:`kanban.storage.store.gate`)."""

        def run(tx: Tx) -> dict[str, int]:
            counts = {"promoted": 0, "demoted": 0}
            for row in tx.all("SELECT id FROM tasks WHERE status IN ('todo','ready')"):
                new = store.gate(tx, int(row[0]))
                if new == "ready":
                    counts["promoted"] += 1
                elif new == "todo":
                    counts["demoted"] += 1
            return counts

        return await self.db.write(run)

    async def context(self, task_id: int) -> str:
        """The worker context markdown for a task (see :mod:`kanban.board.worker_context`)."""
        # On a shared board the files it names are this host's copies (localise_for_worker).
        relocate = self.local_path_of if self.storage.shared else as_recorded
        return await self.db.read(lambda tx: build_context(tx, task_id, relocate))
