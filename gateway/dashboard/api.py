"""The REST API under ``/api`` (JSON; ``?board=SLUG`` everywhere; errors as ``{"error": …}``).

Reads go to the board's facade through :mod:`gateway.dashboard.views`; every change goes through
:mod:`gateway.dashboard.actions`. Kernel errors map to status codes by class (400 bad input, 404
unknown, 409 wrong state, 502 an auxiliary LLM failed); nothing else leaks a traceback.

Bodies are read through :func:`platforms.http_safety.read_body`, capped at
:data:`~platforms.http_safety.JSON_BODY_LIMIT` (413 past it, without reading the rest); files are
served with the headers of :func:`platforms.http_safety.file_response` (a download unless a raster
image, always sandboxed).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.chat import pairing_admin
from gateway.chat.pairing import PairingStore, UnknownCode
from gateway.commands import NotAllowed, Services
from gateway.dashboard import actions, orchestration, views
from gateway.dashboard.openapi import openapi_schema
from gateway.dashboard.state import DashboardState
from gateway.errors import ApiError, GatewayError
from gateway.kernel_settings import decompose_settings, llm_endpoint, time_zone
from kanban import (
    AuxiliaryError,
    Board,
    Conflict,
    InvalidInput,
    KanbanError,
    LeaseError,
    NotFound,
    Schedule,
)
from kanban.agents.llm import DESCRIBER_SLOT
from platforms import sse
from platforms.delivery import OpenedFile
from platforms.http_safety import (
    JSON_BODY_LIMIT,
    SNIFF_BYTES,
    BodyTooLarge,
    file_response,
    parse_json,
    read_body,
)

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
LOG_CHUNK = 64 * 1024


def status_for(exc: Exception) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, NotAllowed):
        return 403
    if isinstance(exc, Conflict | LeaseError):
        return 409
    if isinstance(exc, AuxiliaryError):
        return 502
    return 400  # InvalidInput, ConfigError and any other KanbanError or GatewayError


def endpoint(fn: Handler) -> Handler:
    """Map the error trees to JSON bodies with one line for a person."""

    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except (KanbanError, GatewayError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return JSONResponse({"error": message}, status_code=status_for(exc))
        except OSError as exc:
            log.warning("dashboard: %s", exc)
            return JSONResponse({"error": exc.strerror or "file system error"}, status_code=500)

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def state_of(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


async def board_of(request: Request) -> Board:
    state = state_of(request)
    slug = request.query_params.get("board") or state.config.kanban.default_board
    return await state.boards.open(slug)


async def actor_of(request: Request) -> actions.Actor:
    """The dashboard's operator on the request's board, acting through the command layer."""
    state = state_of(request)
    board = await board_of(request)
    config = state.config
    services = Services(boards=state.boards, profiles=state.profiles,
                        default_board=config.kanban.default_board,
                        decompose_settings=lambda: decompose_settings(config),
                        workspace_roots=config.kanban.workspace_roots,
                        timezone=time_zone(config.kanban),
                        members_may_schedule=config.kanban.members_may_schedule)
    return actions.Actor(services, board)


async def body_of(request: Request) -> dict[str, Any]:
    """The JSON object in the body (``{}`` when empty): 413 over the cap, 400 if malformed."""
    try:
        raw = await read_body(request, JSON_BODY_LIMIT)
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    if not raw:
        return {}
    try:
        data = parse_json(raw)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


def task_id_of(request: Request) -> int:
    raw = request.path_params["task_id"]
    return int(raw)


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def int_param(request: Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be an integer") from exc
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}")
    return value


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


# ---- boards, stats, events ----------------------------------------------------------------------

@endpoint
async def get_board(request: Request) -> Response:
    """Columns of cards with counts; each column holds its first ``limit`` cards."""
    board = await board_of(request)
    limit = int_param(request, "limit", views.DEFAULT_LIMIT, lo=1, hi=views.MAX_LIMIT)
    data = await state_of(request).views.board(
        board, limit=limit, archived=flag(request, "archived"),
        assignee=request.query_params.get("assignee") or None,
        text=request.query_params.get("q") or None)
    return ok(data)


@endpoint
async def list_boards(request: Request) -> Response:
    state = state_of(request)
    return ok({"default": state.config.kanban.default_board,
               "boards": [{"slug": b.slug, "name": b.name, "created_at": b.created_at}
                          for b in await state.boards.list()]})


@endpoint
async def create_board(request: Request) -> Response:
    info = await (await actor_of(request)).create_board(await body_of(request))
    return ok({"slug": info.slug, "name": info.name, "created_at": info.created_at}, 201)


@endpoint
async def get_stats(request: Request) -> Response:
    return ok(await (await board_of(request)).stats())


@endpoint
async def stream_events(request: Request) -> Response:
    """Server-sent events: the board's event log from ``Last-Event-ID`` (or ``?since=``)."""
    board = await board_of(request)
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    since = int(raw) if raw and raw.isdigit() else None
    tail = state_of(request).live.tail(board)
    await tail.ensure_started()
    return sse.response(tail.stream(since))


