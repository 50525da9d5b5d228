"""``relayboard kanban …``: every kernel verb of ARCHITECTURE section 5.

Inside a worker (the §6 environment is present) ``complete``, ``block``, ``heartbeat`` and
``comment`` default to the worker's own task and present its lease token; a worker may not
complete, block or heartbeat another task. Outside a worker an operator may complete, block or
archive any task by id.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from gateway.cli import render
from gateway.cli.context import AppContext, app_of, board_call, emit_json, json_option
from kanban.board import Board
from kanban.errors import InvalidInput, KanbanError
from kanban.models import STATUSES, Claim


class _UsageLine(click.ClickException):
    """A usage error shown as the CLI's one ``error: …`` line (exit 2, click's usage code)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# click < 8.2 has no NoArgsIsHelpError; an unmatched placeholder keeps the except clause valid.
_NoArgsIsHelp: type[BaseException] = getattr(click.exceptions, "NoArgsIsHelpError",
                                             type("_NeverRaised", (Exception,), {}))


class _KanbanGroup(click.Group):
    """Turns click's multi-line usage errors of every kanban verb into one ``error:`` line, like
    kernel errors (ARCHITECTURE section 5)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _NoArgsIsHelp:
            raise
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            message = " ".join(exc.format_message().split())
            raise _UsageLine(f"{message} (see `{where} --help`)") from exc


@click.group(cls=_KanbanGroup)
@click.option("--board", "board_slug", default=None,
              help="Board slug (default: the worker's board, else kanban.default_board).")
@click.pass_context
def kanban(ctx: click.Context, board_slug: str | None) -> None:
    """Work with the kanban board."""
    app: AppContext = app_of(ctx)
    ctx.meta["board_slug"] = app.board_slug(board_slug)


def _none(value: str) -> str | None:
    return None if value.strip().lower() == "none" else value


# ---- create / read ---------------------------------------------------------------------------

@kanban.command()
@click.argument("title")
@click.option("--body", default=None, help="Task description.")
@click.option("--body-file", type=click.Path(dir_okay=False), default=None,
              help="Read the description from a file ('-' for stdin).")
@click.option("--assignee", default=None, help="Profile that should work on it.")
@click.option("--parent", "parents", type=int, multiple=True, help="Parent task id (repeatable).")
@click.option("--triage", is_flag=True, help="A rough idea to be decomposed or specified first.")
@click.option("--initial-status", type=click.Choice(["running", "blocked"]), default="running",
              show_default=True,
              help="running: derive from parents (triage/todo/ready); blocked: park for review.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--max-runtime", type=int, default=None,
              help="Seconds per attempt; 0 times out at once.")
@click.option("--max-retries", type=int, default=None,
              help="Failures tolerated before the breaker blocks it (default: board limit).")
@click.option("--model", default=None, help="Model override passed to the worker as -m.")
@click.option("--skill", "skills", multiple=True, help="Skill for the worker (repeatable).")
@click.option("--workspace", default="scratch", show_default=True,
              help="scratch | dir:/abs/path | worktree[:PATH]")
@click.option("--idempotency-key", default=None,
              help="Return the existing live task with this key instead of creating another.")
@json_option
@click.pass_context
def create(ctx: click.Context, title: str, body: str | None, body_file: str | None,
           assignee: str | None, parents: tuple[int, ...], triage: bool, initial_status: str,
           priority: int, max_runtime: int | None, max_retries: int | None, model: str | None,
           skills: tuple[str, ...], workspace: str, idempotency_key: str | None,
           as_json: bool) -> None:
    """Create a task."""
    if body is not None and body_file is not None:
        raise InvalidInput("give --body or --body-file, not both")
    if body_file is not None:
        try:
            # click.open_file reads stdin for "-" (click.get_text_stream is deprecated in 8.5).
            with click.open_file(body_file, encoding="utf-8") as stream:
                text = stream.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read --body-file: {exc}") from exc
        body = text
    app = app_of(ctx)
    who = app.worker.profile if app.worker else app.environ.get("USER")

    async def go(board: Board) -> Any:
        return await board.create_task(
            title, body=body or "", assignee=assignee, parents=list(parents), triage=triage,
            initial_status=initial_status, priority=priority, max_runtime_seconds=max_runtime,
            max_retries=max_retries, model_override=model, skills=list(skills),
            workspace=workspace, idempotency_key=idempotency_key, created_by=who,
        )

    created = board_call(ctx, go)
    if as_json:
        emit_json({"id": created.task.id, "status": created.task.status,
                   "created": created.created})
    else:
        verb = "Created" if created.created else "Existing"
        click.echo(f"{verb} task {created.task.id} ({created.task.status}): {created.task.title}")


@kanban.command(name="list")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--assignee", default=None)
@click.option("--archived", is_flag=True, help="Include archived tasks.")
@json_option
@click.pass_context
def list_(ctx: click.Context, status: str | None, assignee: str | None, archived: bool,
          as_json: bool) -> None:
    """List tasks: priority (high first), then age (oldest first)."""
    tasks = board_call(ctx, lambda b: b.list_tasks(status=status, assignee=assignee,
                                                   include_archived=archived))
    if as_json:
        emit_json([t.to_dict() for t in tasks])
    else:
        render.task_table(tasks, str(ctx.meta["board_slug"]))


@kanban.command()
@click.argument("task_id", type=int)
@json_option
@click.pass_context
def show(ctx: click.Context, task_id: int, as_json: bool) -> None:
    """Show a task with its parents, children, comments, runs and recent events."""
    detail = board_call(ctx, lambda b: b.show_task(task_id))
    if as_json:
        emit_json(detail.to_dict())
    else:
        render.task_detail(detail)


@kanban.command()
@click.argument("task_id", type=int)
@json_option
@click.pass_context
def context(ctx: click.Context, task_id: int, as_json: bool) -> None:
    """Print the worker context (markdown) of a task."""
    text = board_call(ctx, lambda b: b.context(task_id))
    if as_json:
        emit_json({"task_id": task_id, "context": text})
    else:
        click.echo(text, nl=False)


@kanban.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts by status and assignee."""
    data = board_call(ctx, lambda b: b.stats())
    if as_json:
        emit_json(data)
    else:
        render.stats(data)


