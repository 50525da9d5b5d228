"""The event-driven loop, in process and as ``relayboard kanban dispatch --loop``, and the
reliability test: 50 tasks while workers and the dispatcher itself are SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.home import Boards
from kanban.runtime.spawn import is_same_process
from tests.kanban.workers.harness import (
    AGENT,
    AGENT_PATHS,
    DEADLINE,
    agent,
    dispatch_env,
    wait_until,
)


async def test_loop_wakes_on_changes_not_on_the_tick(tmp_path: Path) -> None:
    # The interval is far beyond the deadline: only change signals and worker exits move it.
    async with dispatch_env(tmp_path, interval_seconds=600, poll_seconds=0.05) as env:
        env.profile("w", agent("complete"))
        stop = asyncio.Event()
        runner = asyncio.create_task(env.dispatcher.run(stop), name="dispatch-under-test")
        try:
            await asyncio.wait_for(env.dispatcher.ready.wait(), DEADLINE)
            local = await env.task("made in this process")
            await env.wait_status(local.id, "done")
            other = await Board.open(env.board.db.path)  # another connection: data_version
            try:
                remote = (await other.create_task("made elsewhere", assignee="w")).task
            finally:
                await other.close()
            await env.wait_status(remote.id, "done")

            async def cleaned() -> bool:  # the worker's exit woke the loop to clean up
                return not any((env.board.workspaces_dir / str(t)).exists()
                               for t in (local.id, remote.id))

            await wait_until(cleaned, what="scratch cleanup after the workers exited")
        finally:
            stop.set()
            await asyncio.wait_for(runner, DEADLINE)


def _start_dispatcher(home: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "--home", str(home), "kanban", "dispatch", "--loop"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=30)


@pytest.mark.slow
async def test_reliability_under_sigkill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(
        "kanban:\n  max_spawn: 6\n  failure_limit: 100\n  claim_ttl_seconds: 3\n"
        "  dispatch_interval_seconds: 1\n")
    Profiles(home).create("w", command=agent("sleep", "0.3", "complete"),
                          read_paths=AGENT_PATHS)
    rng = random.Random(1234)
    boards = Boards(home)
    board = await boards.open("default")
    log = tmp_path / "dispatcher.log"
    dispatcher = _start_dispatcher(home, log)
    killed_runs: set[int] = set()
    try:
        ids = [(await board.create_task(f"job {i}", assignee="w")).task.id for i in range(50)]

        async def running_workers() -> list[tuple[int, int, float | None]]:
            return [(r.id, r.worker_pid, r.worker_started_at)
                    for r, _ in await board.active_runs() if r.worker_pid is not None]

        for round_ in range(4):
            victims = await wait_until(running_workers, what="running workers", within=DEADLINE)
            for run_id, pid, started in rng.sample(victims, min(2, len(victims))):
                if not is_same_process(pid, started):
                    continue
                os.kill(pid, signal.SIGKILL)

                async def dead(p: int = pid, s: float | None = started) -> bool:
                    return not is_same_process(p, s)

                await wait_until(dead, what=f"worker {pid} to die")
                if (await board.get_run(run_id)).status != "completed":
                    killed_runs.add(run_id)  # it died before completing: must never complete
            if round_ % 2 == 0:
                dispatcher.send_signal(signal.SIGKILL)
                await asyncio.to_thread(dispatcher.wait, 30)
                dispatcher = _start_dispatcher(home, log)

        async def all_done() -> bool:
            tasks = await board.list_tasks()
            return all(t.status == "done" for t in tasks)

        await wait_until(all_done, within=90, what="all 50 tasks done")
        completed = await board.events(kinds=("completed",), limit=10_000)
        per_task = {i: [e for e in completed if e.task_id == i] for i in ids}
        assert all(len(v) == 1 for v in per_task.values()), {
            k: len(v) for k, v in per_task.items() if len(v) != 1}
        assert not {e.run_id for e in completed} & killed_runs
        assert killed_runs, "the test killed no worker mid-run"
        assert await board.active_runs() == []
    finally:
        await asyncio.to_thread(_stop, dispatcher, signal.SIGTERM)
        await boards.close()


# Crashes on its first attempt (leaving a marker), completes through agent.py on the next.
_CRASH_ONCE = ("import os, subprocess, sys; marker, agent = sys.argv[1], sys.argv[2]\n"
               "if not os.path.exists(marker):\n"
               "    open(marker, 'w').close(); print('transient failure'); sys.exit(1)\n"
               "sys.exit(subprocess.call([sys.executable, agent, 'complete']))")


@pytest.mark.skipif(not hasattr(Board, "next_wakeup"),
                    reason="the kernel has no retry back-off yet (Board.next_wakeup)")
async def test_loop_wakes_when_a_backed_off_retry_is_due(tmp_path: Path) -> None:
    # The tick is far beyond the deadline and nothing commits while the task backs off: only
    # the loop's wait until Board.next_wakeup() can start the retry.
    async with dispatch_env(tmp_path, interval_seconds=600, poll_seconds=0.05) as env:
        # The marker goes where the profile's sandbox lets it write (its records folder).
        env.profile("w", [sys.executable, "-c", _CRASH_ONCE, str(env.records / "crashed"),
                          str(AGENT)])
        stop = asyncio.Event()
        runner = asyncio.create_task(env.dispatcher.run(stop), name="dispatch-under-test")
        try:
            await asyncio.wait_for(env.dispatcher.ready.wait(), DEADLINE)
            task = await env.task("retried after a back-off")
            await env.wait_status(task.id, "done")
            assert len(await env.events(task.id, "crashed")) == 1
        finally:
            stop.set()
            await asyncio.wait_for(runner, DEADLINE)