# ---- tasks --------------------------------------------------------------------------------------

@endpoint
async def list_tasks(request: Request) -> Response:
    board = await board_of(request)
    status = request.query_params.get("status") or None
    assignee = request.query_params.get("assignee") or None
    cards = await board.list_cards(include_archived=flag(request, "archived")
                                   or status == "archived")
    return ok([views.card_json(c) for c in cards
               if (status is None or c.status == status)
               and (assignee is None or c.assignee == assignee)])


@endpoint
async def create_task(request: Request) -> Response:
    act = await actor_of(request)
    made = await act.create_task(await body_of(request))
    if isinstance(made, Schedule):  # `every` given: a recurring schedule
        return ok({"schedule_id": made.id, "ref": made.ref, "next_run_at": made.next_run_at},
                  201)
    return ok({"id": made.id, "status": made.status}, 201)


@endpoint
async def get_task(request: Request) -> Response:
    board = await board_of(request)
    state = state_of(request)
    return ok(await views.detail(board, task_id_of(request), state.config.delivery.allowed_roots,
                                 state.home))


@endpoint
async def patch_task(request: Request) -> Response:
    act = await actor_of(request)
    body = await body_of(request)
    force = bool(body.pop("force", False))
    task = await act.update_task(task_id_of(request), body, force=force)
    return ok({"id": task.id, "status": task.status, "assignee": task.assignee,
               "priority": task.priority, "model_override": task.model_override})


@endpoint
async def delete_task(request: Request) -> Response:
    """Archive the task; ``?purge=1`` deletes an archived task for good."""
    act = await actor_of(request)
    task_id = task_id_of(request)
    if flag(request, "purge"):
        return ok({"deleted": await act.delete([task_id])})
    tasks = await act.archive([task_id], force=flag(request, "force"))
    return ok({"id": tasks[0].id, "status": tasks[0].status})


@endpoint
async def add_comment(request: Request) -> Response:
    act = await actor_of(request)
    made = await act.comment(task_id_of(request), await body_of(request))
    return ok(made.to_dict(), 201)


@endpoint
async def add_link(request: Request) -> Response:
    act = await actor_of(request)
    parent, child = _link_ends(request, await body_of(request))
    task = await act.link(parent, child)
    return ok({"id": task.id, "parents": task.parents, "children": task.children}, 201)


@endpoint
async def remove_link(request: Request) -> Response:
    act = await actor_of(request)
    parent, child = _link_ends(request, await body_of(request))
    task = await act.unlink(parent, child)
    return ok({"id": task.id, "parents": task.parents, "children": task.children})


def _link_ends(request: Request, body: dict[str, Any]) -> tuple[int, int]:
    """``{"parent": P}`` makes P a parent of this task; ``{"child": C}`` C a child of it."""
    me = task_id_of(request)
    parent, child = body.get("parent"), body.get("child")
    if isinstance(parent, int) and not isinstance(parent, bool) and child is None:
        return parent, me
    if isinstance(child, int) and not isinstance(child, bool) and parent is None:
        return me, child
    raise InvalidInput('give {"parent": ID} or {"child": ID}')


@endpoint
async def complete_task(request: Request) -> Response:
    act = await actor_of(request)
    task = await act.complete(task_id_of(request), await body_of(request))
    return ok({"id": task.id, "status": task.status})