# ---- graph and fields ------------------------------------------------------------------------

def _task_out(task_dict: dict[str, Any], message: str, as_json: bool) -> None:
    if as_json:
        emit_json(task_dict)
    else:
        click.echo(message)


@kanban.command()
@click.argument("parent", type=int)
@click.argument("child", type=int)
@json_option
@click.pass_context
def link(ctx: click.Context, parent: int, child: int, as_json: bool) -> None:
    """Make CHILD wait for PARENT."""
    task = board_call(ctx, lambda b: b.link(parent, child))
    _task_out(task.to_dict(), f"Linked {parent} → {child}; task {child} is {task.status}", as_json)


@kanban.command()
@click.argument("parent", type=int)
@click.argument("child", type=int)
@json_option
@click.pass_context
def unlink(ctx: click.Context, parent: int, child: int, as_json: bool) -> None:
    """Remove the PARENT → CHILD dependency (the child is re-evaluated at once)."""
    task = board_call(ctx, lambda b: b.unlink(parent, child))
    _task_out(task.to_dict(), f"Unlinked {parent} → {child}; task {child} is {task.status}",
              as_json)


@kanban.command()
@click.argument("task_id", type=int)
@click.argument("profile")
@json_option
@click.pass_context
def assign(ctx: click.Context, task_id: int, profile: str, as_json: bool) -> None:
    """Assign a task to PROFILE (or 'none')."""
    value = _none(profile)
    task = board_call(ctx, lambda b: b.assign(task_id, value))
    _task_out(task.to_dict(), f"Task {task_id} assigned to {value or 'nobody'}", as_json)


@kanban.command(name="set-model")
@click.argument("task_id", type=int)
@click.argument("model")
@json_option
@click.pass_context
def set_model(ctx: click.Context, task_id: int, model: str, as_json: bool) -> None:
    """Set the model override of a task (or 'none')."""
    value = _none(model)
    task = board_call(ctx, lambda b: b.set_model(task_id, value))
    _task_out(task.to_dict(), f"Task {task_id} model override: {value or 'none'}", as_json)


# ---- lifecycle -------------------------------------------------------------------------------

