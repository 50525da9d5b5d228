"""Every verb of ``relayboard kanban`` as one request dataclass: its arguments, declared once.

The CLI (:mod:`gateway.cli.kanban`) and the chat parser (:mod:`gateway.commands.parse`) both build
their click commands from these classes; :func:`gateway.commands.execute.execute` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from gateway.commands.declare import (
    BIG_INT,
    JSON_OBJECT,
    TASK_ID,
    WAIT_SECONDS,
    BoundedInt,
    FiniteFloat,
    Request,
    argument,
    option,
    verb,
)
from kanban import STATUSES

# A lease longer than a year is a typo (or an attempt to hold a task forever).
MAX_TTL_SECONDS = 366 * 86400.0


@verb("create", help="Create a task.")
@dataclass(frozen=True)
class CreateRequest(Request):
    title: str = argument(join=True, required=True, metavar="TITLE")
    body: str | None = option("--body", help="Task description.")
    assignee: str | None = option("--assignee", help="Profile that should work on it.")
    parents: tuple[int, ...] = option("--parent", type=TASK_ID, multiple=True,
                                      help="Parent task id (repeatable).")
    triage: bool = option("--triage", is_flag=True,
                          help="A rough idea to be decomposed or specified first.")
    initial_status: str = option(
        "--initial-status", type=click.Choice(["running", "blocked"]), default="running",
        show_default=True,
        help="running: derive from parents (triage/todo/ready); blocked: park for review.")
    priority: int = option("--priority", type=BIG_INT, default=0, show_default=True,
                           help="Higher runs first.")
    max_runtime: int | None = option("--max-runtime", type=BIG_INT,
                                     help="Seconds per attempt; 0 times out at once.")
    max_retries: int | None = option(
        "--max-retries", type=BIG_INT,
        help="Failures tolerated before the breaker blocks it (default: board limit).")
    model: str | None = option("--model", help="Model override passed to the worker as -m.")
    skills: tuple[str, ...] = option("--skill", multiple=True,
                                     help="Skill for the worker (repeatable).")
    workspace: str = option("--workspace", default="scratch", show_default=True,
                            help="scratch | dir:/abs/path | worktree[:PATH]")
    idempotency_key: str | None = option(
        "--idempotency-key",
        help="Return the existing live task with this key instead of creating another.")
    host: str | None = option(
        "--host", metavar="LABEL",
        help="Only a dispatcher with this host label (kanban.host_labels) runs it.")
    start_at: str | None = option(
        "--at", metavar="TIME",
        help="Start no earlier than TIME, in kanban.timezone: 2026-12-08T09:00, "
             "'tomorrow 09:00', 09:00 (the next one), or with an offset (…+01:00).")
    start_in: str | None = option("--in", metavar="DURATION",
                                  help="Start no earlier than this from now: 2h, 30m, 1h30m, 2d.")
    every: str | None = option(
        "--every", metavar="WHEN",
        help="Make a recurring schedule instead of one task: 'daily 09:00', 'weekdays 09:00', "
             "'hourly', 'every 15 minutes', or cron '0 9 * * MON-FRI' (in kanban.timezone).")
    catch_up: str | None = option(
        "--catch-up", type=click.Choice(["none", "last", "all"]),
        help="With --every: occurrences missed while the gateway was down — none, last "
             "(default: only the latest runs) or all.")
    overlap: bool = option("--overlap", is_flag=True,
                           help="With --every: run an occurrence even while the previous one "
                                "is unfinished (skipped otherwise).")
    # A host path: the CLI's own (chat passes the files that came with the message instead).
    attachments: tuple[str, ...] = option(
        "--attach", multiple=True, chat=False, metavar="PATH",
        help="A file that comes with the task, copied to its attachments (repeatable; links "
             "and hard-linked files are refused).")


@verb("list", help="List tasks: priority (high first), then age (oldest first).")
@dataclass(frozen=True)
class ListRequest(Request):
    status: str | None = option("--status", type=click.Choice(STATUSES))
    assignee: str | None = option("--assignee")
    archived: bool = option("--archived", is_flag=True, help="Include archived tasks.")
    all: bool = option("--all", is_flag=True,
                       help="Show every row (the table stops after 100 otherwise).")
    # Not a parameter: a renderer that shows no bodies (the human table, chat) sets it False.
    with_bodies: bool = True


@verb("show", help="Show a task with its parents, children, comments, runs and recent events.")
@dataclass(frozen=True)
class ShowRequest(Request):
    task_id: int = argument(type=TASK_ID)


@verb("context", help="Print the worker context (markdown) of a task.")
@dataclass(frozen=True)
class ContextRequest(Request):
    task_id: int = argument(type=TASK_ID)


@verb("stats", help="Counts by status and assignee.")
@dataclass(frozen=True)
class StatsRequest(Request):
    pass


@verb("link", help="Make CHILD wait for PARENT.")
@dataclass(frozen=True)
class LinkRequest(Request):
    parent: int = argument(type=TASK_ID)
    child: int = argument(type=TASK_ID)


@verb("unlink", help="Remove the PARENT → CHILD dependency (the child is re-evaluated at once).")
@dataclass(frozen=True)
class UnlinkRequest(Request):
    parent: int = argument(type=TASK_ID)
    child: int = argument(type=TASK_ID)


@verb("assign", help="Assign a task to PROFILE (or 'none').")
@dataclass(frozen=True)
class AssignRequest(Request):
    task_id: int = argument(type=TASK_ID)
    profile: str = argument()
    force: bool = option("--force", is_flag=True,
                         help="Reassign even while a run is active (the run's lease goes stale).")


@verb("set-model", help="Set the model override of a task (or 'none').")
@dataclass(frozen=True)
class SetModelRequest(Request):
    task_id: int = argument(type=TASK_ID)
    model: str = argument()


@verb("set-priority", help="Set the priority of a task (higher runs first).")
@dataclass(frozen=True)
class SetPriorityRequest(Request):
    task_id: int = argument(type=TASK_ID)
    priority: int = argument(type=BIG_INT)


@verb("claim", help="Claim a ready task by hand (manual lanes): prints the run id, lease token "
                    "and workspace.")
@dataclass(frozen=True)
class ClaimRequest(Request):
    task_id: int = argument(type=TASK_ID)
    ttl: float | None = option("--ttl", type=FiniteFloat(MAX_TTL_SECONDS),
                               help="Lease seconds (default claim_ttl_seconds).")


@verb("complete", help="Mark a task done (inside a worker: its own task, by lease).")
@dataclass(frozen=True)
class CompleteRequest(Request):
    task_id: int | None = argument(type=TASK_ID, default=None)
    result: str | None = option("--result", help="What the task produced.")
    summary: str | None = option("--summary", help="A short summary for people and children.")
    metadata: str | None = option("--metadata", type=JSON_OBJECT,
                                  help="A JSON object merged into the task metadata.")
    artifacts: tuple[str, ...] = option(
        "--artifact", multiple=True, chat=False,
        help="Path of a produced file (repeatable); delivered with the completion.")
    lease: str | None = option("--lease", help="Lease token of a manual claim.")
    force: bool = option("--force", is_flag=True,
                         help="Complete even while a run is active (its lease goes stale).")


@verb("block", help="Block a task for a human: 'block ID REASON' (inside a worker: "
                    "'block REASON').")
@dataclass(frozen=True)
class BlockRequest(Request):
    words: tuple[str, ...] = argument(nargs=-1, required=True, metavar="[ID] REASON")
    lease: str | None = option("--lease", help="Lease token of a manual claim.")
    force: bool = option("--force", is_flag=True,
                         help="Block even while a run is active (its lease goes stale).")


@verb("unblock", help="Unblock tasks: back to ready (or todo while parents are unfinished), "
                      "counters reset.")
@dataclass(frozen=True)
class UnblockRequest(Request):
    task_ids: tuple[int, ...] = argument(type=TASK_ID, nargs=-1, required=True)


@verb("comment", help="Comment on a task: 'comment ID TEXT' (inside a worker: 'comment TEXT').")
@dataclass(frozen=True)
class CommentRequest(Request):
    words: tuple[str, ...] = argument(nargs=-1, required=True, metavar="[ID] TEXT")
    author: str | None = option("--author", chat=False, help="Comment author (default: $USER).")
    lease: str | None = option("--lease", help="Lease token of a manual claim.")


@verb("heartbeat", help="Extend the lease of a running task (inside a worker: its own).")
@dataclass(frozen=True)
class HeartbeatRequest(Request):
    task_id: int | None = argument(type=TASK_ID, default=None)
    note: str | None = option("--note", help="What the worker is doing now.")
    lease: str | None = option("--lease", help="Lease token of a manual claim.")


@verb("archive", help="Archive tasks (archived parents satisfy their children); --rm deletes "
                      "archived ones.")
@dataclass(frozen=True)
class ArchiveRequest(Request):
    task_ids: tuple[int, ...] = argument(type=TASK_ID, nargs=-1, required=True)
    remove: bool = option("--rm", is_flag=True,
                          help="Permanently delete already-archived tasks and everything they own.")
    force: bool = option("--force", is_flag=True,
                         help="Archive even while a run is active (its lease goes stale).")


@verb("recompute", help="Repair sweep: re-evaluate every waiting task against its parents.")
@dataclass(frozen=True)
class RecomputeRequest(Request):
    pass


@verb("events", help="Events by cursor (ids increase); --follow streams (one JSON object per "
                     "line with --json).")
@dataclass(frozen=True)
class EventsRequest(Request):
    task_id: int | None = argument(type=TASK_ID, default=None)
    since: int = option("--since", type=BoundedInt(0), default=0,
                        show_default=True, help="Only events after this id.")
    limit: int = option("--limit", type=BoundedInt(1, 100_000), default=500,
                        show_default=True)
    follow: bool = option("--follow", is_flag=True, chat=False,
                          help="Keep printing new events as they happen.")
    timeout: float | None = option("--timeout", type=WAIT_SECONDS,
                                   chat=False, help="With --follow: stop after this many seconds.")


@verb("subscribe", help="Post this task's progress and result to a chat thread.")
@dataclass(frozen=True)
class SubscribeRequest(Request):
    task_id: int = argument(type=TASK_ID)
    platform: str = option("--platform", required=True, help="slack, discord, telegram, web …")
    chat: str = option("--chat", required=True, help="Chat / channel id.")
    thread: str | None = option("--thread", help="Thread / topic id.")
    silent: bool = option("--silent", is_flag=True,
                          help="Deliver without a notification (Telegram, Discord).")


@verb("unsubscribe", help="Stop posting this task to a chat thread.")
@dataclass(frozen=True)
class UnsubscribeRequest(Request):
    task_id: int = argument(type=TASK_ID)
    platform: str = option("--platform", required=True, help="slack, discord, telegram, web …")
    chat: str = option("--chat", required=True, help="Chat / channel id.")
    thread: str | None = option("--thread", help="Thread / topic id.")


@verb("subscriptions", help="List subscriptions (of one task, or all).")
@dataclass(frozen=True)
class SubscriptionsRequest(Request):
    task_id: int | None = argument(type=TASK_ID, default=None)


@verb("boards", "list", help="List boards.")
@dataclass(frozen=True)
class BoardsListRequest(Request):
    pass


@verb("boards", "create", help="Create a board.")
@dataclass(frozen=True)
class BoardsCreateRequest(Request):
    slug: str = argument()
    name: str | None = option("--name", help="Display name.")


@verb("boards", "remove", help="Archive a board (or delete it with --delete).")
@dataclass(frozen=True)
class BoardsRemoveRequest(Request):
    slug: str = argument()
    delete: bool = option("--delete", is_flag=True, help="Delete instead of archiving.")
    force: bool = option("--force", is_flag=True,
                         help="Stop the workers of its running tasks and release their runs "
                         "first (refused otherwise).")


@verb("boards", "migrate",
      help="Move a board from its SQLite file to PostgreSQL: copy every table, verify the "
           "counts, keep the file.")
@dataclass(frozen=True)
class BoardsMigrateRequest(Request):
    slug: str = argument()
    to: str = option("--to", type=click.Choice(["postgresql"]), required=True,
                     help="The storage to move to.")
    # The NAME of a variable, never the DSN itself: a command line shows in `ps`.
    dsn_env: str | None = option(
        "--dsn-env", chat=False, metavar="VAR",
        help="Variable holding the target DSN (default: storage.dsn_env when config's "
             "storage.backend is postgresql).")
    replace: bool = option("--replace", is_flag=True,
                           help="Overwrite a PostgreSQL board that already holds data.")


@verb("boards", "backup",
      help="Copy a SQLite board, while it is in use, with its attachments and logs into one "
           "archive (.tar.gz).")
@dataclass(frozen=True)
class BoardsBackupRequest(Request):
    slug: str = argument()
    # A host path: only the operator's own command line names one.
    to: str | None = option("--to", chat=False, metavar="FILE",
                            help="Archive to write (default: <home>/backups/SLUG-DATE.tar.gz); "
                                 "an existing file is never overwritten.")


@verb("boards", "restore",
      help="Restore a board from a `boards backup` archive (refused while a gateway runs on "
           "this home).")
@dataclass(frozen=True)
class BoardsRestoreRequest(Request):
    file: str = argument(metavar="FILE")
    as_slug: str | None = option("--as", metavar="SLUG",
                                 help="Restore under this slug (default: the backed-up one).")
    replace: bool = option("--replace", is_flag=True,
                           help="The board exists: archive it under boards/_archived/ and put "
                                "the backup in its place.")


@verb("gc", help="Apply kanban.retention now: compact old events, prune delivered "
                 "notifications, remove files of long-archived tasks; prints what it freed.")
@dataclass(frozen=True)
class GcRequest(Request):
    dry_run: bool = option("--dry-run", is_flag=True,
                           help="Count what would go, change nothing.")
    all_boards: bool = option("--all", is_flag=True, help="Every board of the home.")
    vacuum: bool = option("--vacuum", is_flag=True,
                          help="SQLite: then rewrite the file to give the freed space back to "
                               "the disk (blocks writers while it runs).")


@verb("decompose", help="Decompose triage task ID (or --all) into assigned sub-tasks.")
@dataclass(frozen=True)
class DecomposeRequest(Request):
    task_id: int | None = argument(type=TASK_ID, default=None)
    all: bool = option("--all", is_flag=True, help="Every triage task on the board.")


class ScheduleId(click.ParamType[int]):
    """A schedule's id: its number, alone or after an ``S`` in either case."""

    name = "schedule"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        digits = text[1:] if text[:1] in ("S", "s") else text
        if not digits.isdigit() or len(digits) > 18:
            self.fail(f"{text[:20]!r} is not a schedule id (like S3)", param, ctx)
        return int(digits)


