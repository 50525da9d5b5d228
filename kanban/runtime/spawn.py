"""Starting, identifying and stopping worker processes (ARCHITECTURE section 6).

Everything here is mechanism; the dispatcher decides *when*. The pieces:

* :func:`relayboard_argv` — how to run our own CLI: the ``relayboard`` shim on PATH, else the
  running interpreter with ``-m gateway`` (PATH-independent; a test runs it for real).
* :func:`build_argv` / :func:`worker_env` — the worker's command line and environment.
* :func:`popen_kwargs` — per-platform process-creation flags (no console window on Windows).
* :class:`WorkerProcess` — one worker, either our child (we hold the :class:`subprocess.Popen`)
  or adopted from a dispatcher that died (pid + start time from ``task_runs``). A pid is only
  ever taken for our worker when its start time matches, so a recycled pid is never signalled.
* log rotation and tails for ``logs/<task>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from kanban.errors import SpawnError

log = logging.getLogger(__name__)

# subprocess.CREATE_NO_WINDOW only exists on Windows builds of Python; the value is fixed by Win32.
CREATE_NO_WINDOW = 0x08000000
KANBAN_WORKER_SKILL = "kanban-worker"
# The module that really runs the CLI (``python -m gateway`` runs gateway/__main__.py).
CLI_MODULE = "gateway"
# Two readings of one process's start time agree to the clock tick; a recycled pid started later.
START_TIME_TOLERANCE = 0.5


# ---- executable and command line ------------------------------------------------------------

def relayboard_argv(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """Our own CLI as an argv prefix: the PATH shim first (familiar in ``ps``), else the running
    interpreter with ``-m gateway`` — cron, systemd and launchd often run with a stripped PATH."""
    found = which("relayboard")
    if found:
        return [found]
    return [sys.executable, "-m", CLI_MODULE]


@dataclass(frozen=True)
class TemplateValues:
    task_id: int
    board: str
    workspace: str
    prompt_file: str
    model: str


def expand_template(template: Sequence[str], values: TemplateValues) -> list[str]:
    """Fill ``{task_id} {board} {workspace} {prompt_file} {model}`` in each word. Other braces are
    left alone (a template is not a format string: ``{"a": 1}`` stays as written)."""
    mapping = {
        "{task_id}": str(values.task_id),
        "{board}": values.board,
        "{workspace}": values.workspace,
        "{prompt_file}": values.prompt_file,
        "{model}": values.model,
    }
    out = []
    for word in template:
        for key, value in mapping.items():
            word = word.replace(key, value)
        out.append(word)
    return out


def build_argv(
    template: Sequence[str],
    values: TemplateValues,
    *,
    model_override: str | None,
    has_worker_skill: bool,
) -> list[str]:
    """The worker's argv: the expanded template, then ``-m MODEL`` when the task overrides the
    model (unless the template already places ``{model}`` itself), then ``--skills kanban-worker``
    only when the profile really has that skill — agent CLIs refuse to start on an unknown one."""
    argv = expand_template(template, values)
    if model_override and not any("{model}" in word for word in template):
        argv += ["-m", model_override]
    if has_worker_skill:
        argv += ["--skills", KANBAN_WORKER_SKILL]
    return argv


def worker_env(
    base: Mapping[str, str],
    *,
    profile_env: Mapping[str, str],
    profile_home: Path,
    profile_name: str,
    board: str,
    db_path: Path,
    task_id: int,
    run_id: int,
    lease: str,
    workspace: Path,
) -> dict[str, str]:
    """The environment of section 6. ``RELAYBOARD_HOME`` is the profile's home so its own config
    applies; it is set even when that directory does not exist (the name still travels)."""
    env = dict(base)
    env.update(profile_env)
    env.update({
        "RELAYBOARD_HOME": str(profile_home),
        "RELAYBOARD_PROFILE": profile_name,
        "RELAYBOARD_BOARD": board,
        "RELAYBOARD_DB": str(db_path),
        "RELAYBOARD_TASK_ID": str(task_id),
        "RELAYBOARD_RUN_ID": str(run_id),
        "RELAYBOARD_LEASE": lease,
        "RELAYBOARD_WORKSPACE": str(workspace),
        "PYTHONUNBUFFERED": env.get("PYTHONUNBUFFERED", "1"),
    })
    return env


def popen_kwargs(platform: str = sys.platform) -> dict[str, Any]:
    """Process-creation flags: on Windows no console window ever flashes up; elsewhere the worker
    leads its own session, so TERM/KILL reach its children and a Ctrl-C aimed at the dispatcher's
    terminal does not kill the fleet."""
    if platform == "win32":
        return {"creationflags": CREATE_NO_WINDOW}
    return {"start_new_session": True}


# ---- logs -------------------------------------------------------------------------------------

def rotate_log(path: Path, *, max_bytes: int, backups: int) -> bool:
    """Rotate ``path`` → ``path.1`` → … → ``path.N`` when it reached ``max_bytes``.

    The file is copied then truncated in place rather than renamed: a running worker keeps its
    descriptor (opened with O_APPEND), so it carries on writing at the new end of the file.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size < max_bytes:
        return False
    try:
        if backups > 0:
            for index in range(backups - 1, 0, -1):
                older = path.with_name(f"{path.name}.{index}")
                if older.exists():
                    os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
            shutil.copyfile(path, path.with_name(f"{path.name}.1"))
        with path.open("r+b") as handle:
            handle.truncate(0)
    except OSError as exc:
        log.warning("could not rotate %s: %s", path, exc)
        return False
    return True


