"""The verbs of time: ``create --at/--in/--every``, ``schedules``, ``schedule show|pause|resume|
remove``, ``run-now``. :mod:`gateway.commands.execute` registers these handlers, so they run
behind the same role check as every verb (:func:`gateway.commands.policy.authorize`).

Times a person types are read in ``kanban.timezone`` (``Services.timezone``); a schedule keeps
the zone it was made in. A schedule made from chat is subscribed to the thread it was made in,
so each occurrence's result is posted there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.commands import results as r
from gateway.commands import verbs as v
from gateway.commands.callers import Caller, ChatUser, Worker
from gateway.commands.errors import NotAllowed, UsageError
from kanban import Board, Conflict
from kanban.timespec import describe, parse_at, parse_duration, zone

if TYPE_CHECKING:
    from gateway.commands.execute import Services

# create's options that shape one task only: refused beside --every, with the reason.
_ONE_TASK_ONLY = (("parents", "--parent"), ("triage", "--triage"),
                  ("idempotency_key", "--idempotency-key"))


def check_create(req: v.CreateRequest) -> None:
    """The time options of ``create`` that do not go together, refused in one line."""
    if req.start_at is not None and req.start_in is not None:
        raise UsageError("give --at or --in, not both", "try: create Report --in 2h")
    if req.every is None:
        if req.catch_up is not None or req.overlap:
            raise UsageError("--catch-up and --overlap go with --every",
                             "try: create Report --every 'daily 09:00' --catch-up all")
        return
    if req.start_at is not None or req.start_in is not None:
        raise UsageError("--every makes a schedule, whose times come from it; --at and --in "
                         "are for one task", "try: create Report --every 'daily 09:00'")
    for name, flag in _ONE_TASK_ONLY:
        if getattr(req, name):
            raise UsageError(f"--every makes a schedule; {flag} is for one task",
                             "try: create Report --every 'daily 09:00'")
    if req.attachments:
        raise UsageError("a schedule takes no files (its runs make their own); attach them to "
                         "a task instead", "try: create Report --every 'daily 09:00'")
    if req.initial_status != "running":
        raise UsageError("--every makes a schedule; --initial-status is for one task",
                         "try: create Report --every 'daily 09:00'")


async def start_time(req: v.CreateRequest, board: Board, services: Services) -> float | None:
    """The epoch time ``--at``/``--in`` name (by the board's clock), or None."""
    if req.start_at is None and req.start_in is None:
        return None
    current = await board.current_time()
    if req.start_in is not None:
        return current + parse_duration(req.start_in)
    assert req.start_at is not None
    return parse_at(req.start_at, zone(services.timezone), current)


async def create_schedule(req: v.CreateRequest, caller: Caller, board: Board,
                          services: Services, created_by: str | None) -> r.ScheduleCreated:
    if isinstance(caller, Worker):
        raise NotAllowed("a worker may not create schedules (a person makes them)")
    assert req.every is not None
    subscriptions: list[dict[str, Any]] = []
    if isinstance(caller, ChatUser) and caller.chat is not None:
        subscriptions.append({"platform": caller.platform, "chat": caller.chat,
                              "thread": caller.thread or ""})
    schedule = await board.create_schedule(
        req.title, every=req.every, timezone=services.timezone, body=req.body or "",
        assignee=req.assignee, priority=req.priority, max_runtime_seconds=req.max_runtime,
        max_retries=req.max_retries, model_override=req.model, skills=list(req.skills),
        workspace=req.workspace, host_label=req.host, catch_up=req.catch_up or "last",
        overlap=req.overlap, created_by=created_by, subscriptions=subscriptions)
    return r.ScheduleCreated(schedule, here=bool(subscriptions))


async def list_schedules(req: v.SchedulesRequest, caller: Caller,
                         services: Services) -> r.ScheduleList:
    board = await services.open_board(req, caller)
    return r.ScheduleList(board.slug, await board.list_schedules())


async def show_schedule(req: v.ScheduleShowRequest, caller: Caller,
                        services: Services) -> r.ScheduleChanged:
    board = await services.open_board(req, caller)
    s = await board.get_schedule(req.schedule_id)
    posts = ", ".join(f"{d.get('platform')} {d.get('chat')}" for d in s.subscriptions) or "-"
    lines = [r.schedule_line(s),
             f"every: {s.every} (cron {s.cron}) · catch-up {s.catch_up} · overlap "
             f"{'yes' if s.overlap else 'no'} · workspace {s.workspace_spec}",
             f"occurrences made: {s.occurrences}"
             + (f" · last task #{s.last_task_id}" if s.last_task_id else "")
             + f" · posts to: {posts}"]
    return r.ScheduleChanged(s, "\n".join(lines))


def _refuse_worker(caller: Caller) -> None:
    if isinstance(caller, Worker):
        raise NotAllowed(f"a worker may not manage schedules (it may only change its own task "
                         f"{caller.task_id})")


async def pause_schedule(req: v.SchedulePauseRequest, caller: Caller,
                         services: Services) -> r.ScheduleChanged:
    _refuse_worker(caller)
    board = await services.open_board(req, caller)
    s = await board.pause_schedule(req.schedule_id)
    return r.ScheduleChanged(s, f"Paused {s.ref} {s.title}: no occurrence until it resumes")


async def resume_schedule(req: v.ScheduleResumeRequest, caller: Caller,
                          services: Services) -> r.ScheduleChanged:
    _refuse_worker(caller)
    board = await services.open_board(req, caller)
    s = await board.resume_schedule(req.schedule_id)
    nxt = f" · next {r.when(s.next_run_at, s.timezone)}" if s.next_run_at else ""
    return r.ScheduleChanged(s, f"Resumed {s.ref} {s.title} · {describe(s.cron)} "
                                f"({s.timezone}){nxt}")


async def remove_schedule(req: v.ScheduleRemoveRequest, caller: Caller,
                          services: Services) -> r.ScheduleChanged:
    _refuse_worker(caller)
    board = await services.open_board(req, caller)
    s = await board.remove_schedule(req.schedule_id)
    return r.ScheduleChanged(s, f"Removed {s.ref} {s.title} (the tasks it made stay)")


async def subscribe_schedule(req: v.ScheduleSubscribeRequest | v.ScheduleUnsubscribeRequest,
                             caller: Caller, services: Services) -> r.ScheduleChanged:
    _refuse_worker(caller)
    remove = isinstance(req, v.ScheduleUnsubscribeRequest)
    board = await services.open_board(req, caller)
    s = await board.subscribe_schedule(
        req.schedule_id, platform=req.platform, chat=req.chat, thread=req.thread,
        silent=getattr(req, "silent", False), remove=remove)
    where = f"{req.platform} {req.chat}" + (f" (thread {req.thread})" if req.thread else "")
    return r.ScheduleChanged(s, (f"{s.ref} no longer posts to {where}" if remove else
                                 f"{s.ref} {s.title}: each later run posts to {where}"))


async def run_now(req: v.RunNowRequest, caller: Caller,
                  services: Services) -> r.TaskCreated | r.TaskUpdated:
    if isinstance(caller, Worker):
        raise NotAllowed(f"a worker may not start other tasks (it may only change its own task "
                         f"{caller.task_id})")
    target = req.target.strip().lstrip("#")
    board = await services.open_board(req, caller)
    if target[:1] in ("S", "s") and target[1:].isdigit() and len(target) < 20:
        by = caller.display
        task = await board.run_schedule_now(int(target[1:]), by=by)
        return r.TaskCreated(task, True, services.timezone)
    if not target.isdigit() or len(target) > 18:
        raise UsageError(f"run-now takes a task id (12) or a schedule id (S3), not "
                         f"{req.target[:20]!r}", "try: run-now 12")
    task_id = int(target)
    task = await board.get_task(task_id)
    if task.status != "blocked" and task.not_before is None:
        raise Conflict(f"task {task_id} is {task.status} and waits for no time; "
                       + ("it runs when a worker is free" if task.status == "ready"
                          else "nothing to start"))
    [started] = await board.unblock([task_id])
    return r.TaskUpdated(started, f"Task {task_id} starts now ({started.status})")
