"""The worker's side of the API: one call, one answer, retried while the server is away.

Standard library only, and blocking: the worker's CLI makes one call and exits, and its start-up
time is part of every report. The built-in worker's loop runs calls on a thread.

:func:`call` makes one call on a connection of its own. A process that makes many (the built-in
worker, ``relayboard mcp``) keeps a :class:`Connection` open for its life, so a call after the
first costs a send and a receive, not a connect and an accept.

A call that cannot reach a server (no socket, connection refused, the server died mid-request) is
retried with backoff until ``patience`` seconds have passed: a dispatcher that restarts serves the
same socket and adopts its workers. Then :class:`ApiUnavailable` (the CLI exits 75). A kept
connection the server has closed since the last call (it restarted) is replaced at once. A
retried ``complete`` or ``block`` whose first attempt did commit is answered as done by the
server, so a retry never turns a success into an error.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway.errors import WorkerApiError, WorkerApiUnavailable
from gateway.worker_api.wire import (
    KIND_INTERNAL,
    MAX_LINE_BYTES,
    VERSION,
    decode,
    encode,
    reachable,
)

DEFAULT_PATIENCE = 60.0
_FIRST_DELAY = 0.05
_MAX_DELAY = 2.0
_ids = itertools.count(1)


ApiUnavailable = WorkerApiUnavailable


ApiError = WorkerApiError


def call(path: Path, verb: str, args: dict[str, Any], *, task_id: int, lease: str,
         board: str | None, patience: float = DEFAULT_PATIENCE,
         timeout: float = 120.0) -> dict[str, Any]:
    """Send one request and return the answer's ``result`` part (``{"json": …, "text": …}``);
    :class:`ApiError` for an answered error, :class:`ApiUnavailable` when nobody answers."""
    with Connection(path) as connection:
        return connection.call(verb, args, task_id=task_id, lease=lease, board=board,
                               patience=patience, timeout=timeout)


class Connection:
    """A connection to the API kept open across calls; calls from several threads take turns.
    Opened by the first call; :meth:`close` (or the ``with`` block's end) closes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._turn = threading.Lock()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with self._turn:
            self._drop()

    def call(self, verb: str, args: dict[str, Any], *, task_id: int, lease: str,
             board: str | None, patience: float = DEFAULT_PATIENCE,
             timeout: float = 120.0) -> dict[str, Any]:
        """As :func:`call`, on this connection."""
        request = {"v": VERSION, "id": next(_ids), "verb": verb, "task_id": task_id,
                   "lease": lease, "board": board, "args": args}
        data = encode(request)
        deadline = time.monotonic() + patience
        delay = _FIRST_DELAY
        with self._turn:
            while True:
                kept = self._sock is not None
                try:
                    answer = self._exchange(data, timeout)
                except (OSError, ConnectionError, EOFError) as exc:
                    self._drop()
                    if kept:
                        continue  # closed by the server since the last call: a new one now
                    if time.monotonic() + delay > deadline:
                        raise ApiUnavailable(f"the worker API at {self.path.name} did not "
                                             f"answer ({exc.__class__.__name__})") from None
                    time.sleep(delay)
                    delay = min(delay * 2, _MAX_DELAY)
                    continue
                break
        if answer.get("ok") is True:
            result = answer.get("result")
            return result if isinstance(result, dict) else {}
        kind = str(answer.get("kind") or KIND_INTERNAL)
        raise ApiError(kind, str(answer.get("error") or "the worker API refused the request"))

    def _exchange(self, data: bytes, timeout: float) -> dict[str, Any]:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                with reachable(self.path) as address:
                    sock.settimeout(timeout)
                    sock.connect(address)
            except BaseException:
                sock.close()
                raise
            self._sock = sock
        sock = self._sock
        sock.settimeout(timeout)
        sock.sendall(data)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection before answering")
            chunks.append(chunk)
            size += len(chunk)
            if chunk.endswith(b"\n"):
                break  # an answer is one line (JSON text holds no raw newline)
            if size > MAX_LINE_BYTES:
                raise EOFError("the answer is larger than a line may be")
        try:
            return decode(b"".join(chunks))
        except ValueError as exc:
            raise EOFError(str(exc)) from None

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
