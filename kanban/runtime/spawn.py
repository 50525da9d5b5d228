"""Starting, identifying and stopping worker processes.

Everything here is mechanism; the dispatcher decides *when*. The pieces:

* :func:`relayboard_argv` — how the built-in worker runs our own CLI (``sys.executable -m
  gateway``); a profile's own ``sh -c '… relayboard …'`` finds it through the PATH shim of
  :mod:`kanban.runtime.workerenv`.
* :func:`build_argv` (:mod:`kanban.runtime.template`) / :func:`worker_env`
  (:mod:`kanban.runtime.workerenv`) — the worker's command line, with substituted values that
  cannot change the command, and its allowlisted environment.
* :func:`popen_kwargs` — per-platform process-creation flags (no console window on Windows).
* :func:`start_worker` — the worker, its output piped through :mod:`kanban.runtime.logpump`,
  a relay process that enforces the log cap as it writes and outlives the gateway; under the
  worker's Landlock ruleset when it has one (:mod:`kanban.runtime.sandbox`).
* :class:`WorkerProcess` — one worker, either our child (we hold the :class:`subprocess.Popen`)
  or adopted from a dispatcher that died (pid + start time from ``task_runs``). A pid is only
  ever taken for our worker when its start time matches, so a recycled pid is never signalled.
* private files (0600 in 0700 folders) and tails of ``logs/<task>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from kanban.errors import SpawnError
from kanban.runtime import logpump
from kanban.runtime.landlock import Ruleset, run_confined
from kanban.runtime.template import (
    KANBAN_WORKER_SKILL,
    TemplateValues,
    build_argv,
    expand_template,
)
from kanban.runtime.workerenv import worker_env
from kanban.storage.modes import PRIVATE_FILE_MODE, private_dir

log = logging.getLogger(__name__)

# subprocess.CREATE_NO_WINDOW only exists on Windows builds of Python; the value is fixed by Win32.
CREATE_NO_WINDOW = 0x08000000
# The module that really runs the CLI (``python -m gateway`` runs gateway/__main__.py).
CLI_MODULE = "gateway"
# Two readings of one process's start time agree to the clock tick; a recycled pid started later.
START_TIME_TOLERANCE = 0.5
# After the worker exits, its relay needs a moment to write the last output (a crash's log tail
# is read from the file); a grandchild still holding the pipe does not hold up the reaping longer.
PUMP_DRAIN_SECONDS = 2.0


# ---- executable and command line ------------------------------------------------------------

def relayboard_argv() -> list[str]:
    """Our own CLI as an argv prefix for the built-in worker: the running interpreter with
    ``-m gateway`` — the very installation that runs now, whatever PATH says (cron, systemd and
    launchd often run with a stripped PATH; another ``relayboard`` may come first on it)."""
    return [sys.executable, "-m", CLI_MODULE]


def popen_kwargs(platform: str = sys.platform) -> dict[str, Any]:
    """Process-creation flags: on Windows no console window ever flashes up; elsewhere the worker
    leads its own session, so TERM/KILL reach its children and a Ctrl-C aimed at the dispatcher's
    terminal does not kill the fleet."""
    if platform == "win32":
        return {"creationflags": CREATE_NO_WINDOW}
    return {"start_new_session": True}


# ---- logs and private files ----------------------------------------------------------------------

def write_private_text(path: Path, text: str) -> None:
    """Write ``path`` as 0600 in a 0700 folder (prompts hold task bodies; logs, a worker's
    output). An older file is tightened, never loosened."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        if hasattr(os, "fchmod"):
            os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
        handle.write(text)


def _prepare_log(path: Path) -> None:
    # Created here (not only by the relay) so a log that cannot be made is a SpawnError now.
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)


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
    # The worker's Landlock ruleset (kanban.runtime.sandbox); None: unconfined. The caller
    # closes it.
    sandbox: Ruleset | None = None


def find_run_worker(run_id: int, lease: str) -> tuple[int, float] | None:
    """(pid, start time) of the live process started for run ``run_id`` holding ``lease``.

    Found by the ``RELAYBOARD_RUN_ID`` and ``RELAYBOARD_LEASE`` every worker is started with, for
    the rare run whose pid was never recorded (its dispatcher died between the claim and the
    spawn's bookkeeping). A worker's own children inherit that environment, so the oldest
    match — the worker itself — wins.
    """
    wanted = str(run_id)
    found: list[tuple[float, int]] = []
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get("RELAYBOARD_RUN_ID") == wanted and env.get("RELAYBOARD_LEASE") == lease:
            found.append((float(proc.info["create_time"]), int(proc.info["pid"])))
    if not found:
        return None
    started, pid = min(found)
    return pid, started