SCHEDULE_ID = ScheduleId()


@verb("schedules", help="List recurring schedules with their next run.")
@dataclass(frozen=True)
class SchedulesRequest(Request):
    pass


@verb("schedule", "show", help="Show a schedule: its template, recurrence and next run.")
@dataclass(frozen=True)
class ScheduleShowRequest(Request):
    schedule_id: int = argument(type=SCHEDULE_ID, metavar="ID")


@verb("schedule", "pause", help="Pause a schedule: no occurrence is made until it resumes.")
@dataclass(frozen=True)
class SchedulePauseRequest(Request):
    schedule_id: int = argument(type=SCHEDULE_ID, metavar="ID")


@verb("schedule", "resume", help="Resume a paused schedule from its next time after now.")
@dataclass(frozen=True)
class ScheduleResumeRequest(Request):
    schedule_id: int = argument(type=SCHEDULE_ID, metavar="ID")


@verb("schedule", "remove", help="Remove a schedule (the tasks it made stay).")
@dataclass(frozen=True)
class ScheduleRemoveRequest(Request):
    schedule_id: int = argument(type=SCHEDULE_ID, metavar="ID")


@verb("schedule", "subscribe",
      help="Post every later occurrence's progress and result to a chat thread too.")
@dataclass(frozen=True)
class ScheduleSubscribeRequest(Request):
    schedule_id: int = argument(type=SCHEDULE_ID, metavar="ID")
    platform: str = option("--platform", required=True, help="slack, discord, telegram, web …")
    chat: str = option("--chat", required=True, help="Chat / channel id.")
    thread: str | None = option("--thread", help="Thread / topic id.")
    silent: bool = option("--silent", is_flag=True,
                          help="Deliver without a notification (Telegram, Discord).")


@verb("schedule", "unsubscribe", help="Stop posting a schedule's occurrences to a chat thread.")
@dataclass(frozen=True)
class ScheduleUnsubscribeRequest(Request):
    schedule_id: int = argument(type=SCHEDULE_ID, metavar="ID")
    platform: str = option("--platform", required=True, help="slack, discord, telegram, web …")
    chat: str = option("--chat", required=True, help="Chat / channel id.")
    thread: str | None = option("--thread", help="Thread / topic id.")


@verb("run-now", help="Start a waiting task at once (ID), or make one occurrence of a schedule "
                      "now (S3).")
@dataclass(frozen=True)
class RunNowRequest(Request):
    target: str = argument(metavar="ID")
