"""Typed replies of the command layer. Each has ``to_json()`` (what ``relayboard kanban …
--json`` prints) and ``text()`` (short chat text, untrusted text escaped). Human terminal output
(rich tables) is the CLI's business: :mod:`gateway.cli.render`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Plain dataclasses (eq=False): twenty of them are created at start-up of every CLI call, and
# generated __eq__/__hash__/frozen setters cost measurable milliseconds there.
from typing import TYPE_CHECKING, Any

from gateway.commands.escaping import one_line, printable
from kanban import (
    BoardInfo,
    Claim,
    Comment,
    Event,
    Run,
    Schedule,
    Subscription,
    Task,
    TaskDetail,
)
from kanban.timespec import describe, local_text, zone

if TYPE_CHECKING:
    from kanban.backup import BackupInfo, RestoreInfo

    # Imports psycopg: loaded only by the verb that moves a board.
    from kanban.move_to_postgres import BoardMigration
    from kanban.retention import GcReport

CHAT_LIST_ROWS = 20


def task_json(task: Task) -> dict[str, Any]:
    """``Task.to_dict()`` without the deep copy of ``asdict`` (a list of 10,000 tasks is
    serialised right away; nothing mutates these values)."""
    data = dict(vars(task))
    if data.get("corrupt") is None:
        data.pop("corrupt", None)
    return data


def _who(task: Task) -> str:
    return f" · @{printable(task.assignee)}" if task.assignee else ""


def when(stamp: float, tz: str) -> str:
    """``Mon 8 Dec 09:00`` in the zone ``tz`` (the operator's, or a schedule's); the year
    only when it is not this one."""
    return local_text(stamp, zone(tz), time.time())


def _waits(task: Task, tz: str | None) -> str:
    until = task.waiting_until
    if until is None or task.status not in ("ready", "todo") or tz is None:
        return ""
    return f" · starts {when(until, tz)} ({tz})"


def task_line(task: Task, tz: str | None = None) -> str:
    """``#12 Quarterly report · ready · @reporter`` — one task in chat (with ``tz``, a task
    waiting for its start time says when: ``· starts Tue 8 Dec 09:00 (Europe/Berlin)``)."""
    return (f"#{task.id} {printable(one_line(task.title, 120))} · {task.status}{_who(task)}"
            f"{_waits(task, tz)}")


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    return {**schedule.to_dict(), "label": describe(schedule.cron)}


def schedule_line(schedule: Schedule) -> str:
    """A schedule's line: its ref, title, recurrence with its zone, next run and assignee (the
    shape is pinned by tests/gateway/test_schedule_verbs.py)."""
    state = (f"next {when(schedule.next_run_at, schedule.timezone)}"
             if schedule.state == "active" and schedule.next_run_at is not None
             else schedule.state)
    who = f" · @{printable(schedule.assignee)}" if schedule.assignee else ""
    return (f"{schedule.ref} {printable(one_line(schedule.title, 120))} · "
            f"{printable(describe(schedule.cron))} ({schedule.timezone}) · {state}{who}")


@dataclass(eq=False)
class TaskCreated:
    task: Task
    created: bool  # False: an idempotency key returned the existing task
    tz: str | None = None  # the zone a start time is shown in

    def to_json(self) -> Any:
        data = {"id": self.task.id, "status": self.task.status, "created": self.created}
        if self.task.waiting_until is not None:
            data["not_before"] = self.task.waiting_until
        return data

    def text(self) -> str:
        verb = "Created" if self.created else "Existing"
        return f"{verb} {task_line(self.task, self.tz)}"


@dataclass(eq=False)
class ScheduleCreated:
    """``create --every``: the schedule, and whether this chat thread will get the results."""

    schedule: Schedule
    here: bool = False

    def to_json(self) -> Any:
        return schedule_json(self.schedule)

    def text(self) -> str:
        s = self.schedule
        first = (f" · first run {when(s.next_run_at, s.timezone)}"
                 if s.next_run_at is not None else "")
        return (f"Scheduled #{s.ref} {printable(one_line(s.title, 120))} · "
                f"{printable(describe(s.cron))} ({s.timezone}){first}"
                + (" · results will be posted here" if self.here else ""))


@dataclass(eq=False)
class ScheduleList:
    board: str
    schedules: list[Schedule]

    def to_json(self) -> Any:
        return [schedule_json(s) for s in self.schedules]

    def text(self) -> str:
        if not self.schedules:
            return f"No schedules on board {self.board}."
        return "\n".join(schedule_line(s) for s in self.schedules)


@dataclass(eq=False)
class ScheduleChanged:
    """One schedule shown, paused, resumed or removed."""

    schedule: Schedule
    message: str

    def to_json(self) -> Any:
        return schedule_json(self.schedule)

    def text(self) -> str:
        return printable(self.message)


@dataclass(eq=False)
class TaskList:
    board: str
    tasks: list[Task]
    tz: str | None = None

    def to_json(self) -> Any:
        return [task_json(t) for t in self.tasks]

    def text(self) -> str:
        if not self.tasks:
            return f"No tasks on board {self.board}."
        lines = [task_line(t, self.tz) for t in self.tasks[:CHAT_LIST_ROWS]]
        if len(self.tasks) > CHAT_LIST_ROWS:
            lines.append(f"… {len(self.tasks) - CHAT_LIST_ROWS} more")
        return "\n".join(lines)


@dataclass(eq=False)
class TaskShown:
    detail: TaskDetail
    tz: str | None = None

    def to_json(self) -> Any:
        data = task_json(self.detail.task)
        data["comments"] = [c.to_dict() for c in self.detail.comments]
        data["runs"] = [r.to_dict() for r in self.detail.runs]
        data["events"] = [e.to_dict() for e in self.detail.events]
        return data

    def text(self) -> str:
        t = self.detail.task
        lines = [task_line(t, self.tz)]
        if t.parents or t.children:
            lines.append("parents: " + (", ".join(f"#{p}" for p in t.parents) or "-")
                         + " · children: " + (", ".join(f"#{c}" for c in t.children) or "-"))
        if t.status == "blocked" and t.blocked_reason:
            lines.append(f"blocked: {printable(one_line(t.blocked_reason))}")
        if t.summary or t.result:
            lines.append(f"result: {printable(one_line(t.summary or t.result or ''))}")
        if t.body:
            lines.append(printable(one_line(t.body)))
        if self.detail.comments:
            c = self.detail.comments[-1]
            lines.append(f"last comment ({printable(c.author)}): {printable(one_line(c.body))}")
        return "\n".join(lines)


@dataclass(eq=False)
class TaskContext:
    task_id: int
    markdown: str

    def to_json(self) -> Any:
        return {"task_id": self.task_id, "context": self.markdown}

    def text(self) -> str:
        return printable(self.markdown, multiline=True)


@dataclass(eq=False)
class BoardStats:
    data: dict[str, Any]

    def to_json(self) -> Any:
        return self.data

    def text(self) -> str:
        counts = ", ".join(f"{s} {n}" for s, n in sorted(self.data["by_status"].items()))
        return (f"Board {self.data['board']}: {self.data['total']} tasks"
                + (f" ({counts})" if counts else "")
                + f", {self.data['active_runs']} running")


@dataclass(eq=False)
class TaskUpdated:
    """One task changed (link, unlink, assign, set-model, complete, block)."""

    task: Task
    message: str

    def to_json(self) -> Any:
        return task_json(self.task)

    def text(self) -> str:
        return printable(self.message)


@dataclass(eq=False)
class TasksChanged:
    """Several tasks changed (unblock, archive)."""

    verb: str  # "unblocked" | "archived"
    tasks: list[Task]

    def to_json(self) -> Any:
        return [task_json(t) for t in self.tasks]

    def text(self) -> str:
        if self.verb == "unblocked":
            return "\n".join(f"Task {t.id} unblocked → {t.status}" for t in self.tasks)
        return "Archived " + ", ".join(str(t.id) for t in self.tasks)


@dataclass(eq=False)
class TasksDeleted:
    ids: list[int]

    def to_json(self) -> Any:
        return {"deleted": self.ids}

    def text(self) -> str:
        return "Deleted " + ", ".join(map(str, self.ids))


@dataclass(eq=False)
class Claimed:
    claim: Claim

    def to_json(self) -> Any:
        c = self.claim
        return {"run_id": c.run_id, "lease": c.lease, "workspace": c.workspace,
                "expires_at": c.expires_at}

    def text(self) -> str:
        c = self.claim
        return f"Claimed task {c.task_id}: run {c.run_id}\nlease: {c.lease}"


@dataclass(eq=False)
class CommentAdded:
    comment: Comment

    def to_json(self) -> Any:
        return self.comment.to_dict()

    def text(self) -> str:
        return f"Comment {self.comment.id} added to task {self.comment.task_id}"


@dataclass(eq=False)
class LeaseExtended:
    run: Run

    def to_json(self) -> Any:
        return self.run.to_dict()

    def text(self) -> str:
        return f"Task {self.run.task_id} lease extended to {self.run.expires_at}"


@dataclass(eq=False)
class Recomputed:
    counts: dict[str, int]

    def to_json(self) -> Any:
        return self.counts

    def text(self) -> str:
        return f"Promoted {self.counts['promoted']}, demoted {self.counts['demoted']}"


@dataclass(eq=False)
class EventList:
    events: list[Event]

    def to_json(self) -> Any:
        return [e.to_dict() for e in self.events]

    def text(self) -> str:
        if not self.events:
            return "No events."
        shown = self.events[-CHAT_LIST_ROWS:]
        lines = [f"{e.id} {'#' + str(e.task_id) if e.task_id is not None else 'board'} {e.kind}"
                 for e in shown]
        if len(self.events) > len(shown):
            lines.insert(0, f"… {len(self.events) - len(shown)} earlier")
        return printable("\n".join(lines), multiline=True)


@dataclass(eq=False)
class Subscribed:
    subscription: Subscription

    def to_json(self) -> Any:
        return self.subscription.to_dict()

    def text(self) -> str:
        s = self.subscription
        where = f"{s.platform}:{s.chat}" + (f"/{s.thread}" if s.thread else "")
        return printable(f"Subscribed {where} to task {s.task_id}")


@dataclass(eq=False)
class Unsubscribed:
    task_id: int

    def to_json(self) -> Any:
        return {"task_id": self.task_id, "removed": True}

    def text(self) -> str:
        return f"Unsubscribed from task {self.task_id}"


@dataclass(eq=False)
class SubscriptionList:
    subscriptions: list[Subscription]

    def to_json(self) -> Any:
        return [s.to_dict() for s in self.subscriptions]

    def text(self) -> str:
        if not self.subscriptions:
            return "No subscriptions."
        return printable("\n".join(
            f"#{s.task_id} → {s.platform}:{s.chat}" + (f"/{s.thread}" if s.thread else "")
            for s in self.subscriptions), multiline=True)


@dataclass(eq=False)
class BoardList:
    boards: list[BoardInfo]

    def to_json(self) -> Any:
        return [b.to_dict() for b in self.boards]

    def text(self) -> str:
        return printable(", ".join(b.slug if b.name == b.slug else f"{b.slug} ({b.name})"
                                   for b in self.boards))


@dataclass(eq=False)
class BoardCreated:
    info: BoardInfo

    def to_json(self) -> Any:
        return self.info.to_dict()

    def text(self) -> str:
        return f"Created board {self.info.slug}"


@dataclass(eq=False)
class BoardRemoved:
    slug: str
    deleted: bool
    archived_as: str | None
    released: list[int] = field(default_factory=list)  # tasks whose runs --force released

    def to_json(self) -> Any:
        return {"slug": self.slug, "deleted": self.deleted, "archived_as": self.archived_as,
                "released": self.released}

    def text(self) -> str:
        done = f"{'Deleted' if self.deleted else 'Archived'} board {self.slug}"
        if self.released:
            done += (f" (stopped and released the runs of task(s) "
                     f"{', '.join(map(str, self.released))})")
        return done


@dataclass(eq=False)
class BoardMigrated:
    """A board copied to PostgreSQL. ``configured``: this home's config already points at that
    database (otherwise the user still has to switch ``storage:``)."""

    migration: BoardMigration
    configured: bool
    dsn_env: str | None = None

    def to_json(self) -> Any:
        return {**self.migration.to_dict(), "configured": self.configured}

    def text(self) -> str:
        m = self.migration
        width = max(len(t.table) for t in m.tables) if m.tables else 5
        lines = [f"Moved board {m.slug} to {m.target} (schema {m.schema}) in "
                 f"{m.seconds:.1f} s; every table verified:",
                 f"  {'table':<{width}}  {'sqlite':>8}  {'postgres':>8}  {'max id':>8}"]
        for t in m.tables:
            top = "-" if t.target_max_id is None else str(t.target_max_id)
            lines.append(f"  {t.table:<{width}}  {t.source_rows:>8}  {t.target_rows:>8}  "
                         f"{top:>8}")
        if m.replaced_rows:
            lines.append(f"Replaced {m.replaced_rows} row(s) the PostgreSQL board held.")
        if m.converted:
            lines.append(f"Converted {len(m.converted)} loosely typed value(s):")
            lines.extend(f"  {line}" for line in m.converted[:20])
            if len(m.converted) > 20:
                lines.append(f"  … and {len(m.converted) - 20} more (see --json)")
        folder = m.source.parent
        lines.append(f"Attachments, logs and workspaces stay in {folder} ({m.attachment_files} "
                     "attachment file(s)); the PostgreSQL board uses the same folder on this "
                     f"host. {m.stored_files} attachment file(s) were also stored in the "
                     "database, for gateways on other hosts.")
        for line in m.unstored[:10]:
            lines.append(f"  kept on this host only: {line}")
        if not self.configured:
            via = f" with storage.dsn_env: {self.dsn_env}" if self.dsn_env else ""
            lines.append("This home still uses SQLite: set storage.backend: postgresql"
                         f"{via} in config.yaml (on every host) to serve the board from "
                         "PostgreSQL.")
        lines.append(f"The SQLite file is kept, untouched: {m.source}. Once you are satisfied, "
                     f"remove it: rm -f {m.source} {m.source}-wal {m.source}-shm")
        return printable("\n".join(lines), multiline=True)


def size_text(n: int) -> str:
    """``12.3 MB`` — bytes for people (powers of 1000, as ``du --si`` and file managers)."""
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} bytes"  # pragma: no cover


@dataclass(eq=False)
class BoardBackedUp:
    info: BackupInfo

    def to_json(self) -> Any:
        return self.info.to_dict()

    def text(self) -> str:
        i = self.info
        return printable(f"Backed up board {i.slug} ({i.tasks} task(s), {i.files} file(s)) to "
                         f"{i.path} ({size_text(i.archive_bytes)})")


@dataclass(eq=False)
class BoardRestored:
    info: RestoreInfo

    def to_json(self) -> Any:
        return self.info.to_dict()

    def text(self) -> str:
        i = self.info
        line = f"Restored board {i.slug} ({i.tasks} task(s), {i.files} file(s)) from {i.source}"
        if i.replaced is not None:
            line += f"; the board it replaced is kept in {i.replaced}"
        return printable(line)


@dataclass(eq=False)
class GcDone:
    reports: list[GcReport]

    def to_json(self) -> Any:
        return [r.to_dict() for r in self.reports]

    def text(self) -> str:
        lines = []
        for r in self.reports:
            verb = "would free" if r.dry_run else "freed"
            parts = [f"{r.events} event(s)", f"{r.outbox} delivered notification(s)",
                     f"{r.files} file(s) ({size_text(r.file_bytes)}) of "
                     f"{r.tasks_with_files} archived task(s)"]
            if r.artifact_rows:
                parts.append(f"{r.artifact_rows} stored artifact(s)")
            parts.append(f"{r.staging} stale staging folder(s)")
            line = f"board {r.board}: {verb} {r.rows} row(s): " + ", ".join(parts)
            if r.db_bytes:
                line += f"; {size_text(r.db_bytes)} of the database is free for new rows"
            if r.file_size_before is not None and r.file_size_after is not None:
                line += (f"; vacuum: file {size_text(r.file_size_before)} → "
                         f"{size_text(r.file_size_after)}")
            if r.skipped:
                line += f" (kept forever by kanban.retention: {', '.join(r.skipped)})"
            lines.append(line)
        return printable("\n".join(lines), multiline=True)


@dataclass(eq=False)
class Decomposed:
    """Outcomes of the decomposer (``kanban.agents.decomposer.Outcome``, kept untyped here so
    that importing the layer does not import the LLM client)."""

    outcomes: list[Any]
    single: bool
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def to_json(self) -> Any:
        if self.single:
            return self.outcomes[0].to_dict()
        return [o.to_dict() for o in self.outcomes]

    def text(self) -> str:
        return printable("\n".join(self.lines) or "no triage tasks", multiline=True)


@dataclass(eq=False)
class Relayed:
    """A result another process ran the command for (a worker's request, answered by the
    worker API): its JSON and its text, as that process rendered them."""

    data: Any
    message: str

    def to_json(self) -> Any:
        return self.data

    def text(self) -> str:
        return self.message


Result = (TaskCreated | ScheduleCreated | ScheduleList | ScheduleChanged | TaskList | TaskShown
          | TaskContext | BoardStats | TaskUpdated
          | TasksChanged | TasksDeleted | Claimed | CommentAdded | LeaseExtended | Recomputed
          | EventList | Subscribed | Unsubscribed | SubscriptionList | BoardList | BoardCreated
          | BoardRemoved | BoardMigrated | BoardBackedUp | BoardRestored | GcDone | Decomposed
          | Relayed)


# Results a terminal shows as tables or detail views rather than as their chat text.
TABULAR = (TaskList, ScheduleList, TaskShown, TaskContext, BoardStats, EventList,
           SubscriptionList, BoardList, Claimed)


def render_text(result: Result) -> str:
    """Short chat text for any result (the chat router and the web chat use this)."""
    return result.text()