@endpoint
async def block_task(request: Request) -> Response:
    act = await actor_of(request)
    task = await act.block(task_id_of(request), await body_of(request))
    return ok({"id": task.id, "status": task.status})


@endpoint
async def unblock_task(request: Request) -> Response:
    task = await (await actor_of(request)).unblock(task_id_of(request))
    return ok({"id": task.id, "status": task.status})


@endpoint
async def archive_task(request: Request) -> Response:
    act = await actor_of(request)
    body = await body_of(request)
    tasks = await act.archive([task_id_of(request)], force=bool(body.get("force")))
    return ok({"id": tasks[0].id, "status": tasks[0].status})


@endpoint
async def decompose(request: Request) -> Response:
    outcome = await (await actor_of(request)).decompose(task_id_of(request))
    return ok(outcome.to_dict(), 200 if outcome.ok else 422)


@endpoint
async def download_artifact(request: Request) -> Response:
    """One of the task's own files (never any other path), with Content-Disposition."""
    board = await board_of(request)
    task = await board.get_task(task_id_of(request))
    index = int(request.path_params["index"])
    if not 0 <= index < len(task.artifacts):
        raise ApiError(404, "no such file")
    raw = task.artifacts[index]
    state = state_of(request)
    if Path(raw).name != request.path_params["name"]:
        raise ApiError(404, "this file is not available")
    # Made on another host (a board on PostgreSQL): written here from the database first.
    [local] = await board.local_artifacts(task.id, [raw])
    opened = await asyncio.to_thread(views.open_servable, board, task, str(local),
                                     state.config.delivery.allowed_roots, state.home)
    if opened is None:
        raise ApiError(404, "this file is not available")
    name = opened.name
    try:
        head = await asyncio.to_thread(os.pread, opened.fd, SNIFF_BYTES, 0)
    except OSError:
        opened.close()
        raise
    # Inline only for a raster image by name and content; anything else (SVG, HTML, a script
    # renamed .png) is a download, and every response is sandboxed.
    kind, headers = file_response(name, head, download=flag(request, "download"))
    return StreamingResponse(
        _read_opened(opened), media_type=kind,
        headers={**headers, "Content-Length": str(opened.size),
                 "Cache-Control": "private, max-age=60"})


