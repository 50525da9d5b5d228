"""The worker API's wire format, shared by the server and the client: JSON lines on a Unix socket.

One request is one line (a JSON object, UTF-8, ``\\n``-terminated); its answer is one line. A
connection may carry many requests, one after another. docs/worker.md ("The worker API") shows
both shapes with examples.

A socket's path may be longer than the 107 bytes ``sockaddr_un`` holds (a home deep in a test's
temporary folder): both sides then reach it through ``/proc/self/fd/<dir>/<name>``, a short path
to the same file, with the folder held open for the duration of the call.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERSION = 1
MAX_LINE_BYTES = 8 * 1024 * 1024  # a request's text plus its JSON quoting stays far below this
_SUN_PATH_MAX = 107
EXIT_UNAVAILABLE = 75  # EX_TEMPFAIL: the worker's CLI could not reach the API; try again later

# The kinds of error an answer may carry, and what each means to a worker.
KIND_LEASE = "lease"  # the run is over (ended or reclaimed): stop working
KIND_REFUSED = "refused"  # the run's rights do not cover this request
KIND_INVALID = "invalid"  # a bad argument, an unknown task or profile: fix and retry
KIND_USAGE = "usage"  # the request itself is malformed
KIND_INTERNAL = "internal"  # the server failed; the request may be retried


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """One line as a JSON object; ``ValueError`` with a one-line reason otherwise."""
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON line ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise ValueError("a message is a JSON object")
    return value


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A path ``bind``/``connect`` accept for ``path``: itself when short enough, else the
    ``/proc/self/fd`` alias of its folder (valid while the block runs)."""
    text = os.fsencode(path)
    if len(text) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
