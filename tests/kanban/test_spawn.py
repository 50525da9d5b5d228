"""Spawn mechanics: executable resolution (run for real), Windows flags, the capped log relay,
tails, process identity, crash fingerprints, the host cap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kanban.runtime.dispatcher import default_host_cap, normalise_error
from kanban.runtime.logpump import CappedLog
from kanban.runtime.spawn import (
    CREATE_NO_WINDOW,
    TemplateValues,
    WorkerProcess,
    build_argv,
    expand_template,
    is_same_process,
    log_tail,
    popen_kwargs,
    process_start_time,
    relayboard_argv,
)


def test_relayboard_argv_is_the_running_installation_whatever_path_says() -> None:
    argv = relayboard_argv()
    assert argv == [sys.executable, "-m", "gateway"]
    # Really run it (a wrong module name would only fail here, not in a string check).
    done = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60,
                          cwd="/", env={k: v for k, v in os.environ.items() if k != "PATH"},
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "relayboard" in done.stdout.lower()


def test_windows_spawns_never_open_a_console_window() -> None:
    assert popen_kwargs("win32") == {"creationflags": CREATE_NO_WINDOW}
    assert CREATE_NO_WINDOW == getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)
    assert popen_kwargs("linux") == {"start_new_session": True}
    assert "creationflags" not in popen_kwargs("darwin")


def test_template_expansion_leaves_other_braces_alone() -> None:
    values = TemplateValues(7, "ops", "/w", "/p.md", "m1")
    assert expand_template(["x{task_id}", "{board}", '{"k": 1}', "{model}"], values) == [
        "x7", "ops", '{"k": 1}', "m1"]
    # -m is not added twice when the template already places the model itself
    assert build_argv(["a", "--model", "{model}"], values, model_override="m1",
                      has_worker_skill=False) == ["a", "--model", "m1"]
    assert build_argv(["a"], values, model_override=None, has_worker_skill=True) == [
        "a", "--skills", "kanban-worker"]


def test_capped_log_rotates_before_a_write_would_pass_the_cap(tmp_path: Path) -> None:
    log = tmp_path / "1.log"
    log.write_bytes(b"a" * 30)  # an earlier run's output counts against the cap
    capped = CappedLog(str(log), max_bytes=50, backups=2)
    capped.write(b"b" * 30)  # 20 fit, then rotate, then 10
    assert (tmp_path / "1.log.1").read_bytes() == b"a" * 30 + b"b" * 20
    assert log.read_bytes() == b"b" * 10
    capped.write(b"c" * 100)
    capped.close()
    assert log.read_bytes() == b"c" * 10
    assert (tmp_path / "1.log.1").read_bytes() == b"c" * 50
    assert (tmp_path / "1.log.2").read_bytes() == b"b" * 10 + b"c" * 40
    assert not (tmp_path / "1.log.3").exists()  # the oldest backup fell off
    assert oct(log.stat().st_mode & 0o777) == oct(0o600)


def test_capped_log_without_backups_keeps_only_the_newest(tmp_path: Path) -> None:
    log = tmp_path / "1.log"
    capped = CappedLog(str(log), max_bytes=10, backups=0)
    capped.write(b"0123456789abc")
    capped.close()
    assert log.read_bytes() == b"abc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.log"]


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    tail = log_tail(log, max_lines=3)
    assert tail == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path / "missing.log") == ""


def test_process_identity_uses_start_time() -> None:
    started = process_start_time(os.getpid())
    assert started is not None
    assert is_same_process(os.getpid(), started)
    assert not is_same_process(os.getpid(), started - 60)  # same pid, another process
    assert not is_same_process(os.getpid(), None)
    assert not is_same_process(None, started)


def test_error_fingerprints_ignore_host_details() -> None:
    a = normalise_error("Error 503 at 2026-05-10T15:00:01Z pid 4242 in /tmp/w/17/run.py 0xdeadbeef "
                        "req 3f2a9c1e")
    b = normalise_error("Error 503 at 2026-05-11T09:12:45Z pid 17 in /home/x/y/run.py 0x1234 "
                        "req 88aa01fe")
    assert a == b
    assert normalise_error("disk full") != normalise_error("auth expired")


def test_default_host_cap_from_cores_and_memory() -> None:
    gib = 1024 ** 3
    assert default_host_cap(2, 16 * gib) == 8
    assert default_host_cap(16, 2 * gib) == 4
    assert default_host_cap(1, 100) == 1
    assert default_host_cap() >= 1


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")
async def test_a_watched_adopted_worker_is_polled_and_signalled_through_its_pidfd(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                               start_new_session=True)
    try:
        started = process_start_time(sleeper.pid)
        adopted = WorkerProcess(sleeper.pid, started)  # known by pid and start time only
        exited: list[WorkerProcess] = []
        adopted.watch(exited.append)

        def no_probe(pid: int) -> float | None:
            raise AssertionError("a process-table probe ran on the event loop")

        # Once its pidfd is watched, poll/signal/wait need no process-table probe.
        monkeypatch.setattr("kanban.runtime.spawn.process_start_time", no_probe)
        assert adopted.poll()
        assert adopted.signal(signal.SIGTERM)
        assert await adopted.wait(30)
        assert sleeper.wait(timeout=30) == -signal.SIGTERM
        assert not adopted.poll() and not adopted.signal(signal.SIGTERM)
        assert exited == [adopted]
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait(timeout=30)
