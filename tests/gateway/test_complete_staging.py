"""``relayboard kanban complete --artifact …`` is all or nothing, and bounded.

The worker's files are staged by the process that serves the worker API. That process (a real
``python -m gateway … kanban dispatch --loop``) is killed (SIGKILL) while it stages 2,000 files
of a worker's ``complete``: the workspace keeps every file, the task is not done, and the
worker's own retry, answered by the next server, completes with every recorded path in place and
no staging folder left. A completion over the per-completion limits is refused with one line and
stages nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from gateway.worker_api import socket_path
from tests.gateway.conftest import Cli, assert_one_error_line, clean_environ, worker_env

FILES = 2_000
KILL_AFTER = 20  # staged files seen before the kill: the copy is well under way, not done
DEADLINE = 60.0


def _config(rb: Cli, text: str) -> None:
    (rb.home / "config.yaml").write_text(text, encoding="utf-8")


def _claimed_workspace(rb: Cli) -> tuple[int, dict[str, str], Path]:
    task_id = rb.create("many files")
    claim = rb.claim(task_id)
    workspace = rb.home / "boards" / "default" / "workspaces" / str(task_id)
    workspace.mkdir(parents=True, exist_ok=True)
    return task_id, rb.worker_env(claim, task_id), workspace


def _staging(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.startswith(".staging-")]


def _staged_files(folder: Path) -> int:
    return sum(1 for staging in _staging(folder) for p in staging.rglob("*") if p.is_file())


def _wait_for_staging(server: subprocess.Popen[bytes], folder: Path) -> int:
    """Block until the server has staged at least KILL_AFTER files (or died, or the deadline
    passed); each wait is on the server itself, so an early exit ends it at once."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        staged = _staged_files(folder)
        if staged >= KILL_AFTER:
            return staged
        try:
            server.wait(timeout=0.005)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the server exited ({server.returncode}) before it was killed")
    raise AssertionError("the server never staged a file")


def _server(rb: Cli) -> subprocess.Popen[bytes]:
    """A `kanban dispatch --loop` of the home: the worker API's server (nothing to dispatch)."""
    server = subprocess.Popen(rb.argv("kanban", "dispatch", "--loop"), env=clean_environ(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + DEADLINE
    while not socket_path(rb.home).exists():
        if time.monotonic() > deadline:
            raise AssertionError("the worker API did not start")
        try:  # waits on the process itself: an early exit ends the wait at once
            server.wait(timeout=0.01)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the server exited ({server.returncode}) before it served")
    return server


def test_a_server_killed_mid_staging_strands_nothing(rb: Cli) -> None:
    _config(rb, f"kanban:\n  max_artifacts_per_completion: {FILES}\n")
    task_id = rb.create("many files")
    claim = rb.claim(task_id)
    workspace = Path(claim["workspace"])
    workspace.mkdir(parents=True, exist_ok=True)
    env = {**worker_env(claim, task_id), "RELAYBOARD_API": str(socket_path(rb.home))}
    names = [f"part-{i:04d}.txt" for i in range(FILES)]
    for name in names:
        (workspace / name).write_text(f"content of {name}\n", encoding="utf-8")
    args = ["kanban", "complete", "--result", "ok"]
    for name in names:
        args += ["--artifact", str(workspace / name)]
    attachments = rb.home / "boards" / "default" / "attachments" / str(task_id)

    first = _server(rb)
    worker = rb.popen(*args, env=env)
    try:
        with first:
            staged = _wait_for_staging(first, attachments)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=DEADLINE)
        assert KILL_AFTER <= staged < FILES
        # Nothing was taken from the worker, and nothing was completed.
        assert sorted(p.name for p in workspace.iterdir()) == names
        for name in names:
            assert (workspace / name).read_text(encoding="utf-8") == f"content of {name}\n"
        task = rb.show(task_id)
        assert task["status"] == "running"
        assert not [p for p in attachments.iterdir() if not p.name.startswith(".staging-")]
        # The worker's complete is still waiting; the next server answers its retry.
        assert worker.poll() is None
        with _server(rb) as second:
            try:
                _out, err = worker.communicate(timeout=DEADLINE)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=DEADLINE)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, err
    task = rb.show(task_id)
    assert task["status"] == "done"
    recorded = task["metadata"]["artifacts"]
    assert recorded == [str(attachments / name) for name in names]
    for path, name in zip(recorded, names, strict=True):
        assert Path(path).read_text(encoding="utf-8") == f"content of {name}\n"
    # The killed server's staging folder went with the retry; the retry's own went on commit.
    assert _staging(attachments) == []


def test_more_artifacts_than_the_limit_are_refused_with_one_line(rb: Cli) -> None:
    task_id, env, workspace = _claimed_workspace(rb)
    args = ["kanban", "complete"]
    for i in range(101):
        (workspace / f"f{i}.txt").write_text("x", encoding="utf-8")
        args += ["--artifact", str(workspace / f"f{i}.txt")]
    proc = rb.sub(*args, env=env)
    assert_one_error_line(proc, contains="101 artifacts (files) declared, the limit is 100 "
                                         "per completion")
    assert len(list(workspace.iterdir())) == 101
    assert rb.show(task_id)["status"] == "running"
    attachments = rb.home / "boards" / "default" / "attachments" / str(task_id)
    assert not attachments.exists() or list(attachments.iterdir()) == []


def test_a_folder_counts_each_file_and_bytes_are_capped(rb: Cli) -> None:
    _config(rb, "kanban:\n  max_artifacts_per_completion: 5\n  max_completion_bytes: 1000\n")
    task_id, env, workspace = _claimed_workspace(rb)
    (workspace / "out").mkdir()
    for i in range(6):
        (workspace / "out" / f"{i}.csv").write_text("1,2\n", encoding="utf-8")
    proc = rb.sub("kanban", "complete", "--artifact", str(workspace / "out"), env=env)
    assert_one_error_line(proc, contains="6 artifacts (files) declared, the limit is 5")
    (workspace / "big.bin").write_bytes(b"\0" * 600)
    (workspace / "big2.bin").write_bytes(b"\0" * 600)
    proc = rb.sub("kanban", "complete", "--artifact", str(workspace / "big.bin"),
                  "--artifact", str(workspace / "big2.bin"), env=env)
    assert_one_error_line(proc, contains="the artifacts hold 1,200 bytes, the limit is 1,000")
    assert rb.show(task_id)["status"] == "running"
    assert sorted(os.listdir(workspace)) == ["big.bin", "big2.bin", "out"]
    attachments = rb.home / "boards" / "default" / "attachments" / str(task_id)
    assert not attachments.exists() or list(attachments.iterdir()) == []
    # Within the limits, the same worker completes.
    done = rb.sub("kanban", "complete", "--artifact", str(workspace / "big.bin"), env=env)
    assert done.returncode == 0, done.stderr
    assert (attachments / "big.bin").stat().st_size == 600