def open_log(path: Path, *, max_bytes: int, backups: int) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(path, max_bytes=max_bytes, backups=backups)
    return path.open("ab", buffering=0)


def log_tail(path: Path, *, max_bytes: int = 2_000, max_lines: int = 20) -> str:
    """The end of a worker log, for crash events (never raises)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-max_lines:]).strip()


# ---- process identity ---------------------------------------------------------------------------

def process_start_time(pid: int) -> float | None:
    """The OS start time of ``pid`` (epoch seconds), or None when there is no such live process."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.Error, OSError, ValueError):
        return None


def is_same_process(pid: int | None, started_at: float | None) -> bool:
    """True when ``pid`` is alive AND is the process that started at ``started_at``.

    Without a recorded start time we cannot tell our worker from a stranger who got its pid,
    so the answer is False: better to reclaim a live worker (its lease goes stale) than to
    extend or signal somebody else's process.
    """
    if pid is None or pid <= 0 or started_at is None:
        return False
    current = process_start_time(pid)
    return current is not None and abs(current - started_at) <= START_TIME_TOLERANCE


# ---- worker processes -----------------------------------------------------------------------

@dataclass(frozen=True)
class SpawnRequest:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    log_max_bytes: int = 5_000_000
    log_backups: int = 3
    platform: str = sys.platform


def find_run_worker(run_id: int, db_path: str) -> tuple[int, float] | None:
    """(pid, start time) of the live process started for ``run_id`` of the board at ``db_path``.

    Found by the §6 environment every worker is started with, for the rare run whose pid was
    never recorded (its dispatcher died between the claim and the spawn's bookkeeping). A worker's
    own children inherit that environment, so the oldest match — the worker itself — wins.
    """
    wanted = str(run_id)
    found: list[tuple[float, int]] = []
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get("RELAYBOARD_RUN_ID") == wanted and env.get("RELAYBOARD_DB") == db_path:
            found.append((float(proc.info["create_time"]), int(proc.info["pid"])))
    if not found:
        return None
    started, pid = min(found)
    return pid, started


