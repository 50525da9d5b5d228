"""A worker that tries what ``$PROBE_CHECKS`` lists and reports what its sandbox allowed.

``$PROBE_CHECKS`` is a JSON list of checks, each ``[action, arg…]``:

* ``read PATH`` / ``list DIR`` / ``write PATH`` (creates or replaces it) / ``tmp`` (a file made
  with :mod:`tempfile`, so in ``$TMPDIR``);
* ``environ PID`` — read ``/proc/PID/environ``;
* ``signal PID SIGNUM`` (``parent`` as PID: this worker's parent, the dispatcher);
* ``connect PORT`` — a TCP connection to 127.0.0.1; ``http URL`` — a GET;
* ``run ARG…`` — a program (non-zero exit: ``exit N: <stderr tail>``).

Each outcome is ``ok`` or the error's name (``EACCES``, ``EPERM``, …). Run as
``probe.py complete [ARTIFACT]`` it completes its task with the outcomes as JSON in the result
(declaring ARTIFACT, a file it writes in its workspace); ``probe.py print`` only prints them.
Only the standard library is used until it completes, so any Python can run it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def attempt(action: str, args: list[str]) -> str:
    try:
        if action == "read":
            Path(args[0]).read_bytes()
        elif action == "list":
            os.listdir(args[0])
        elif action == "write":
            Path(args[0]).write_text("written by a worker", encoding="utf-8")
        elif action == "tmp":
            fd, _ = tempfile.mkstemp()
            os.write(fd, b"scratch")
            os.close(fd)
        elif action == "environ":
            Path(f"/proc/{args[0]}/environ").read_bytes()
        elif action == "signal":
            pid = os.getppid() if args[0] == "parent" else int(args[0])
            os.kill(pid, int(args[1]))
        elif action == "connect":
            socket.create_connection(("127.0.0.1", int(args[0])), timeout=10).close()
        elif action == "http":
            with urllib.request.urlopen(args[0], timeout=10) as response:
                response.read()
        elif action == "run":
            done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != 0:
                return f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
        else:
            return f"unknown action {action}"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return "ok"


def outcomes() -> dict[str, str]:
    checks = json.loads(os.environ.get("PROBE_CHECKS", "[]"))
    return {" ".join(map(str, check)): attempt(str(check[0]), [str(a) for a in check[1:]])
            for check in checks}


def complete(result: str, artifacts: list[str]) -> None:
    """Complete through the worker API, as every worker does (it holds no database)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from gateway.worker_api.client import call

    call(Path(os.environ["RELAYBOARD_API"]), "complete",
         {"result": result, "artifacts": artifacts},
         task_id=int(os.environ["RELAYBOARD_TASK_ID"]), lease=os.environ["RELAYBOARD_LEASE"],
         board=os.environ.get("RELAYBOARD_BOARD"))


def main(argv: list[str]) -> int:
    found = outcomes()
    print(json.dumps(found), flush=True)
    if argv and argv[0] == "complete":
        artifacts = []
        if len(argv) > 1:
            Path(argv[1]).write_text("an artifact", encoding="utf-8")
            artifacts.append(argv[1])
        complete(json.dumps(found), artifacts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
