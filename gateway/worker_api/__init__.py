"""The worker API: the board, served to workers over a Unix socket, by the lease of their run.

A worker holds no database path or credential. The process that started it (``gateway run`` or
``kanban dispatch``) serves ``<home>/run/worker-api.sock``; the worker finds it in
``RELAYBOARD_API`` and its ``relayboard kanban …`` verbs, ``relayboard mcp`` and the built-in
worker's tools send their requests there (:mod:`~gateway.worker_api.client`). The server
(:mod:`~gateway.worker_api.server`) hands each to
:class:`~gateway.worker_api.service.WorkerService`, which runs it through the command layer as
that run's worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from gateway.worker_api.server import SOCKET_NAME, WorkerApiServer, socket_path

if TYPE_CHECKING:
    from gateway.commands import Services

__all__ = ["SOCKET_NAME", "WorkerApiServer", "serving", "socket_path", "worker_api_server"]


def worker_api_server(services: Services, path: Path) -> WorkerApiServer:
    from gateway.worker_api.service import WorkerService

    return WorkerApiServer(path, WorkerService(services))


@contextlib.asynccontextmanager
async def serving(services: Services, path: Path, *,
                  wait: float = 10.0) -> AsyncIterator[WorkerApiServer]:
    """Serve the API at ``path`` for the duration of the block. The block starts once the
    socket is bound here, or once another live server of the same home answers there (this
    one then takes over if that one goes)."""
    server = worker_api_server(services, path)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(wait):
            await server.served.wait()
        try:
            yield server
        finally:
            group.cancel_scope.cancel()