class WorkerProcess:
    """One worker. ``popen`` is set when we started it (exit code known); an adopted worker is
    known only by pid and start time."""

    def __init__(self, pid: int, started_at: float | None,
                 popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.started_at = started_at
        self.popen = popen
        self._pidfd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exited = asyncio.Event()
        self._gone = False

    @property
    def own(self) -> bool:
        return self.popen is not None

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None

    def poll(self) -> bool:
        """True while the process runs. Reaps our own child as soon as it exited."""
        if self._gone:
            return False
        if self.popen is not None:
            running = self.popen.poll() is None
        else:
            running = is_same_process(self.pid, self.started_at)
        if not running:
            self._mark_gone()
        return running

    def watch(self, on_exit: Callable[[WorkerProcess], None]) -> None:
        """Call ``on_exit`` (on the event loop) as soon as the process ends, where the OS lets us
        wait on a process handle (Linux pidfd); elsewhere the dispatcher's tick notices."""
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None or self._pidfd is not None or self._gone:
            return
        try:
            fd: int = pidfd_open(self.pid)
        except OSError:
            return
        loop = asyncio.get_running_loop()
        self._pidfd, self._loop = fd, loop

        def readable() -> None:
            # A readable pidfd means the process ended: reap it (our child) and report.
            if self.poll() and self.popen is None:
                self._mark_gone()
            self.close()
            on_exit(self)

        loop.add_reader(fd, readable)

    def _mark_gone(self) -> None:
        self._gone = True
        self._exited.set()

    async def wait(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the process to end; True when it did."""
        deadline = time.monotonic() + within
        while self.poll():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited.wait(), min(remaining, 0.05))
        return True

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to the worker's process group (its own session), re-checking identity
        first so a recycled pid is never hit."""
        if not self.poll():
            return False
        if self.popen is None and not is_same_process(self.pid, self.started_at):
            return False
        try:
            if hasattr(os, "killpg"):
                try:
                    os.killpg(self.pid, sig)
                    return True
                except (ProcessLookupError, PermissionError):
                    pass  # not a group leader (started elsewhere): signal the process alone
            os.kill(self.pid, sig)
            return True
        except (ProcessLookupError, PermissionError, OSError):
            return False

    async def terminate(self, grace: float) -> int | None:
        """TERM, wait ``grace`` seconds, then KILL; returns the exit code when known."""
        if self.poll():
            self.signal(signal.SIGTERM)
            if not await self.wait(grace):
                self.signal(getattr(signal, "SIGKILL", signal.SIGTERM))
                await self.wait(max(grace, 5.0))
        return self.returncode

    def detach(self) -> None:
        """Stop watching and let the process run on; a later dispatcher adopts it. Our Popen is
        parked (and polled now and then) so the child is reaped instead of left a zombie."""
        self.close()
        if self.popen is not None and self.popen.poll() is None:
            _park(self.popen)

    def close(self) -> None:
        """Stop watching (the process itself is left alone)."""
        if self._pidfd is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._pidfd)
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None


_parked: list[subprocess.Popen[bytes]] = []


def _park(popen: subprocess.Popen[bytes]) -> None:
    _parked[:] = [p for p in _parked if p.poll() is None]
    _parked.append(popen)


def start_worker(request: SpawnRequest) -> WorkerProcess:
    """Start the worker with its output appended to its log. Raises :class:`SpawnError`."""
    try:
        handle = open_log(request.log_path, max_bytes=request.log_max_bytes,
                          backups=request.log_backups)
    except OSError as exc:
        raise SpawnError(f"cannot open worker log {request.log_path.name}: {exc}") from exc
    try:
        popen = subprocess.Popen(
            request.argv,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=str(request.cwd),
            env=request.env,
            close_fds=True,
            **popen_kwargs(request.platform),
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise SpawnError(f"cannot start {request.argv[0]!r}: {exc}") from exc
    finally:
        handle.close()  # the child holds its own descriptor
    started = process_start_time(popen.pid)
    return WorkerProcess(popen.pid, started, popen)
