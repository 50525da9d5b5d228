"""Serving the worker API on ``<home>/run/worker-api.sock`` (folder 0700, socket 0600).

The process that starts workers (``gateway run`` or ``kanban dispatch``) serves it. The path is
the home's, not the process's: a dispatcher that restarts binds it again and the workers of the
one that died reach it with the same ``RELAYBOARD_API``. When a live server already answers there
(another dispatcher of this home), this one leaves it be and looks again every
:data:`TAKEOVER_SECONDS`, taking the socket over if that server has gone.

Each connection is read line by line; each line is handed to the handler, and its answer written
back before the next line is read. Connections run side by side, so a hundred workers completing
at once reach the board together and their writes share commits (the board groups concurrent
writes into one transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from gateway.worker_api.wire import (
    KIND_INTERNAL,
    KIND_USAGE,
    MAX_LINE_BYTES,
    decode,
    encode,
    reachable,
)
from kanban.storage.modes import private_dir

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
SOCKET_NAME = "worker-api.sock"
TAKEOVER_SECONDS = 5.0


def socket_path(home: Path) -> Path:
    return home / "run" / SOCKET_NAME


class WorkerApiServer:
    """The socket and its connections. :meth:`serve` runs until cancelled."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.serving = anyio.Event()  # bound here
        self.served = anyio.Event()  # bound here, or another live server answers at the path
        self._connections: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        server: asyncio.base_events.Server | None = None
        try:
            while server is None:
                sock = await anyio.to_thread.run_sync(self._bind)
                if sock is None:
                    if not self.served.is_set():
                        log.info("worker API: another process of this home serves %s",
                                 self.path)
                    self.served.set()
                    await anyio.sleep(TAKEOVER_SECONDS)
                    continue
                server = await asyncio.start_unix_server(self._connection, sock=sock,
                                                         limit=MAX_LINE_BYTES)
            self.serving.set()
            self.served.set()
            log.info("worker API on %s", self.path)
            await anyio.sleep_forever()
        finally:
            if server is not None:
                server.close()
                for task in list(self._connections):
                    task.cancel()
                with contextlib.suppress(OSError):
                    self.path.unlink()

    def _bind(self) -> socket.socket | None:
        """A listening socket at :attr:`path`, or None while a live server holds it."""
        private_dir(self.path.parent)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with reachable(self.path) as address:
                try:
                    sock.bind(address)
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or self._alive(address):
                        raise
                    os.unlink(address)  # a socket left by a server that died
                    sock.bind(address)
                os.chmod(address, 0o600)
            sock.listen(256)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                return None
            raise
        sock.setblocking(False)
        return sock

    @staticmethod
    def _alive(address: str) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(address)
            except OSError:
                return False
            return True

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return  # the worker hung up
                except asyncio.LimitOverrunError:
                    writer.write(encode({"ok": False, "kind": KIND_USAGE,
                                         "error": "a request is one line of at most "
                                                  f"{MAX_LINE_BYTES} bytes"}))
                    await writer.drain()
                    return
                writer.write(encode(await self._answer(line)))
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            message = decode(line)
        except ValueError as exc:
            return {"ok": False, "kind": KIND_USAGE, "error": str(exc)}
        try:
            answer = await self.handler(message)
        except Exception:  # the handler maps every expected error; this is a bug, logged
            board, task_id = message.get("board"), message.get("task_id")
            log.exception("worker API: request %r failed", message.get("verb"), extra={
                "board": board if isinstance(board, str) else None,
                "task_id": task_id if isinstance(task_id, int) else None})
            answer = {"ok": False, "kind": KIND_INTERNAL,
                      "error": "the worker API failed on this request; see the gateway log"}
        if "id" in message:
            answer["id"] = message["id"]
        return answer
