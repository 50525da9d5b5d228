"""One-shot ``relayboard kanban dispatch`` (cron-style use), through the real entry point in a
subprocess: it waits briefly for the workers it started, so crashes sharing one error trip the
systemic breaker in the same run; workers that die unwatched are fingerprinted from their log
by the next run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.home import Boards
from kanban.runtime.spawn import is_same_process
from tests.kanban.workers.harness import wait_until

# Prints one error (with a per-task id, so only the normalised fingerprint is shared), exits 1.
# A bare interpreter rather than agent.py: a crash that happens at once is the case at hand.
CRASHER = [sys.executable, "-c",
           "import sys; print('provider error 503 for request', sys.argv[1], 'at 12:00:0'"
           " + sys.argv[1]); sys.exit(1)", "{task_id}"]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60, check=False)


async def _dispatch(home: Path, *args: str) -> dict[str, Any]:
    done = await asyncio.to_thread(_cli, home, "kanban", "dispatch", "--json", *args)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    # A budget of 5: only the systemic breaker can block a task after one crash.
    (home / "config.yaml").write_text("kanban:\n  failure_limit: 5\n", encoding="utf-8")
    Profiles(home).create("w", command=CRASHER)
    return home


async def _assert_all_gave_up_at_once(board: Board, ids: list[int], *,
                                      exit_code: int | None) -> None:
    for task_id in ids:
        task = await board.get_task(task_id)
        assert task.status == "blocked", task
        assert task.consecutive_failures == 1, task
        [crashed] = await board.events(task_id=task_id, kinds=("crashed",))
        assert crashed.payload["exit_code"] == exit_code
        assert crashed.payload["systemic"] is True
        assert f"provider error 503 for request {task_id}" in crashed.payload["log_tail"]
        [gave_up] = await board.events(task_id=task_id, kinds=("gave_up",))
        assert gave_up.payload["forced"] is True


async def test_one_shot_dispatch_trips_same_error_crashes_at_once(tmp_path: Path) -> None:
    home = _home(tmp_path)
    boards = Boards(home)
    try:
        board = await boards.open("default")
        ids = [(await board.create_task(f"t{i}", assignee="w")).task.id for i in range(3)]
        # An explicit, generous --wait: it ends as soon as the three workers have exited, so it
        # costs nothing here, and a loaded test machine may start interpreters slowly. The
        # default (2 s) is asserted through --help below.
        report = await _dispatch(home, "--wait", "30")
        assert sorted(s["task_id"] for s in report["spawned"]) == ids
        assert sorted(c["task_id"] for c in report["crashed"]) == ids
        assert all(c["tripped"] and c["systemic"] for c in report["crashed"])
        assert len(report["systemic"]) == 1
        await _assert_all_gave_up_at_once(board, ids, exit_code=1)
    finally:
        await boards.close()


async def test_gone_workers_are_fingerprinted_from_their_log(tmp_path: Path) -> None:
    home = _home(tmp_path)
    boards = Boards(home)
    try:
        board = await boards.open("default")
        ids = [(await board.create_task(f"t{i}", assignee="w")).task.id for i in range(3)]
        first = await _dispatch(home, "--wait", "0")  # the old behaviour: nobody waits
        assert sorted(s["task_id"] for s in first["spawned"]) == ids and first["crashed"] == []
        runs = [(r.worker_pid, r.worker_started_at) for r, _ in await board.active_runs()]
        assert len(runs) == 3

        async def all_gone() -> bool:
            return not any(is_same_process(pid, started) for pid, started in runs)

        await wait_until(all_gone, what="the three unwatched workers to exit")
        second = await _dispatch(home)
        assert sorted(c["task_id"] for c in second["crashed"]) == ids
        assert all(c["exit_code"] is None and c["tripped"] for c in second["crashed"])
        assert all("gone (exit status unknown): provider error 503" in c["error"]
                   for c in second["crashed"])
        assert second["spawned"] == []
        await _assert_all_gave_up_at_once(board, ids, exit_code=None)
    finally:
        await boards.close()


def test_wait_is_documented_with_its_default(tmp_path: Path) -> None:
    done = _cli(tmp_path / "home", "kanban", "dispatch", "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "--wait SECONDS" in text and "default: 2.0" in text