@kanban.command()
@click.argument("task_id", type=int)
@click.option("--ttl", type=float, default=None, help="Lease seconds (default claim_ttl_seconds).")
@json_option
@click.pass_context
def claim(ctx: click.Context, task_id: int, ttl: float | None, as_json: bool) -> None:
    """Claim a ready task by hand (manual lanes): prints the run id, lease token and workspace."""
    app = app_of(ctx)
    who = app.environ.get("USER") or "operator"

    async def go(board: Board) -> tuple[Claim, Path]:
        return await board.claim(task_id, ttl=ttl, claimed_by=who), board.workspaces_dir

    result, scratch_root = board_call(ctx, go)
    # Only the board's own scratch directory is created here; dir:/worktree paths are the
    # owner's (created outside the event loop: it is blocking filesystem work).
    if result.workspace and scratch_root / str(task_id) == Path(result.workspace):
        Path(result.workspace).mkdir(parents=True, exist_ok=True)
    if as_json:
        emit_json({"run_id": result.run_id, "lease": result.lease,
                   "workspace": result.workspace, "expires_at": result.expires_at})
    else:
        click.echo(f"Claimed task {task_id}: run {result.run_id}\n"
                   f"lease: {result.lease}\nworkspace: {result.workspace}")


def _own_task(app: AppContext, task_id: int | None, verb: str,
              lease: str | None) -> tuple[int, str | None]:
    """Resolve (task, lease) for a worker-side verb."""
    worker = app.worker
    if worker is not None:
        if task_id is not None and task_id != worker.task_id:
            raise InvalidInput(
                f"a worker may only {verb} its own task ({worker.task_id}), not task {task_id}"
            )
        return worker.task_id, lease or worker.lease
    if task_id is None:
        raise InvalidInput(f"{verb} needs a task id (no RELAYBOARD_TASK_ID in the environment)")
    return task_id, lease


@kanban.command()
@click.argument("task_id", type=int, required=False)
@click.option("--result", default=None, help="What the task produced.")
@click.option("--summary", default=None, help="A short summary for people and children.")
@click.option("--metadata", default=None, help="A JSON object merged into the task metadata.")
@click.option("--artifact", "artifacts", multiple=True,
              help="Path of a produced file (repeatable); delivered with the completion.")
