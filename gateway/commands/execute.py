"""Running a request: open the board, check who asks, call the async ``Board``, return a result.

Nothing here reads the environment, prints, or knows the transport. Refusals are
:class:`kanban.KanbanError` subclasses with one line.

Who may do what: :func:`gateway.commands.policy.authorize` checks every request against the role
table first (members, admins, the dashboard, host paths). Then:

- an :class:`Operator` or a chat admin may change any task; the layer passes
  ``as_operator=True`` (and ``force`` when asked) to the kernel's writes;
- a :class:`Worker` writes to its own task with its lease (``complete``, ``block``,
  ``heartbeat``, ``comment`` default to it) and may not change another task: ``complete``,
  ``block``, ``archive``, ``unblock``, ``assign``, ``set-model``, ``claim``, ``decompose``,
  ``link``/``unlink`` of another child, and board removal are refused; it creates tasks only
  when its run's record says it may (the orchestrator profile's runs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.commands import results as r
from gateway.commands import scheduling
from gateway.commands import verbs as v
from gateway.commands.callers import Caller, ChatUser, Operator, Worker
from gateway.commands.declare import Request
from gateway.commands.errors import NotAllowed, UnknownProfile, UsageError
from gateway.commands.policy import authorize
from kanban import (
    DEFAULT_BOARD,
    Board,
    Boards,
    Conflict,
    Event,
    InvalidInput,
    KanbanError,
    Storage,
)
from kanban.board.events import EventTail
from kanban.validation import INT64_MAX, INT64_MIN, MAX_TEXT_BYTES

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from kanban.agents.profiles import Profiles
    from kanban.retention import RetentionSettings

_DIGITS = re.compile(r"[0-9]+")


@dataclass
class Services:
    """What the layer works with; built once by each transport (the CLI per process, the daemon
    for its lifetime). ``profiles=None`` skips the assignee check (no roster is known)."""

    boards: Boards
    profiles: Profiles | None = None
    default_board: str = DEFAULT_BOARD
    # Built on demand: decomposition settings import the LLM client, which `create` never needs.
    decompose_settings: Callable[[], Any] | None = None
    # The PostgreSQL storage a board moves to, from ``--dsn-env VAR`` (None: config's storage).
    # Only the CLI gives one: it owns the process environment; elsewhere moving is refused.
    migration_target: Callable[[str | None], Storage] | None = None
    # kanban.workspace_roots: where a dir:/worktree: path named from anywhere but the
    # operator's own command line may point.
    workspace_roots: tuple[Path, ...] = ()
    retention: RetentionSettings | None = None  # kanban.retention, what `gc` applies
    # The home's gateway lock, held while a board is restored. Only the CLI gives it: a
    # restore is refused while a gateway serves the home, and from every other surface.
    home_lock: Callable[[], AbstractContextManager[object]] | None = None
    # kanban.timezone (resolved: the host's when unset) and kanban.members_may_schedule.
    timezone: str = "UTC"
    members_may_schedule: bool = False

    def slug_for(self, request: Request, caller: Caller) -> str:
        if request.board:
            return request.board
        if isinstance(caller, Worker) and caller.board:
            return caller.board
        return self.default_board

    async def open_board(self, request: Request, caller: Caller) -> Board:
        return await self.boards.open(self.slug_for(request, caller))

    async def aclose(self) -> None:
        await self.boards.close()


Q = TypeVar("Q", bound=Request)
Handler = Callable[[Any, Caller, Services], Awaitable[r.Result]]
HANDLERS: dict[type[Request], Handler] = {}


def handles(cls: type[Q]) -> Callable[[Callable[[Q, Caller, Services], Awaitable[Any]]],
                                      Callable[[Q, Caller, Services], Awaitable[Any]]]:
    def register(fn: Callable[[Q, Caller, Services], Awaitable[Any]]
                 ) -> Callable[[Q, Caller, Services], Awaitable[Any]]:
        HANDLERS[cls] = fn
        return fn

    return register


async def execute(request: Request, caller: Caller, services: Services) -> r.Result:
    """Run one request for ``caller``; a typed result, or a one-line :class:`KanbanError`."""
    handler = HANDLERS.get(type(request))
    if handler is None:
        raise UsageError(f"unknown verb {request.verb!r}", "try: help")
    check_values(request)
    authorize(request, caller, services.workspace_roots,
              members_may_schedule=services.members_may_schedule)
    return await handler(request, caller, services)


def check_values(request: Request) -> None:
    """Every value of a request fits the database: strings are valid UTF-8 text of bounded size
    (argv may carry undecodable bytes as lone surrogates), integers fit 64 bits, numbers are
    finite. The parsers check this too; requests built in code (the dashboard) are checked
    here, before SQLite would fail deep in a write."""
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, bool) or item is None:
                continue
            if isinstance(item, int):
                if not INT64_MIN <= item <= INT64_MAX:
                    raise InvalidInput(f"{_label(f.name)} is out of range")
                continue
            if isinstance(item, float):
                if not math.isfinite(item):
                    raise InvalidInput(f"{_label(f.name)} must be a finite number")
                continue
            if not isinstance(item, str):
                raise InvalidInput(f"{_label(f.name)} has an unexpected value")
            try:
                size = len(item.encode("utf-8"))
            except UnicodeEncodeError:
                raise InvalidInput(f"{_label(f.name)} is not valid UTF-8 text") from None
            if size > MAX_TEXT_BYTES:
                raise InvalidInput(f"{_label(f.name)} is {size:,} bytes; the limit is "
                                   f"{MAX_TEXT_BYTES:,}")


def _label(name: str) -> str:
    return {"words": "the text", "title": "the title", "task_ids": "a task id",
            "start_at": "--at", "start_in": "--in"}.get(
        name, "--" + name.replace("_", "-"))


# ---- who may write ---------------------------------------------------------------------------

def _refuse_other(caller: Caller, task_id: int, verb: str) -> None:
    if isinstance(caller, Worker) and task_id != caller.task_id:
        raise NotAllowed(f"a worker may only {verb} its own task ({caller.task_id}), "
                         f"not task {task_id}")


def _refuse_worker(caller: Caller, what: str) -> None:
    if isinstance(caller, Worker):
        raise NotAllowed(f"a worker may not {what} (it may only change its own task "
                         f"{caller.task_id})")


def _own_task(caller: Caller, task_id: int | None, verb: str,
              lease: str | None) -> tuple[int, str | None]:
    """(task, lease) of a worker-side verb: a worker's own task and lease by default."""
    if isinstance(caller, Worker):
        if task_id is not None and task_id != caller.task_id:
            raise NotAllowed(f"a worker may only {verb} its own task ({caller.task_id}), "
                             f"not task {task_id}")
        return caller.task_id, lease or caller.lease
    if task_id is None:
        raise UsageError(f"{verb} needs a task id", f"try: {verb} 12")
    return task_id, lease


