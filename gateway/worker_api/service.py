"""The API's handler: a worker's request, run by the command layer as that worker's run.

A request names its task and presents the run's lease. The lease is checked against the board
(:meth:`~kanban.board.Board.active_run`) before anything else, and the request runs through
:func:`~gateway.commands.execute` as that run's :class:`~gateway.commands.Worker`, named by the
run's record (never by the worker's variables). Any verb of ``relayboard kanban`` may be asked;
the command layer gives a worker run the rights of the role table — its own task, reads, and
``create`` only when its run's record allows it — and refuses the rest in the same words as on
every other surface. Arguments are read from the verb's one declaration
(:func:`~gateway.commands.json_args.request_from_json`), with the command line's limits; what the
server sets itself (the board, the lease, ``--force``) cannot be given.

A ``complete`` without files, a ``block`` and a ``heartbeat`` skip that first read: the kernel
checks the lease inside the write's own transaction (with the same explanations), and nothing of
the run's record is needed to answer them. That is most of what workers send, and the read is a
third of the API's own cost per request.

Files (a completion's artifacts, a create's attachments) are paths in the run's workspace
(relative ones are taken from it); a path outside it is refused. The serving process, not the
worker, reads them, with staging's link-safe copy.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import click

from gateway.commands import (
    REGISTRY,
    BlockRequest,
    CompleteRequest,
    CreateRequest,
    HeartbeatRequest,
    NotAllowed,
    Request,
    Services,
    UsageError,
    Worker,
    execute,
)
from gateway.commands.json_args import request_from_json
from gateway.worker_api.wire import (
    KIND_INVALID,
    KIND_LEASE,
    KIND_REFUSED,
    KIND_USAGE,
    VERSION,
)
from kanban import Board, KanbanError, LeaseError, Run
from kanban.validation import check_slug

log = logging.getLogger(__name__)

# Set by the server, never by the arguments: the board is the envelope's, the lease is the run's
# (given beside the arguments), and a worker never forces.
_SERVER_SET = {"board": None, "lease": None, "force": False}
_FINISHING = {"complete": "completed", "block": "blocked"}
# The fields that name files for the serving process to read: only from the run's workspace.
_HOST_PATHS: dict[type[Request], str] = {CompleteRequest: "artifacts", CreateRequest: "attachments"}
_MAX_LEASE = 256
# Their kernel write checks the lease in its own transaction; the run's record is not needed.
_CHECKED_IN_WRITE: set[type[Request]] = {CompleteRequest, BlockRequest, HeartbeatRequest}


class WorkerService:
    """The API's handler: one request in, one answer out (see :mod:`gateway.worker_api.wire`)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._handle(message)
        except LeaseError as exc:
            return _error(KIND_LEASE, str(exc))
        except NotAllowed as exc:
            return _error(KIND_REFUSED, str(exc))
        except UsageError as exc:
            return _error(KIND_USAGE, str(exc))
        except KanbanError as exc:
            return _error(KIND_INVALID, str(exc))
        except click.ClickException as exc:
            return _error(KIND_USAGE, exc.format_message())

    async def _handle(self, message: dict[str, Any]) -> dict[str, Any]:
        if message.get("v") != VERSION:
            raise UsageError(f"unsupported request version {message.get('v')!r} "
                             f"(this server speaks {VERSION})")
        verb = message.get("verb")
        cls = REGISTRY.get(tuple(verb.split())) if isinstance(verb, str) else None
        if cls is None or not isinstance(verb, str):
            raise UsageError(f"unknown verb {str(verb)[:40]!r} (the verbs of `relayboard "
                             "kanban`, e.g. complete, block, comment, show)")
        task_id, lease = message.get("task_id"), message.get("lease")
        if isinstance(task_id, bool) or not isinstance(task_id, int):
            raise UsageError("task_id must be the run's task id (an integer)")
        if not isinstance(lease, str) or not 0 < len(lease) <= _MAX_LEASE:
            raise UsageError("lease must be the run's lease")
        slug = message.get("board") or self.services.default_board
        if not isinstance(slug, str):
            raise UsageError("board must be a board's slug")
        check_slug(slug)
        args = message.get("args") or {}
        if not isinstance(args, dict):
            raise UsageError("args must be a JSON object")

        board = await self.services.boards.open(slug)
        try:
            fields = dict(args)
            paths = _HOST_PATHS.get(cls)
            files = paths is not None and paths in fields
            run = (None if cls in _CHECKED_IN_WRITE and not files
                   else await board.active_run(task_id, lease))
            caller = Worker(task_id=task_id, run_id=None if run is None else run.id,
                            lease=lease, board=slug, profile=None if run is None else run.profile)
            if files and run is not None and paths is not None:
                fields[paths] = _confined(run, fields[paths])
            request = request_from_json(cls, fields, chat=False, fixed=_fixed(cls, slug))
            result = await execute(request, caller, self.services)
        except LeaseError:
            # Before the check, or inside the command: a retry whose first attempt committed.
            replay = await self._replayed(board, verb, task_id, lease)
            if replay is None:
                raise
            return replay
        return {"ok": True, "result": {"json": result.to_json(), "text": result.text()}}

    @staticmethod
    async def _replayed(board: Board, verb: str, task_id: int,
                        lease: str) -> dict[str, Any] | None:
        """The answer to a ``complete``/``block`` retried after its first attempt committed
        (the server died before answering): that run, ended the way the retry asks."""
        ended = _FINISHING.get(verb)
        if ended is None:
            return None
        run = await board.run_by_lease(task_id, lease)
        if run is None or run.status != ended:
            return None
        task = await board.get_task(task_id)
        return {"ok": True, "replayed": True,
                "result": {"json": {"id": task.id, "status": task.status},
                           "text": f"Task {task_id} {task.status} (already recorded)"}}


def _confined(run: Run, paths: Any) -> list[str]:
    """Each artifact as an absolute path inside the run's workspace; a path that leaves it is
    refused (``..``, an absolute path elsewhere). Links are the staging's to refuse: it reads
    nothing through one."""
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise UsageError("files must be given as a list of paths in your workspace")
    if not run.workspace:
        if paths:
            raise NotAllowed("this run has no workspace to give files from")
        return []
    root = Path(os.path.normpath(run.workspace))
    out = []
    for given in paths:
        path = Path(os.path.normpath(root / given))
        if path != root and root not in path.parents:
            raise NotAllowed(f"file {Path(given).name[:80]!r} is outside your workspace; "
                             "write it there and give its path in it")
        out.append(str(path))
    return out


def _fixed(cls: type[Request], slug: str) -> dict[str, Any]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return {name: slug if name == "board" else value
            for name, value in _SERVER_SET.items() if name in names}


_FIELDS: dict[type[Request], frozenset[str]] = {}


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "error": message.splitlines()[0] if message else kind}
