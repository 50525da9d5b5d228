"""What wakes the one dispatch loop: a worker's exit through its pidfd (no exit poll), a bounded
poll where there is no pidfd, and nothing at all while nothing happens (no spinning)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from kanban.board import BoardOptions
from tests.kanban.workers.harness import DEADLINE, Env, dispatch_env, wait_until

# Lives long enough for the loop to be asleep again after spawning it, commits nothing, crashes.
CRASHER = [sys.executable, "-c", "import time, sys; time.sleep(0.5); sys.exit(3)"]
# Every tick, commit poll and exit poll far beyond the test's deadlines.
QUIET = {"interval_seconds": 30.0, "poll_seconds": 30.0, "exit_poll_seconds": 30.0}


async def _crash_recorded(env: Env, task_id: int) -> float:
    """Seconds from the claim to the recorded crash of ``task_id``'s first run."""
    async def crashed() -> float | None:
        claims = await env.events(task_id, "claimed")
        crashes = await env.events(task_id, "crashed")
        if not claims or not crashes:
            return None
        return (crashes[0].created_at or 0.0) - (claims[0].created_at or 0.0)

    return await wait_until(crashed, within=10, what=f"task {task_id}'s crash recorded")


@asynccontextmanager
async def _looping(env: Env) -> AsyncIterator[None]:
    """The dispatcher's loop running (ready) for the body; stopped within the deadline after."""
    stop = asyncio.Event()
    runner = asyncio.create_task(env.dispatcher.run(stop), name="dispatch-under-test")
    try:
        await asyncio.wait_for(env.dispatcher.ready.wait(), DEADLINE)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(runner, DEADLINE)


async def _passes_in(env: Env, window: float) -> int:
    before = env.dispatcher.passes
    # Waiting on the clock is the point here: nothing may wake the loop in this window.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), window)
    return env.dispatcher.passes - before


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")
async def test_a_worker_exit_wakes_the_loop_without_any_poll(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path, options=BoardOptions(failure_limit=1), **QUIET) as env:
        env.profile("w", CRASHER)
        async with _looping(env):
            task = await env.task("crashes once, then stays blocked")
            await wait_until(lambda: _watched(env), within=10, what="worker watched by pidfd")
            # Half a second of life, then only its pidfd can wake a loop that would sleep 30 s.
            assert await _crash_recorded(env, task.id) < 3.0
            await env.wait_status(task.id, "blocked", within=5)
            assert await _passes_in(env, 1.0) <= 2, "the loop spun with nothing to do"


async def _watched(env: Env) -> bool:
    return any(proc.watched for _, _, proc in env.dispatcher.workers())


async def test_without_pidfds_exits_are_found_by_a_bounded_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    settings = {**QUIET, "exit_poll_seconds": 0.1}
    async with dispatch_env(tmp_path, options=BoardOptions(failure_limit=1), **settings) as env:
        env.profile("w", CRASHER)
        async with _looping(env):
            task = await env.task("crashes, found by polling")
            assert await _crash_recorded(env, task.id) < 3.0
            await env.wait_status(task.id, "blocked", within=5)
            # With no worker left to poll for, the loop sleeps until the 30 s tick again.
            assert await _passes_in(env, 1.0) <= 2, "the exit poll outlived the workers"


async def test_stop_ends_the_loop_within_a_deadline(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path, **QUIET) as env:
        stop = asyncio.Event()
        runner = asyncio.create_task(env.dispatcher.run(stop), name="dispatch-under-test")
        await asyncio.wait_for(env.dispatcher.ready.wait(), DEADLINE)
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(runner, 5)
        assert time.monotonic() - started < 5