class WorkerProcess:
    """One worker. ``popen`` is set when we started it (exit code known); an adopted worker is
    known only by pid and start time. ``pump`` is its log relay, when we started that too: the
    worker counts as running until the relay has written its last output (bounded by
    :data:`PUMP_DRAIN_SECONDS`), so a crash's log tail is complete when it is read."""

    def __init__(self, pid: int, started_at: float | None,
                 popen: subprocess.Popen[bytes] | None = None,
                 pump: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.started_at = started_at
        self.popen = popen
        self.pump = pump
        self._pidfds: dict[int, int] = {}  # pid → pidfd being watched
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_exit: Callable[[WorkerProcess], None] | None = None
        self._watched = False
        self._exited = asyncio.Event()
        self._exit_seen: float | None = None
        self._gone = False

    @property
    def own(self) -> bool:
        return self.popen is not None

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None

    def _worker_running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        fd = self._pidfds.get(self.pid)
        if fd is not None:
            # An adopted worker being watched: its pidfd turns readable when it exits, and
            # until then the pid cannot have been recycled. A zero-timeout select is one cheap
            # system call, where a psutil probe reads /proc on the event loop.
            try:
                return not select.select([fd], [], [], 0)[0]
            except (OSError, ValueError):
                pass
        return is_same_process(self.pid, self.started_at)

    def poll(self) -> bool:
        """True while the process runs (or its relay still drains its output). Reaps our own
        child as soon as it exited."""
        if self._gone:
            return False
        if self._worker_running():
            return True
        if self.pump is not None and self.pump.poll() is None:
            if self._exit_seen is None:
                self._exit_seen = time.monotonic()
            if time.monotonic() - self._exit_seen < PUMP_DRAIN_SECONDS:
                return True
        self._mark_gone()
        return False

    @property
    def watched(self) -> bool:
        """True while :meth:`watch` will report this process's end by itself; False where it
        cannot (no pidfd), so whoever waits for exits must poll this one (bounded)."""
        return self._watched

    def watch(self, on_exit: Callable[[WorkerProcess], None]) -> None:
        """Call ``on_exit`` (on the event loop) as soon as the process ends, where the OS lets us
        wait on a process handle (Linux ≥ 5.3 pidfd); elsewhere :attr:`watched` stays False and
        the dispatcher falls back to a bounded poll (``exit_poll_seconds``)."""
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None or self._pidfds or self._gone:
            return
        loop = asyncio.get_running_loop()
        self._loop, self._on_exit = loop, on_exit
        pids = [self.pid] + ([self.pump.pid] if self.pump is not None else [])
        for pid in pids:
            try:
                fd: int = pidfd_open(pid)
            except OSError:
                continue
            self._pidfds[pid] = fd
            loop.add_reader(fd, self._pid_ended, pid)
        # The worker's own pidfd is what matters: without it a worker's end goes unreported
        # (its relay's pidfd alone only says the relay ended).
        self._watched = self.pid in self._pidfds

    def _pid_ended(self, pid: int) -> None:
        # A readable pidfd means that process ended; it stays readable, so stop watching it.
        fd = self._pidfds.pop(pid, None)
        if fd is not None and self._loop is not None:
            self._loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        if pid == self.pid and self.popen is None:
            self._mark_gone()  # adopted: the pidfd is the authority
        self._check_exit()
        if not self._gone and self._loop is not None:
            # Draining: the relay's own pidfd reports its end; this re-check bounds the wait.
            self._loop.call_later(PUMP_DRAIN_SECONDS + 0.05, self._check_exit)

    def _check_exit(self) -> None:
        if self._on_exit is None or self.poll():
            return
        on_exit, self._on_exit = self._on_exit, None
        self.close()
        on_exit(self)

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
        # One identity check: our own child by its Popen, an adopted worker by its pidfd when
        # watched, else by its start time (so a recycled pid is never hit).
        if self._gone or not self._worker_running():
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
        self._watched = False
        for fd in self._pidfds.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._pidfds.clear()


_parked: list[subprocess.Popen[bytes]] = []


def _park(popen: subprocess.Popen[bytes]) -> None:
    """Keep a child we no longer watch referenced and reap it when it ends (no zombies, and no
    "still running" warning from a collected Popen)."""
    _parked[:] = [p for p in _parked if p.poll() is None]
    _parked.append(popen)


def pump_argv(log_path: Path, max_bytes: int, backups: int) -> list[str]:
    """The log relay, run by file path in isolated mode: stdlib only, fast to start, and blind
    to PYTHONPATH and the like."""
    return [sys.executable, "-I", logpump.__file__, str(log_path), str(max_bytes), str(backups)]


def _pump_env(env: dict[str, str]) -> dict[str, str]:
    # Nothing of the worker's: above all no RELAYBOARD_RUN_ID, which identifies the worker.
    return {k: v for k, v in env.items() if k in ("SYSTEMROOT", "LANG") or k.startswith("LC_")}


def start_worker(request: SpawnRequest) -> WorkerProcess:
    """Start the worker with its output piped through a log relay that caps ``logs/<task>.log``
    as it writes (see :mod:`kanban.runtime.logpump`). Raises :class:`SpawnError`."""
    try:
        _prepare_log(request.log_path)
    except OSError as exc:
        raise SpawnError(f"cannot open worker log {request.log_path.name}: {exc}") from exc
    read_end, write_end = os.pipe()
    try:
        try:
            pump = subprocess.Popen(
                pump_argv(request.log_path, request.log_max_bytes, request.log_backups),
                stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=_pump_env(request.env), close_fds=True, **popen_kwargs(request.platform))
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise SpawnError(f"cannot start the log relay: {exc}") from exc
        _park(pump)
        os.close(read_end)
        read_end = -1
        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                request.argv,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                cwd=str(request.cwd),
                env=request.env,
                close_fds=True,
                **popen_kwargs(request.platform),
            )

        try:
            # The relay above stays unconfined: it writes the log the worker must not reach.
            popen = start() if request.sandbox is None else run_confined(request.sandbox, start)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise SpawnError(f"cannot start {request.argv[0]!r}: {exc}") from exc
    finally:
        # The children hold their own ends; closing ours lets the relay see end-of-file when the
        # worker (and whatever it started) is done — or at once, when the worker never started.
        os.close(write_end)
        if read_end >= 0:
            os.close(read_end)
    started = process_start_time(popen.pid)
    return WorkerProcess(popen.pid, started, popen, pump)


__all__ = ["KANBAN_WORKER_SKILL", "SpawnRequest", "TemplateValues", "WorkerProcess", "build_argv",
           "expand_template", "find_run_worker", "is_same_process", "log_tail", "popen_kwargs",
           "private_dir", "process_start_time", "relayboard_argv", "start_worker",
           "worker_env", "write_private_text"]
