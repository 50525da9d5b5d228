"""A dispatcher that died between a claim and recording its worker's pid leaves an unrecorded
run. The next dispatcher finds that worker by its environment and adopts it, or, when no such
worker runs, releases the run at once instead of waiting for the lease to expire."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from kanban.runtime.spawn import find_run_worker
from tests.kanban.workers.harness import dispatch_env


def _dead_dispatcher() -> str:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    return f"dispatcher@{socket.gethostname()}:{gone.pid}"


async def test_an_unrecorded_worker_is_found_and_adopted(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        task = await env.task("orphaned")
        claim = await env.board.claim(task.id, claimed_by=_dead_dispatcher())
        worker_env = {**os.environ, "RELAYBOARD_RUN_ID": str(claim.run_id),
                      "RELAYBOARD_LEASE": claim.lease}
        orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                  env=worker_env)
        try:
            assert find_run_worker(claim.run_id, claim.lease) is not None
            report = await env.dispatcher.run_cycle(env.board, max_new=0)
            assert report.adopted == [task.id] and report.reclaimed == []
            run = await env.board.get_run(claim.run_id)
            assert run.status == "active" and run.worker_pid == orphan.pid
            assert run.worker_started_at is not None
        finally:
            orphan.kill()
            orphan.wait(timeout=30)
        # Once it is gone, the adopted worker is reaped like any other: a counted crash.
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert [c["task_id"] for c in report.crashed] == [task.id]


async def test_a_run_whose_worker_never_started_is_released_at_once(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        task = await env.task("never spawned")
        claim = await env.board.claim(task.id, claimed_by=_dead_dispatcher())
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert report.reclaimed == [task.id]
        assert (await env.board.get_run(claim.run_id)).status == "reclaimed"
        after = await env.board.get_task(task.id)
        assert after.status == "ready" and after.consecutive_failures == 0


async def test_manual_and_live_dispatcher_claims_are_left_alone(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        manual = await env.task("a person's claim")
        live = await env.task("another dispatcher, still running")
        await env.board.claim(manual.id, claimed_by="ana")
        await env.board.claim(live.id,
                              claimed_by=f"dispatcher@{socket.gethostname()}:{os.getpid()}")
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert report.adopted == [] and report.reclaimed == []
        assert await env.status(manual.id) == "running"
        assert await env.status(live.id) == "running"
