"""``POST /hooks/NAME``: the ASGI front that answers inbound webhooks on the gateway's web server.

It sits outside the dashboard's access rules (:mod:`gateway.dashboard.security`): a hook carries
its own token, so it works whether the dashboard is loopback-only or public with a token of its
own. In order, a request is answered:

* 404 when no enabled hook has that name; 405 for anything but POST;
* 400 when a ``token`` travels in the query string (URLs end up in logs: headers only);
* 503 when the hook has no token configured (the gateway refuses to start so; a dashboard
  started alone may still meet it);
* 401 unless ``Authorization: Bearer TOKEN`` or ``X-Relayboard-Token: TOKEN`` matches the hook's
  token (compared in constant time);
* 429 with ``Retry-After`` when the hook's token bucket is empty (:mod:`gateway.hooks.limits`);
* 403 when it comes over loopback from a worker's process (or one a gateway or a dispatcher
  started), as the dashboard refuses them: a worker creates tasks only as its run allows;
* 413 when the body is larger than ``max_body_bytes`` (a declared ``Content-Length`` is refused
  before a byte is read; a chunked body is cut off at the cap);
* 422 when the body is not JSON, the title comes out empty, or the command layer refuses the
  task (403 when the hook's own rights do not reach what its config asks);
* 201 with ``{"hook", "board", "task_id", "status", "created": true}`` for a new task, 200 with
  ``created: false`` when the idempotency key (``Idempotency-Key`` header, else the configured
  body field) names a task the hook already created.

Every error body is ``{"error": "one line"}``.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.commands import (
    CreateRequest,
    NotAllowed,
    Services,
    SubscribeRequest,
    Webhook,
    execute,
)
from gateway.commands.results import TaskCreated
from gateway.config import Config
from gateway.config_schema import HOOK_NAME, HookConfig
from gateway.dashboard.security import from_a_worker
from gateway.errors import ApiError
from gateway.hooks.limits import RateLimits
from gateway.hooks.template import as_text, lookup, render
from kanban import Boards
from kanban.agents.profiles import Profiles
from kanban.errors import KanbanError
from platforms.http_safety import BodyTooLarge, parse_json, read_body

log = logging.getLogger(__name__)

PREFIX = "/hooks/"
MAX_KEY_CHARS = 200
HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


class HookRefused(ApiError):
    """A hook request answered with ``status``, one line, and ``headers`` (Retry-After …)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message)
        self.headers = headers or {}