@click.option("--lease", default=None, help="Lease token of a manual claim.")
@json_option
@click.pass_context
def complete(ctx: click.Context, task_id: int | None, result: str | None, summary: str | None,
             metadata: str | None, artifacts: tuple[str, ...], lease: str | None,
             as_json: bool) -> None:
    """Mark a task done (inside a worker: its own task, by lease)."""
    app = app_of(ctx)
    tid, token = _own_task(app, task_id, "complete", lease)
    meta: dict[str, Any] | None = None
    if metadata is not None:
        try:
            loaded = json.loads(metadata)
        except ValueError as exc:
            raise InvalidInput(f"--metadata is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidInput("--metadata must be a JSON object")
        meta = loaded
    paths = [str(Path(a).expanduser().absolute()) for a in artifacts]
    # force=token is None keeps today's CLI behaviour until the command layer adds --force.
    task = board_call(ctx, lambda b: b.complete(tid, lease=token, as_operator=token is None,
                                                force=token is None, result=result, summary=summary,
                                                metadata=meta, artifacts=paths))
    _task_out(task.to_dict(), f"Task {tid} done", as_json)


@kanban.command()
@click.argument("args", nargs=-1, required=True)
@click.option("--lease", default=None, help="Lease token of a manual claim.")
@json_option
@click.pass_context
def block(ctx: click.Context, args: tuple[str, ...], lease: str | None, as_json: bool) -> None:
    """Block a task for a human: ``block ID REASON`` (inside a worker: ``block REASON``)."""
    app = app_of(ctx)
    task_id, reason = _id_and_text(app, args, "block")
    tid, token = _own_task(app, task_id, "block", lease)
    task = board_call(ctx, lambda b: b.block(tid, reason, lease=token,
                                             as_operator=token is None, force=token is None))
    _task_out(task.to_dict(), f"Task {tid} blocked: {reason}", as_json)


@kanban.command()
@click.argument("task_ids", type=int, nargs=-1, required=True)
@json_option
@click.pass_context
def unblock(ctx: click.Context, task_ids: tuple[int, ...], as_json: bool) -> None:
    """Unblock tasks: back to ready (or todo while parents are unfinished), counters reset."""
    tasks = board_call(ctx, lambda b: b.unblock(list(task_ids)))
    if as_json:
        emit_json([t.to_dict() for t in tasks])
    else:
        for t in tasks:
            click.echo(f"Task {t.id} unblocked → {t.status}")


@kanban.command()
@click.argument("args", nargs=-1, required=True)
@click.option("--author", default=None, help="Comment author (default: $USER).")
@click.option("--lease", default=None, help="Lease token of a manual claim.")
@json_option
@click.pass_context
def comment(ctx: click.Context, args: tuple[str, ...], author: str | None, lease: str | None,
            as_json: bool) -> None:
    """Comment on a task: ``comment ID TEXT`` (inside a worker: ``comment TEXT``)."""
    app = app_of(ctx)
    task_id, text = _id_and_text(app, args, "comment")
    worker = app.worker
    token = lease
    if worker is not None and (task_id is None or task_id == worker.task_id):
        task_id, token = worker.task_id, lease or worker.lease
    if task_id is None:
        raise InvalidInput("comment needs a task id (no RELAYBOARD_TASK_ID in the environment)")
    tid = task_id
    who = author or (worker.profile if worker else None) or app.environ.get("USER") or "operator"
    made = board_call(ctx, lambda b: b.comment(tid, text, author=who, lease=token))
    _task_out(made.to_dict(), f"Comment {made.id} added to task {tid}", as_json)


@kanban.command()
@click.argument("task_id", type=int, required=False)
@click.option("--note", default=None, help="What the worker is doing now.")
@click.option("--lease", default=None, help="Lease token of a manual claim.")
@json_option
@click.pass_context
def heartbeat(ctx: click.Context, task_id: int | None, note: str | None, lease: str | None,
              as_json: bool) -> None:
    """Extend the lease of a running task (inside a worker: its own)."""
    app = app_of(ctx)
    tid, token = _own_task(app, task_id, "heartbeat", lease)
    if token is None:
        raise InvalidInput("heartbeat needs the run's lease (--lease, or run inside a worker)")
    found = board_call(ctx, lambda b: b.heartbeat(tid, lease=token, note=note))
    _task_out(found.to_dict(), f"Task {tid} lease extended to {found.expires_at}", as_json)


@kanban.command()
@click.argument("task_ids", type=int, nargs=-1, required=True)
@click.option("--rm", "remove", is_flag=True,
              help="Permanently delete already-archived tasks and everything they own.")
@json_option
@click.pass_context
def archive(ctx: click.Context, task_ids: tuple[int, ...], remove: bool, as_json: bool) -> None:
    """Archive tasks (archived parents satisfy their children); --rm deletes archived ones."""
    if remove:
        deleted = board_call(ctx, lambda b: b.delete_archived(list(task_ids)))
        if as_json:
            emit_json({"deleted": deleted})
        else:
            click.echo("Deleted " + ", ".join(map(str, deleted)))
        return
    tasks = board_call(ctx, lambda b: b.archive(list(task_ids), force=True))
    if as_json:
        emit_json([t.to_dict() for t in tasks])
    else:
        click.echo("Archived " + ", ".join(str(t.id) for t in tasks))


@kanban.command()
@json_option
@click.pass_context
def recompute(ctx: click.Context, as_json: bool) -> None:
    """Repair sweep: re-evaluate every waiting task against its parents."""
    counts = board_call(ctx, lambda b: b.recompute())
    if as_json:
        emit_json(counts)
    else:
        click.echo(f"Promoted {counts['promoted']}, demoted {counts['demoted']}")


def _id_and_text(app: AppContext, args: tuple[str, ...], verb: str) -> tuple[int | None, str]:
    if len(args) >= 2 and args[0].isdigit():
        return int(args[0]), " ".join(args[1:])
    if app.worker is None and len(args) >= 1 and args[0].isdigit():
        raise InvalidInput(f"{verb} needs text after the task id")
    if app.worker is None:
        raise InvalidInput(f"usage: relayboard kanban {verb} ID TEXT")
    return None, " ".join(args)


# ---- events ----------------------------------------------------------------------------------

@kanban.command()
@click.argument("task_id", type=int, required=False)
@click.option("--since", type=int, default=0, show_default=True, help="Only events after this id.")
@click.option("--follow", is_flag=True, help="Keep printing new events as they happen.")
@click.option("--timeout", type=float, default=None,
              help="With --follow: stop after this many seconds.")
@click.option("--limit", type=int, default=500, show_default=True)
@json_option
@click.pass_context
def events(ctx: click.Context, task_id: int | None, since: int, follow: bool,
           timeout: float | None, limit: int, as_json: bool) -> None:
    """Events by cursor (ids increase); --follow streams (one JSON object per line with --json)."""

    async def go(board: Board) -> None:
        if task_id is not None:
            await board.get_task(task_id)
        cursor = since
        batch = await board.events(task_id=task_id, since=cursor, limit=limit)
        if not follow:
            if as_json:
                emit_json([e.to_dict() for e in batch])
            else:
                render.events(batch)
            return
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        await board.poll_external()
        while True:
            for event in batch:
                if as_json:
                    click.echo(json.dumps(event.to_dict(), ensure_ascii=False, default=str))
                else:
                    render.events([event])
                cursor = event.id
            if deadline is not None and loop.time() >= deadline:
                return
            wait = 0.25 if deadline is None else min(0.25, max(0.0, deadline - loop.time()))
            version = board.changes.version
            await board.poll_external()
            await board.changes.wait(version, wait)
            batch = await board.events(task_id=task_id, since=cursor, limit=limit)

    try:
        board_call(ctx, go)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass


# ---- boards ----------------------------------------------------------------------------------

@kanban.group()
def boards() -> None:
    """List, create and remove boards."""


@boards.command(name="list")
@json_option
@click.pass_context
def boards_list(ctx: click.Context, as_json: bool) -> None:
    app = app_of(ctx)
    infos = app.boards().list()
    if as_json:
        emit_json([i.to_dict() for i in infos])
    else:
        render.boards(infos)


@boards.command(name="create")
@click.argument("slug")
@click.option("--name", default=None, help="Display name.")
@json_option
@click.pass_context
def boards_create(ctx: click.Context, slug: str, name: str | None, as_json: bool) -> None:
    app = app_of(ctx)

    async def go() -> Any:
        registry = app.boards()
        try:
            return await registry.create(slug, name=name)
        finally:
            await registry.close()

    info = asyncio.run(go())
    if as_json:
        emit_json(info.to_dict())
    else:
        click.echo(f"Created board {info.slug}")


@boards.command(name="remove")
@click.argument("slug")
@click.option("--delete", is_flag=True, help="Delete instead of archiving.")
@json_option
@click.pass_context
def boards_remove(ctx: click.Context, slug: str, delete: bool, as_json: bool) -> None:
    app = app_of(ctx)

    async def go() -> Path | None:
        registry = app.boards()
        try:
            return await registry.remove(slug, delete=delete)
        finally:
            await registry.close()

    archived = asyncio.run(go())
    if as_json:
        emit_json({"slug": slug, "deleted": delete,
                   "archived_as": archived.name if archived else None})
    else:
        click.echo(f"Deleted board {slug}" if delete else f"Archived board {slug}")


# ---- subscriptions ---------------------------------------------------------------------------

def _destination(fn: Any) -> Any:
    fn = click.option("--thread", default=None, help="Thread / topic id.")(fn)
    fn = click.option("--chat", required=True, help="Chat / channel id.")(fn)
    return click.option("--platform", required=True, help="slack, discord, telegram, web …")(fn)


@kanban.command()
@click.argument("task_id", type=int)
@_destination
@json_option
@click.pass_context
def subscribe(ctx: click.Context, task_id: int, platform: str, chat: str, thread: str | None,
              as_json: bool) -> None:
    """Post this task's progress and result to a chat thread."""
    app = app_of(ctx)
    sub = board_call(ctx, lambda b: b.subscribe(task_id, platform=platform, chat=chat,
                                                thread=thread,
                                                created_by=app.environ.get("USER")))
    _task_out(sub.to_dict(), f"Subscribed {platform}:{chat}"
              + (f"/{thread}" if thread else "") + f" to task {task_id}", as_json)


@kanban.command()
@click.argument("task_id", type=int)
@_destination
@json_option
@click.pass_context
def unsubscribe(ctx: click.Context, task_id: int, platform: str, chat: str, thread: str | None,
                as_json: bool) -> None:
    """Stop posting this task to a chat thread."""
    removed = board_call(ctx, lambda b: b.unsubscribe(task_id, platform=platform, chat=chat,
                                                      thread=thread))
    if not removed:
        raise KanbanError(f"task {task_id} has no such subscription")
    _task_out({"task_id": task_id, "removed": True}, f"Unsubscribed from task {task_id}",
              as_json)


@kanban.command()
@click.argument("task_id", type=int, required=False)
@json_option
@click.pass_context
def subscriptions(ctx: click.Context, task_id: int | None, as_json: bool) -> None:
    """List subscriptions (of one task, or all)."""
    subs = board_call(ctx, lambda b: b.subscriptions(task_id))
    if as_json:
        emit_json([s.to_dict() for s in subs])
    else:
        render.subscriptions(subs)
