"""A stop signal at any moment of the gateway's start ends it cleanly (exit code 0), while any
other command still dies of it as a command line tool should.

Each case starts a real ``python -m gateway … gateway run`` and sends SIGTERM at one moment of its
start: as soon as the process catches SIGTERM at all (it is still importing), after a few fixed
delays from there, and when each line of the start-up log appears.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.common import free_port
from tests.gateway.conftest import clean_environ

WITHIN = 30.0
START_LINES = ("no external chat platform", "dashboard and web chat on", "web: connected",
               "gateway running on")


def catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


async def until(probe: object, what: str, proc: subprocess.Popen[bytes]) -> None:
    assert callable(probe)
    async with asyncio.timeout(WITHIN):
        while not probe():
            if proc.poll() is not None:
                raise AssertionError(f"exited ({proc.returncode}) before {what}")
            await asyncio.sleep(0.002)


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process a test started is gone when it ends, whatever the test did."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def spawn(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(f"dashboard: {{port: {free_port()}}}\n", encoding="utf-8")
    log = tmp_path / "stderr.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "--home", str(home), *args],
                                env=clean_environ({"HOME": str(tmp_path)}),
                                stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL)
    return proc, log


def finish(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(timeout=WITHIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("did not stop on SIGTERM") from None


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.08, 0.15])
async def test_sigterm_while_importing_exits_zero(
        tmp_path: Path, delay: float, spawned: list[subprocess.Popen[bytes]]) -> None:
    proc, log = spawn(tmp_path, "gateway", "run")
    spawned.append(proc)
    await until(lambda: catches(proc.pid, signal.SIGTERM), "catching SIGTERM", proc)
    if delay == 0:
        # The signal is caught from the first line of the entry point, long before the
        # daemon logs anything.
        assert log.read_text(errors="replace") == ""
    # Fixed offsets from the first moment the signal is caught: each lands somewhere in the
    # imports, the config load or the start of the daemon's components.
    await asyncio.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(finish, proc)
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "Traceback" not in text


@pytest.mark.parametrize("line", START_LINES)
async def test_sigterm_at_each_start_line_exits_zero(
        tmp_path: Path, line: str, spawned: list[subprocess.Popen[bytes]]) -> None:
    proc, log = spawn(tmp_path, "gateway", "run")
    spawned.append(proc)
    await until(lambda: line in log.read_text(errors="replace"), repr(line), proc)
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(finish, proc)
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "Traceback" not in text
    assert "stopping" in text


async def test_another_command_still_dies_of_sigterm(
        tmp_path: Path, spawned: list[subprocess.Popen[bytes]]) -> None:
    """Only the daemon holds a start-up signal over; `kanban events` is ended by it (-15)."""
    proc, _log = spawn(tmp_path, "kanban", "events", "--follow")
    spawned.append(proc)
    await until(lambda: catches(proc.pid, signal.SIGTERM), "catching SIGTERM", proc)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(finish, proc) == -signal.SIGTERM


async def test_a_start_up_signal_delivered_twice_is_not_a_forced_exit() -> None:
    """One SIGTERM that lands while the receiver is being installed is both recorded early and
    delivered to the receiver: that echo stops the gateway, it does not force an exit."""
    import logging
    import os

    import anyio

    from gateway import early_signals
    from gateway.daemon.run import _signals

    echoed = anyio.Event()

    class Echo(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "already stopping" in record.getMessage():
                echoed.set()

    logger = logging.getLogger("gateway.daemon.run")
    handler, level = Echo(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    stop = anyio.Event()
    early_signals._received.append(signal.SIGTERM)  # recorded before the receiver existed
    async with anyio.create_task_group() as group:
        group.start_soon(_signals, stop)
        with anyio.fail_after(WITHIN):
            await stop.wait()  # the early signal stopped it
            os.kill(os.getpid(), signal.SIGTERM)  # its echo reaches the receiver
            # Still here (a forced exit would have ended this process with code 1) once the
            # receiver has taken the echo.
            await echoed.wait()
        group.cancel_scope.cancel()
    logger.removeHandler(handler)
    logger.setLevel(level)
    assert early_signals.take() is None