async def _read_opened(opened: OpenedFile, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    """The bytes of a file opened once by the delivery policy (never re-opened by path)."""
    try:
        while True:
            data = await asyncio.to_thread(os.read, opened.fd, chunk)
            if not data:
                return
            yield data
    finally:
        opened.close()


@endpoint
async def read_log(request: Request) -> Response:
    """The worker log from ``offset``: ``{text, offset, size, running}``; poll while running."""
    board = await board_of(request)
    task_id = task_id_of(request)
    task = await board.get_task(task_id)
    offset = int_param(request, "offset", 0, lo=0, hi=2**62)
    text, next_offset, size = await asyncio.to_thread(
        views.read_log, board.log_path(task_id), offset, LOG_CHUNK)
    return ok({"text": text, "offset": next_offset, "size": size,
               "running": task.status == "running"})


# ---- profiles and orchestration -----------------------------------------------------------------

@endpoint
async def list_profiles(request: Request) -> Response:
    profiles = await asyncio.to_thread(state_of(request).profiles.list)
    return ok([{"name": p.name, "description": p.description,
                "description_auto": p.description_auto, "model": p.model,
                "command": p.command, "skills": p.skills or p.installed_skills(),
                "problem": p.problem} for p in profiles])


@endpoint
async def patch_profile(request: Request) -> Response:
    body = await body_of(request)
    text = body.get("description")
    if not isinstance(text, str) or set(body) != {"description"}:
        raise InvalidInput('send {"description": "..."}')
    outcome = await asyncio.to_thread(actions.describe_by_hand, state_of(request).profiles,
                                      request.path_params["name"], text)
    return ok(outcome.to_dict())


@endpoint
async def describe_auto(request: Request) -> Response:
    state = state_of(request)
    endpoint_ = llm_endpoint(DESCRIBER_SLOT, state.config.auxiliary.profile_describer)
    outcome = await actions.describe_auto(state.profiles, request.path_params["name"], endpoint_)
    return ok(outcome.to_dict(), 200 if outcome.action == "described" else 422)


@endpoint
async def get_orchestration(request: Request) -> Response:
    state = state_of(request)
    return ok(await asyncio.to_thread(orchestration.view, state.config, state.profiles))


@endpoint
async def put_orchestration(request: Request) -> Response:
    state = state_of(request)
    body = await body_of(request)
    changes = await asyncio.to_thread(orchestration.validate, body, state.profiles)
    async with state.config_lock:
        state.config = await orchestration.apply(state.config, changes)
    for listener in state.config_listeners:
        listener(state.config)
    return ok(await asyncio.to_thread(orchestration.view, state.config, state.profiles))


# ---- pairing requests (dm_policy: pairing) ------------------------------------------------------
@endpoint
async def list_pairing(request: Request) -> Response:
    store = PairingStore(state_of(request).home)
    items = await asyncio.to_thread(store.pending)
    now = store.clock()
    return ok({"pending": [p.to_dict(now) for p in items]})


@endpoint
async def approve_pairing(request: Request) -> Response:
    state = state_of(request)
    body = await body_of(request) if await request.body() else {}
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise ApiError(400, f"admin must be true or false (got {admin!r})")
    store = PairingStore(state.home)
    path = state.config.path or state.home / "config.yaml"
    async with state.config_lock:
        try:
            done = await asyncio.to_thread(pairing_admin.approve, store, path,
                                           request.path_params["code"], admin=admin)
        except UnknownCode as exc:
            raise ApiError(404, str(exc)) from None
    return ok(done.to_dict(store.clock()))


@endpoint
async def deny_pairing(request: Request) -> Response:
    store = PairingStore(state_of(request).home)
    try:
        item = await asyncio.to_thread(store.deny, request.path_params["code"])
    except UnknownCode as exc:
        raise ApiError(404, str(exc)) from None
    return ok({"denied": item.to_dict(store.clock())})


async def get_openapi(request: Request) -> Response:
    return JSONResponse(openapi_schema())


def routes() -> list[Route]:
    t = "/api/tasks/{task_id:int}"
    return [
        Route("/api/openapi.json", get_openapi, methods=["GET"]),
        Route("/api/board", get_board, methods=["GET"]),
        Route("/api/boards", list_boards, methods=["GET"]),
        Route("/api/boards", create_board, methods=["POST"]),
        Route("/api/stats", get_stats, methods=["GET"]),
        Route("/api/events", stream_events, methods=["GET"]),
        Route("/api/tasks", list_tasks, methods=["GET"]),
        Route("/api/tasks", create_task, methods=["POST"]),
        Route(t, get_task, methods=["GET"]),
        Route(t, patch_task, methods=["PATCH"]),
        Route(t, delete_task, methods=["DELETE"]),
        Route(f"{t}/comments", add_comment, methods=["POST"]),
        Route(f"{t}/links", add_link, methods=["POST"]),
        Route(f"{t}/links", remove_link, methods=["DELETE"]),
        Route(f"{t}/complete", complete_task, methods=["POST"]),
        Route(f"{t}/block", block_task, methods=["POST"]),
        Route(f"{t}/unblock", unblock_task, methods=["POST"]),
        Route(f"{t}/archive", archive_task, methods=["POST"]),
        Route(f"{t}/decompose", decompose, methods=["POST"]),
        Route(f"{t}/log", read_log, methods=["GET"]),
        Route(t + "/artifacts/{index:int}/{name}", download_artifact, methods=["GET"]),
        Route("/api/profiles", list_profiles, methods=["GET"]),
        Route("/api/profiles/{name}", patch_profile, methods=["PATCH"]),
        Route("/api/profiles/{name}/describe-auto", describe_auto, methods=["POST"]),
        Route("/api/orchestration", get_orchestration, methods=["GET"]),
        Route("/api/orchestration", put_orchestration, methods=["PUT"]),
        Route("/api/pairing", list_pairing, methods=["GET"]),
        Route("/api/pairing/{code}/approve", approve_pairing, methods=["POST"]),
        Route("/api/pairing/{code}/deny", deny_pairing, methods=["POST"]),
    ]