class HookFront:
    """ASGI middleware: ``/hooks/…`` is answered here; every other request goes on to ``app``.

    ``config`` gives the config in force (read on every request, so hooks the dashboard's
    config writer changed apply at once)."""

    def __init__(self, app: ASGIApp, *, config: Callable[[], Config], boards: Boards,
                 profiles: Profiles | None, limits: RateLimits | None = None) -> None:
        self.app = app
        self.config = config
        self.boards = boards
        self.profiles = profiles
        self.limits = limits or RateLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not (path.startswith(PREFIX) or path == PREFIX[:-1]):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        name = path[len(PREFIX):]
        try:
            status, payload = await self.answer(request, name, scope)
            response: Response = JSONResponse(payload, status_code=status, headers=HEADERS)
        except HookRefused as exc:
            response = JSONResponse({"error": str(exc)}, status_code=exc.status,
                                    headers={**HEADERS, **exc.headers})
        await response(scope, receive, send)

    async def answer(self, request: Request, name: str,
                     scope: Scope) -> tuple[int, dict[str, Any]]:
        config = self.config()
        hook = config.hooks.get(name)
        if hook is None or not hook.enabled:
            named = re.fullmatch(HOOK_NAME, name) is not None  # echo only what a name can be
            raise HookRefused(404, f"no hook named {name!r}" if named else "no such hook")
        if request.method != "POST":
            raise HookRefused(405, "hooks answer POST only", {"allow": "POST"})
        if "token" in request.query_params:
            raise HookRefused(400, "the token goes in a header (Authorization: Bearer … or "
                              "X-Relayboard-Token), never in the URL")
        if not hook.token:
            raise HookRefused(503, f"hook {name} has no token configured (hooks.{name}."
                              "token_env or token_file)")
        if not _authorised(request, hook.token):
            raise HookRefused(401, "a valid hook token is required", {"www-authenticate":
                                                                     "Bearer"})
        wait = self.limits.take(name, hook.rate_per_minute, hook.burst)
        if wait:
            raise HookRefused(429, f"hook {name} is over its rate limit "
                              f"({hook.rate_per_minute:g}/min, burst {hook.burst}); retry in "
                              f"{wait} s", {"retry-after": str(wait)})
        if await from_a_worker(scope, self.boards):
            raise HookRefused(403, "refused: this request comes from a worker's process (or one "
                              "the gateway started); a worker creates tasks only as its run "
                              "allows")
        data = await _json_body(request, hook.max_body_bytes)
        return await self.create(name, hook, config, data, request.headers.get("idempotency-key"))

    async def create(self, name: str, hook: HookConfig, config: Config, data: Any,
                     header_key: str | None) -> tuple[int, dict[str, Any]]:
        key = _idempotency_key(hook, data, header_key)
        title = render(hook.title, data, cap=hook.max_field_chars, single_line=True).strip()
        if not title:
            raise HookRefused(422, "the task's title came out empty (are the fields of "
                              f"hooks.{name}.title in the body?)")
        body = render(hook.body, data, cap=hook.max_field_chars, single_line=False)
        board = hook.board or config.kanban.default_board
        threads = tuple((t.platform, t.chat, t.thread) for t in hook.subscribe)
        caller = Webhook(name=name, board=board, threads=threads)
        services = Services(boards=self.boards, profiles=self.profiles, default_board=board,
                            workspace_roots=config.kanban.workspace_roots)
        create = CreateRequest(
            title=title, body=body or None, assignee=hook.assignee, triage=hook.triage,
            priority=hook.priority, workspace=hook.workspace, board=board,
            idempotency_key=f"hook:{name}:{key}" if key else None)
        try:
            made = await execute(create, caller, services)
            assert isinstance(made, TaskCreated)
            for platform, chat, thread in threads:
                await execute(SubscribeRequest(task_id=made.task.id, platform=platform,
                                               chat=chat, thread=thread, board=board),
                              caller, services)
        except NotAllowed as exc:
            raise HookRefused(403, _line(exc)) from None
        except KanbanError as exc:
            raise HookRefused(422, _line(exc)) from None
        if made.created:
            log.info("hook %s created task %s on %s", name, made.task.id, board)
        return (201 if made.created else 200), {
            "hook": name, "board": board, "task_id": made.task.id, "status": made.task.status,
            "created": made.created}


def _authorised(request: Request, token: str) -> bool:
    auth = request.headers.get("authorization", "")
    offered = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    offered = offered or request.headers.get("x-relayboard-token")
    if not offered:
        return False
    return hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), token.encode())


async def _json_body(request: Request, limit: int) -> Any:
    try:
        raw = await read_body(request, limit)
    except BodyTooLarge as exc:
        raise HookRefused(413, str(exc)) from None
    if not raw.strip():
        return {}
    try:
        return parse_json(raw)
    except ValueError as exc:
        raise HookRefused(422, str(exc)) from None


def _idempotency_key(hook: HookConfig, data: Any, header: str | None) -> str | None:
    if header is not None:
        key = header.strip()
    elif hook.idempotency_field is not None:
        key = as_text(lookup(data, hook.idempotency_field)).strip()
    else:
        return None
    if len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise HookRefused(422, f"the idempotency key must be printable text of at most "
                          f"{MAX_KEY_CHARS} characters")
    return key or None


def _line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