def _authority(lease: str | None, force: bool) -> dict[str, Any]:
    """The lease, or an explicit operator write (``as_operator=True``, ``force`` if asked)."""
    if lease is not None:
        return {"lease": lease}
    return {"as_operator": True, "force": force}


def _name_of(caller: Caller) -> str | None:
    if isinstance(caller, Worker):
        return caller.profile
    return caller.display


def _check_profile(services: Services, name: str | None) -> None:
    if name is None or services.profiles is None:
        return
    known = services.profiles.names()
    if name not in known:
        raise UnknownProfile(name, known)


def _none(value: str) -> str | None:
    return None if value.strip().lower() == "none" else value


def _id_and_text(caller: Caller, words: tuple[str, ...], verb: str) -> tuple[int | None, str]:
    if len(words) >= 2 and _DIGITS.fullmatch(words[0]):
        return _task_number(words[0]), " ".join(words[1:])
    if not isinstance(caller, Worker):
        if words and _DIGITS.fullmatch(words[0]):
            raise UsageError(f"{verb} needs text after the task id",
                             f"try: {verb} {words[0]} waiting for the data")
        raise UsageError(f"usage: {verb} ID TEXT", f"try: {verb} 12 waiting for the data")
    return None, " ".join(words)


def _task_number(text: str) -> int:
    number = int(text)
    if number > INT64_MAX:
        raise InvalidInput(f"task id {text[:24]}… is out of range")
    return number


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON number")

    try:
        loaded = json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise InvalidInput("--metadata is nested too deeply") from None
    except ValueError as exc:
        raise InvalidInput(f"--metadata is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise InvalidInput("--metadata must be a JSON object")
    return loaded


# ---- create and read -------------------------------------------------------------------------

@handles(v.CreateRequest)
async def _create(req: v.CreateRequest, caller: Caller,
                  services: Services) -> r.TaskCreated | r.ScheduleCreated:
    scheduling.check_create(req)
    _check_profile(services, req.assignee)
    board = await services.open_board(req, caller)
    if isinstance(caller, Worker):
        # What the dispatcher recorded on the run, not what the worker says about itself.
        run = await board.active_run(caller.task_id, caller.lease)
        if not run.may_create:
            raise NotAllowed(f"a worker may not create tasks (only the runs of "
                             f"kanban.orchestrator_profile may; task {caller.task_id}'s run "
                             "may not)")
    if req.every is not None:
        return await scheduling.create_schedule(req, caller, board, services, _name_of(caller))
    made = await board.create_task(
        req.title, body=req.body or "", assignee=req.assignee, parents=list(req.parents),
        triage=req.triage, initial_status=req.initial_status, priority=req.priority,
        max_runtime_seconds=req.max_runtime, max_retries=req.max_retries,
        model_override=req.model, skills=list(req.skills), workspace=req.workspace,
        idempotency_key=req.idempotency_key, created_by=_name_of(caller),
        attachments=list(req.attachments), host_label=req.host,
        not_before=await scheduling.start_time(req, board, services),
    )
    return r.TaskCreated(made.task, made.created, services.timezone)


@handles(v.ListRequest)
async def _list(req: v.ListRequest, caller: Caller, services: Services) -> r.TaskList:
    board = await services.open_board(req, caller)
    # The human table and chat show no bodies: they are left unread (up to 1 MB each).
    tasks = await board.list_tasks(status=req.status, assignee=req.assignee,
                                   include_archived=req.archived, with_body=req.with_bodies)
    return r.TaskList(board.slug, tasks, services.timezone)


@handles(v.ShowRequest)
async def _show(req: v.ShowRequest, caller: Caller, services: Services) -> r.TaskShown:
    board = await services.open_board(req, caller)
    return r.TaskShown(await board.show_task(req.task_id), services.timezone)


@handles(v.ContextRequest)
async def _context(req: v.ContextRequest, caller: Caller, services: Services) -> r.TaskContext:
    board = await services.open_board(req, caller)
    return r.TaskContext(req.task_id, await board.context(req.task_id))


@handles(v.StatsRequest)
async def _stats(req: v.StatsRequest, caller: Caller, services: Services) -> r.BoardStats:
    board = await services.open_board(req, caller)
    return r.BoardStats(await board.stats())


# ---- graph and fields ------------------------------------------------------------------------

@handles(v.LinkRequest)
async def _link(req: v.LinkRequest, caller: Caller, services: Services) -> r.TaskUpdated:
    _refuse_other(caller, req.child, "link")
    board = await services.open_board(req, caller)
    task = await board.link(req.parent, req.child)
    return r.TaskUpdated(task, f"Linked {req.parent} → {req.child}; task {req.child} is "
                               f"{task.status}")


@handles(v.UnlinkRequest)
async def _unlink(req: v.UnlinkRequest, caller: Caller, services: Services) -> r.TaskUpdated:
    _refuse_other(caller, req.child, "unlink")
    board = await services.open_board(req, caller)
    task = await board.unlink(req.parent, req.child)
    return r.TaskUpdated(task, f"Unlinked {req.parent} → {req.child}; task {req.child} is "
                               f"{task.status}")


@handles(v.AssignRequest)
async def _assign(req: v.AssignRequest, caller: Caller, services: Services) -> r.TaskUpdated:
    _refuse_worker(caller, f"assign task {req.task_id}")
    value = _none(req.profile)
    _check_profile(services, value)
    board = await services.open_board(req, caller)
    task = await board.assign(req.task_id, value, force=req.force)
    return r.TaskUpdated(task, f"Task {req.task_id} assigned to {value or 'nobody'}")


@handles(v.SetPriorityRequest)
async def _set_priority(req: v.SetPriorityRequest, caller: Caller,
                        services: Services) -> r.TaskUpdated:
    _refuse_worker(caller, f"set the priority of task {req.task_id}")
    board = await services.open_board(req, caller)
    task = await board.set_priority(req.task_id, req.priority)
    return r.TaskUpdated(task, f"Task {req.task_id} priority: {task.priority}")


@handles(v.SetModelRequest)
async def _set_model(req: v.SetModelRequest, caller: Caller,
                     services: Services) -> r.TaskUpdated:
    _refuse_worker(caller, f"set the model of task {req.task_id}")
    value = _none(req.model)
    board = await services.open_board(req, caller)
    task = await board.set_model(req.task_id, value)
    return r.TaskUpdated(task, f"Task {req.task_id} model override: {value or 'none'}")


# ---- lifecycle -------------------------------------------------------------------------------

@handles(v.ClaimRequest)
async def _claim(req: v.ClaimRequest, caller: Caller, services: Services) -> r.Claimed:
    _refuse_worker(caller, f"claim task {req.task_id}")
    board = await services.open_board(req, caller)
    claim = await board.claim(req.task_id, ttl=req.ttl, claimed_by=_name_of(caller))
    # Only the board's own scratch directory is created here; dir:/worktree paths are the
    # owner's.
    scratch = board.workspaces_dir / str(req.task_id)
    if claim.workspace and Path(claim.workspace) == scratch:
        await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    return r.Claimed(claim)


@handles(v.CompleteRequest)
async def _complete(req: v.CompleteRequest, caller: Caller,
                    services: Services) -> r.TaskUpdated:
    task_id, lease = _own_task(caller, req.task_id, "complete", req.lease)
    if req.artifacts and isinstance(caller, ChatUser):
        raise NotAllowed("artifacts are declared by the worker or an operator, not from chat")
    metadata = _metadata(req.metadata)
    board = await services.open_board(req, caller)
    task = await board.complete(
        task_id, result=req.result, summary=req.summary, metadata=metadata,
        artifacts=list(req.artifacts),
        by=caller.display if isinstance(caller, ChatUser) else None,
        **_authority(lease, req.force))
    return r.TaskUpdated(task, f"Task {task_id} done")


@handles(v.BlockRequest)
async def _block(req: v.BlockRequest, caller: Caller, services: Services) -> r.TaskUpdated:
    given, reason = _id_and_text(caller, req.words, "block")
    task_id, lease = _own_task(caller, given, "block", req.lease)
    board = await services.open_board(req, caller)
    task = await board.block(task_id, reason, **_authority(lease, req.force))
    return r.TaskUpdated(task, f"Task {task_id} blocked: {reason}")


@handles(v.UnblockRequest)
async def _unblock(req: v.UnblockRequest, caller: Caller, services: Services) -> r.TasksChanged:
    _refuse_worker(caller, "unblock tasks")
    board = await services.open_board(req, caller)
    return r.TasksChanged("unblocked", await board.unblock(list(req.task_ids)))


@handles(v.CommentRequest)
async def _comment(req: v.CommentRequest, caller: Caller, services: Services) -> r.CommentAdded:
    given, text = _id_and_text(caller, req.words, "comment")
    lease = req.lease
    task_id = given
    if isinstance(caller, Worker) and (given is None or given == caller.task_id):
        task_id, lease = caller.task_id, req.lease or caller.lease
    if task_id is None:  # pragma: no cover - _id_and_text demands an id outside a worker
        raise UsageError("comment needs a task id", "try: comment 12 looks good")
    # Only the operator names another author (scripts posting for someone); everyone else
    # comments as who they are.
    named = req.author if isinstance(caller, Operator) else None
    author = named or _name_of(caller) or "operator"
    board = await services.open_board(req, caller)
    return r.CommentAdded(await board.comment(task_id, text, author=author, lease=lease))


@handles(v.HeartbeatRequest)
async def _heartbeat(req: v.HeartbeatRequest, caller: Caller,
                     services: Services) -> r.LeaseExtended:
    task_id, lease = _own_task(caller, req.task_id, "heartbeat", req.lease)
    if lease is None:
        raise InvalidInput("heartbeat needs the run's lease (--lease, or run inside a worker)")
    board = await services.open_board(req, caller)
    return r.LeaseExtended(await board.heartbeat(task_id, lease=lease, note=req.note))


@handles(v.ArchiveRequest)
async def _archive(req: v.ArchiveRequest, caller: Caller,
                   services: Services) -> r.TasksChanged | r.TasksDeleted:
    _refuse_worker(caller, "archive or delete tasks")
    board = await services.open_board(req, caller)
    if req.remove:
        return r.TasksDeleted(await board.delete_archived(list(req.task_ids)))
    tasks = await board.archive(list(req.task_ids), force=req.force)
    return r.TasksChanged("archived", tasks)


@handles(v.RecomputeRequest)
async def _recompute(req: v.RecomputeRequest, caller: Caller,
                     services: Services) -> r.Recomputed:
    _refuse_worker(caller, "recompute the board")
    board = await services.open_board(req, caller)
    return r.Recomputed(await board.recompute())


# ---- events ----------------------------------------------------------------------------------

@handles(v.EventsRequest)
async def _events(req: v.EventsRequest, caller: Caller, services: Services) -> r.EventList:
    board = await services.open_board(req, caller)
    if req.task_id is not None:
        await board.get_task(req.task_id)
    return r.EventList(await board.events(task_id=req.task_id, since=req.since,
                                          limit=req.limit))


async def follow_events(req: v.EventsRequest, caller: Caller,
                        services: Services) -> AsyncIterator[list[Event]]:
    """Batches of new events (the first is everything after ``since``) until ``req.timeout``
    passes; without a timeout, until the caller stops iterating."""
    check_values(req)
    board = await services.open_board(req, caller)
    if req.task_id is not None:
        await board.get_task(req.task_id)
    loop = asyncio.get_running_loop()
    deadline = None if req.timeout is None else loop.time() + req.timeout
    # The first batch is everything after `since`; later ones also catch an event that
    # committed below the cursor (PostgreSQL), each id once.
    batch = await board.events(task_id=req.task_id, since=req.since, limit=req.limit)
    tail = EventTail(board, req.since, task_id=req.task_id)
    await tail.prime()
    batch = tail.mark(batch)
    await board.poll_external()
    while True:
        if batch:
            yield batch
        if deadline is not None and loop.time() >= deadline:
            return
        wait = 0.25 if deadline is None else min(0.25, max(0.0, deadline - loop.time()))
        version = board.changes.version
        await board.poll_external()
        await board.changes.wait(version, wait)
        batch, _more = await tail.read(req.limit)


# ---- subscriptions ---------------------------------------------------------------------------

@handles(v.SubscribeRequest)
async def _subscribe(req: v.SubscribeRequest, caller: Caller, services: Services) -> r.Subscribed:
    board = await services.open_board(req, caller)
    return r.Subscribed(await board.subscribe(req.task_id, platform=req.platform, chat=req.chat,
                                              thread=req.thread, created_by=_name_of(caller),
                                              silent=req.silent))


@handles(v.UnsubscribeRequest)
async def _unsubscribe(req: v.UnsubscribeRequest, caller: Caller,
                       services: Services) -> r.Unsubscribed:
    board = await services.open_board(req, caller)
    if not await board.unsubscribe(req.task_id, platform=req.platform, chat=req.chat,
                                   thread=req.thread):
        raise KanbanError(f"task {req.task_id} has no such subscription")
    return r.Unsubscribed(req.task_id)


@handles(v.SubscriptionsRequest)
async def _subscriptions(req: v.SubscriptionsRequest, caller: Caller,
                         services: Services) -> r.SubscriptionList:
    board = await services.open_board(req, caller)
    return r.SubscriptionList(await board.subscriptions(req.task_id))


# ---- boards ----------------------------------------------------------------------------------

@handles(v.BoardsListRequest)
async def _boards_list(req: v.BoardsListRequest, caller: Caller,
                       services: Services) -> r.BoardList:
    return r.BoardList(await services.boards.list())


@handles(v.BoardsCreateRequest)
async def _boards_create(req: v.BoardsCreateRequest, caller: Caller,
                         services: Services) -> r.BoardCreated:
    _refuse_worker(caller, "create boards")
    return r.BoardCreated(await services.boards.create(req.slug, name=req.name))


@handles(v.BoardsRemoveRequest)
async def _boards_remove(req: v.BoardsRemoveRequest, caller: Caller,
                         services: Services) -> r.BoardRemoved:
    _refuse_worker(caller, "remove boards")
    released = (await services.boards.stop_runs(req.slug, by=_name_of(caller))
                if req.force and await services.boards.exists(req.slug) else [])
    archived = await services.boards.remove(req.slug, delete=req.delete, force=req.force)
    return r.BoardRemoved(req.slug, req.delete, archived.name if archived else None, released)


@handles(v.BoardsMigrateRequest)
async def _boards_migrate(req: v.BoardsMigrateRequest, caller: Caller,
                          services: Services) -> r.BoardMigrated:
    if not isinstance(caller, Operator):
        raise NotAllowed("a board is moved from the command line of its host, by an operator")
    if services.migration_target is None:
        raise NotAllowed("moving a board is only available from `relayboard kanban boards "
                         "migrate` on the board's host")
    target = services.migration_target(req.dsn_env)
    from kanban.move_to_postgres import migrate_board  # psycopg: only for this verb

    migration = await migrate_board(services.boards, req.slug, target, replace=req.replace)
    current = services.boards.storage
    configured = (current.is_postgres and current.dsn == target.dsn
                  and current.namespace == target.namespace)
    return r.BoardMigrated(migration, configured, req.dsn_env)


# ---- schedules (gateway/commands/scheduling.py) ---------------------------------------------

_s = scheduling
HANDLERS.update({
    v.SchedulesRequest: _s.list_schedules, v.ScheduleShowRequest: _s.show_schedule,
    v.SchedulePauseRequest: _s.pause_schedule, v.ScheduleResumeRequest: _s.resume_schedule,
    v.ScheduleRemoveRequest: _s.remove_schedule, v.RunNowRequest: _s.run_now,
    v.ScheduleSubscribeRequest: _s.subscribe_schedule,
    v.ScheduleUnsubscribeRequest: _s.subscribe_schedule})


# ---- decomposition ---------------------------------------------------------------------------

@handles(v.DecomposeRequest)
async def _decompose(req: v.DecomposeRequest, caller: Caller, services: Services) -> r.Decomposed:
    _refuse_worker(caller, "decompose tasks")
    if (req.task_id is None) == (not req.all):
        raise UsageError("give a task ID or --all (not both)", "try: decompose 12")
    if services.decompose_settings is None or services.profiles is None:
        raise KanbanError("decomposition is not available here")
    from kanban.agents import decompose_all, decompose_task  # the LLM client: only when asked

    settings = services.decompose_settings()
    board = await services.open_board(req, caller)
    if req.task_id is None:
        outcomes = await decompose_all(board, services.profiles, settings)
    else:
        task = await board.get_task(req.task_id)
        if task.status != "triage":
            raise Conflict(f"task {req.task_id} is {task.status}; only a triage task can be "
                           "decomposed")
        outcomes = [await decompose_task(board, req.task_id, services.profiles, settings)]
    return r.Decomposed(list(outcomes), req.task_id is not None,
                        [describe_outcome(o) for o in outcomes])


def describe_outcome(o: Any) -> str:
    how = "offline decomposer" if o.decomposer == "offline" else "LLM decomposer"
    if o.action == "decomposed":
        pairs = ", ".join(f"#{c}→{a}" for c, a in zip(o.children, o.assignees, strict=True))
        line = f"#{o.task_id}: decomposed by the {how} into {len(o.children)} task(s): {pairs}"
    elif o.action == "promoted":
        line = f"#{o.task_id}: promoted as one task for {o.assignees[0]} ({how})"
    else:
        line = f"#{o.task_id}: {o.action}: {o.reason}"
    return str(line + (f"  [{o.note}]" if o.note else ""))
