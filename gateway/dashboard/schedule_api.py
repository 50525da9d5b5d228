"""The dashboard's schedules: ``/api/schedules`` (list with the next runs, create, pause, resume,
run now, remove) and ``POST /api/tasks/{id}/run-now``.

Every change is the same verb the CLI and chat run (:mod:`gateway.commands.scheduling`),
executed as the dashboard's operator, so the rules are one set.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.commands import Request as VerbRequest
from gateway.commands import Services, execute
from gateway.commands import results as r
from gateway.commands import verbs as v
from gateway.commands.json_args import request_from_json
from gateway.dashboard.actions import API_NAMES, OPERATOR
from gateway.dashboard.api import actor_of, body_of, endpoint, ok, task_id_of
from gateway.errors import ApiError
from kanban import InvalidInput, Schedule
from kanban.timespec import next_after, zone

UPCOMING = 3  # next runs shown per schedule


def schedule_view(schedule: Schedule) -> dict[str, Any]:
    """A schedule as the page reads it: its fields, its words and its next few runs."""
    upcoming: list[float] = []
    if schedule.state == "active" and schedule.next_run_at is not None:
        tz = zone(schedule.timezone)
        upcoming.append(schedule.next_run_at)
        while len(upcoming) < UPCOMING:
            upcoming.append(next_after(schedule.cron, tz, upcoming[-1]))
    return {**r.schedule_json(schedule), "upcoming": upcoming}


def schedule_id_of(request: Request) -> int:
    text = str(request.path_params["schedule_id"])
    digits = text[1:] if text[:1] in ("S", "s") else text
    if not digits.isdigit() or len(digits) > 18:
        raise ApiError(404, f"no schedule {text[:20]!r}")
    return int(digits)


async def _run(services: Services, verb: VerbRequest) -> Any:
    """The verb's result, as the dashboard's operator (typed by the caller)."""
    return await execute(verb, OPERATOR, services)


@endpoint
async def list_schedules(request: Request) -> Response:
    act = await actor_of(request)
    listed: r.ScheduleList = await _run(act.services, v.SchedulesRequest(board=act.board.slug))
    return ok({"timezone": act.services.timezone,
               "schedules": [schedule_view(s) for s in listed.schedules]})


@endpoint
async def create_schedule(request: Request) -> Response:
    act = await actor_of(request)
    fields = await body_of(request)
    if not str(fields.get("every") or "").strip():
        raise InvalidInput("a schedule needs `every` (e.g. 'weekdays 09:00')")
    made = await _run(act.services, request_from_json(
        v.CreateRequest, fields, names=API_NAMES, fixed={"board": act.board.slug}))
    assert isinstance(made, r.ScheduleCreated)
    return ok(schedule_view(made.schedule), 201)


async def _change(request: Request, verb: type[v.SchedulePauseRequest | v.ScheduleResumeRequest
                                              | v.ScheduleRemoveRequest]) -> Response:
    act = await actor_of(request)
    changed: r.ScheduleChanged = await _run(
        act.services, verb(schedule_id=schedule_id_of(request), board=act.board.slug))
    return ok(schedule_view(changed.schedule))


@endpoint
async def pause_schedule(request: Request) -> Response:
    return await _change(request, v.SchedulePauseRequest)


@endpoint
async def resume_schedule(request: Request) -> Response:
    return await _change(request, v.ScheduleResumeRequest)


@endpoint
async def remove_schedule(request: Request) -> Response:
    return await _change(request, v.ScheduleRemoveRequest)


@endpoint
async def run_schedule_now(request: Request) -> Response:
    act = await actor_of(request)
    made: r.TaskCreated = await _run(act.services, v.RunNowRequest(
        target=f"S{schedule_id_of(request)}", board=act.board.slug))
    return ok({"id": made.task.id, "status": made.task.status}, 201)


@endpoint
async def run_task_now(request: Request) -> Response:
    act = await actor_of(request)
    started: r.TaskUpdated = await _run(act.services, v.RunNowRequest(
        target=str(task_id_of(request)), board=act.board.slug))
    return ok({"id": started.task.id, "status": started.task.status})


def routes() -> list[Route]:
    s = "/api/schedules/{schedule_id}"
    return [
        Route("/api/schedules", list_schedules, methods=["GET"]),
        Route("/api/schedules", create_schedule, methods=["POST"]),
        Route(f"{s}/pause", pause_schedule, methods=["POST"]),
        Route(f"{s}/resume", resume_schedule, methods=["POST"]),
        Route(f"{s}/run-now", run_schedule_now, methods=["POST"]),
        Route(s, remove_schedule, methods=["DELETE"]),
        Route("/api/tasks/{task_id:int}/run-now", run_task_now, methods=["POST"]),
    ]
