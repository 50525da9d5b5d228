"""A command-layer request, sent by a worker to its API instead of run against a database.

:func:`run_remote` is what :meth:`gateway.cli.invocation.AppContext.run` does inside a worker:
the request's declared fields travel as JSON arguments, the server rebuilds the request from the
same declaration, and the answer comes back as a
:class:`~gateway.commands.results.Relayed` that prints like the local one (``--json`` prints
the same JSON).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from gateway.commands.results import Relayed
from gateway.worker_api.client import DEFAULT_PATIENCE, ApiError, Connection
from gateway.worker_api.wire import KIND_LEASE, KIND_REFUSED
from kanban.errors import KanbanError, LeaseError

_NOT_SENT = ("board", "lease", "force")


def request_args(request: Any) -> dict[str, Any]:
    """The request's declared fields as JSON arguments (tuples as lists; the envelope's fields
    — board, lease, force — left out: the server fills those in itself)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(request):
        if f.name in _NOT_SENT or "param" not in f.metadata:
            continue
        value = getattr(request, f.name)
        if value is None or value == () or value is False:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _patience(environ: Mapping[str, str]) -> float:
    """How long to wait for a server: ``RELAYBOARD_API_PATIENCE`` seconds (0.1 to 3600), else
    :data:`~gateway.worker_api.client.DEFAULT_PATIENCE`."""
    try:
        value = float(environ.get("RELAYBOARD_API_PATIENCE") or DEFAULT_PATIENCE)
    except ValueError:
        return DEFAULT_PATIENCE
    return min(max(value, 0.1), 3600.0) if math.isfinite(value) else DEFAULT_PATIENCE


@contextlib.contextmanager
def remote_runner(api: Path,
                  environ: Mapping[str, str]) -> Iterator[Callable[[Any], Awaitable[Any]]]:
    """A worker's ``run(request)`` (see :mod:`gateway.builtin_worker.kanban_tools`) that sends
    each request to the API from a thread, so the worker's loop keeps running meanwhile; its
    requests share one connection, open until the block ends."""
    with Connection(api) as connection:

        async def run(request: Any) -> Relayed:
            return await anyio.to_thread.run_sync(run_remote, api, environ, request, connection)

        yield run


def run_remote(api: Path, environ: Mapping[str, str], request: Any,
               connection: Connection | None = None) -> Relayed:
    """Send ``request`` as the worker ``environ`` describes (on ``connection``, else on one of
    its own); errors become the same kernel errors a local run raises (a stale lease is a
    :class:`LeaseError`)."""
    from gateway.commands import NotAllowed

    task_id = int(environ["RELAYBOARD_TASK_ID"])
    verb = " ".join(request.PATH)
    try:
        with contextlib.nullcontext(connection) if connection else Connection(api) as channel:
            answer = channel.call(verb, request_args(request), task_id=task_id,
                                  lease=environ["RELAYBOARD_LEASE"],
                                  board=request.board or environ.get("RELAYBOARD_BOARD") or None,
                                  patience=_patience(environ))
    except ApiError as exc:
        if exc.kind == KIND_LEASE:
            raise LeaseError(str(exc), task_id) from None
        if exc.kind == KIND_REFUSED:
            raise NotAllowed(str(exc)) from None
        raise KanbanError(str(exc)) from None
    return Relayed(answer.get("json"), str(answer.get("text") or ""))
