"""Worker lifecycle with real processes: crashes, retry-later, protocol violations, systemic
crashes, max runtime, caps, leases, adoption after a dispatcher restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kanban.board import BoardOptions
from kanban.runtime.dispatcher import Dispatcher, DispatchSettings
from kanban.runtime.spawn import is_same_process, process_start_time
from kanban.storage.db import Tx
from kanban.timeutil import now
from tests.kanban.workers.harness import DEADLINE, Env, agent, dispatch_env, wait_until


async def expire_claim(env: Env, run_id: int) -> None:
    def run(tx: Tx) -> None:
        tx.execute("UPDATE task_runs SET expires_at = ? WHERE id = ?", (now() - 1, run_id))

    await env.board.db.write(run)


async def test_crash_is_counted_with_exit_code_and_log_tail(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("exit", "3", "Traceback: boom in step {task_id}"))
        task = await env.task()
        await env.dispatcher.run_cycle(env.board)
        assert await env.dispatcher.wait_workers(DEADLINE)
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert [c["task_id"] for c in report.crashed] == [task.id]
        [event] = await env.events(task.id, "crashed")
        assert event.payload["exit_code"] == 3
        assert f"boom in step {task.id}" in event.payload["log_tail"]
        after = await env.board.get_task(task.id)
        assert after.status == "ready" and after.consecutive_failures == 1


async def test_crash_error_ignores_output_of_an_earlier_attempt(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("exit", "1"))  # dies without a word
        task = await env.task()
        log = env.board.log_path(task.id)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("quota exceeded (from yesterday's attempt)\n")
        os.utime(log, (now() - 3600, now() - 3600))
        await env.dispatcher.run_cycle(env.board)
        await env.cycle_until_exited()
        [event] = await env.events(task.id, "crashed")
        assert event.payload["error"] == "worker exited with code 1"
        assert event.payload["log_tail"] == ""
        assert event.payload["fingerprint"] == "worker exited with code <n>"


async def test_exit_75_requeues_without_counting(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("exit", "75", "rate limited"))
        task = await env.task()
        await env.dispatcher.run_cycle(env.board)
        await env.dispatcher.wait_workers(DEADLINE)
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert report.requeued == [task.id] and not report.crashed
        after = await env.board.get_task(task.id)
        assert after.status == "ready" and after.consecutive_failures == 0
        assert await env.events(task.id, "requeued")


async def test_exit_0_without_completing_is_a_protocol_violation(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("exit", "0"))
        task = await env.task()
        await env.dispatcher.run_cycle(env.board)
        await env.dispatcher.wait_workers(DEADLINE)
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert report.protocol_violations == [task.id] and not report.crashed
        detail = await env.board.show_task(task.id)
        assert detail.task.protocol_violations == 1 and detail.task.consecutive_failures == 0
        assert any("without calling" in c.body for c in detail.comments)


async def test_systemic_crashes_trip_every_breaker_at_once(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path, options=BoardOptions(failure_limit=5)) as env:
        # Same failure, different host details: request ids, paths, hex, timestamps.
        env.profile("w", agent("exit", "1", "provider error 503 for request {task_id} at "
                               "2026-01-0{task_id}T10:00:0{task_id}Z in /tmp/run{task_id}/x "
                               "0xdead{task_id}"))
        tasks = [await env.task(f"t{i}") for i in range(3)]
        await env.dispatcher.run_cycle(env.board)
        await env.dispatcher.wait_workers(DEADLINE)
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert len(report.systemic) == 1
        assert sorted(c["task_id"] for c in report.crashed) == [t.id for t in tasks]
        for task in tasks:
            after = await env.board.get_task(task.id)
            assert after.status == "blocked", after
            [gave_up] = await env.events(task.id, "gave_up")
            assert gave_up.payload["forced"] is True


async def test_isolated_crashes_keep_their_budget(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path, options=BoardOptions(failure_limit=5)) as env:
        for name, message in (("a", "alpha exploded"), ("b", "disk quota reached"),
                              ("c", "unexpected token in json")):
            env.profile(name, agent("exit", "1", message))
        tasks = [await env.task(name, assignee=name) for name in "abc"]
        await env.dispatcher.run_cycle(env.board)
        await env.dispatcher.wait_workers(DEADLINE)
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert report.systemic == [] and len(report.crashed) == 3
        for task in tasks:
            after = await env.board.get_task(task.id)
            assert after.status == "ready" and after.consecutive_failures == 1
            assert not await env.events(task.id, "gave_up")


async def test_max_runtime_zero_times_out_on_next_cycle(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("sleep", "60"))
        task = await env.task(max_runtime_seconds=0)
        first = await env.dispatcher.run_cycle(env.board)
        assert [s["task_id"] for s in first.spawned] == [task.id] and not first.timed_out
        pid = first.spawned[0]["pid"]
        second = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert second.timed_out == [task.id]
        assert process_start_time(pid) is None  # terminated and reaped
        after = await env.board.get_task(task.id)
        assert after.consecutive_failures == 1
        assert await env.events(task.id, "timed_out")


async def test_live_cap_counts_running_tasks_and_orders_by_priority(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path, max_spawn=3) as env:
        flag = tmp_path / "go"
        env.profile("w", agent("wait-file", str(flag)))
        manual = await env.task("claimed by a person")
        await env.board.claim(manual.id)  # a manual lane: running, counts against the cap
        old = await env.task("old")
        high = await env.task("high", priority=5)
        await env.task("new")
        report = await env.dispatcher.run_cycle(env.board)
        assert report.running == 1 and report.budget == 2
        assert [s["task_id"] for s in report.spawned] == [high.id, old.id]
        # Nothing finished: the next cycle has no budget (a live cap, not per cycle).
        again = await env.dispatcher.run_cycle(env.board)
        assert again.spawned == [] and again.budget == 0
        flag.write_text("go")
        await env.wait_status(high.id, "done")
        await env.wait_status(old.id, "done")


async def test_host_cap_limits_spawns(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path, max_spawn=4, max_spawn_host=1) as env:
        flag = tmp_path / "go"
        env.profile("w", agent("wait-file", str(flag)))
        for i in range(3):
            await env.task(f"t{i}")
        report = await env.dispatcher.run_cycle(env.board)
        assert len(report.spawned) == 1 and report.host_budget == 1
        flag.write_text("go")


async def test_expired_claim_of_live_worker_is_extended(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("sleep", "60"))
        task = await env.task()
        spawned = (await env.dispatcher.run_cycle(env.board)).spawned[0]
        await expire_claim(env, spawned["run_id"])
        report = await env.dispatcher.run_cycle(env.board)
        assert report.extended == [task.id] and report.reclaimed == []
        [event] = await env.events(task.id, "claim_extended")
        assert event.payload["worker_pid"] == spawned["pid"]
        assert event.payload["host_local"] is True
        run = await env.board.get_run(spawned["run_id"])
        assert run.status == "active" and (run.expires_at or 0) > now() + 60


async def test_expired_claim_without_worker_is_reclaimed_with_details(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        task = await env.task(assignee=None)
        claim = await env.board.claim(task.id)  # manual lane: no worker pid
        await expire_claim(env, claim.run_id)
        report = await env.dispatcher.run_cycle(env.board)
        assert report.reclaimed == [task.id]
        [event] = await env.events(task.id, "reclaimed")
        assert set(event.payload) >= {"claim_expires", "last_heartbeat_at", "worker_pid",
                                      "host_local"}
        assert (await env.board.get_task(task.id)).status == "ready"


async def test_reclaimed_worker_is_terminated_before_successor(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("wait-file", str(tmp_path / "never")))
        task = await env.task()
        first = (await env.dispatcher.run_cycle(env.board)).spawned[0]
        # Another dispatcher (e.g. on another host) reclaimed the run.
        assert await env.board.reclaim(first["run_id"], payload={"by": "test"})
        report = await env.dispatcher.run_cycle(env.board)
        assert report.terminated == [task.id]
        assert process_start_time(first["pid"]) is None
        assert [s["task_id"] for s in report.spawned] == [task.id]
        assert report.spawned[0]["run_id"] != first["run_id"]


async def test_reclaimed_runs_token_is_refused(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        flag = tmp_path / "go"
        env.profile("w", agent("wait-file", str(flag)))
        task = await env.task()
        first = (await env.dispatcher.run_cycle(env.board)).spawned[0]
        assert await env.board.reclaim(first["run_id"])
        flag.write_text("go")  # the old worker now tries to complete with its stale lease
        assert await env.dispatcher.wait_workers(DEADLINE)
        text = env.board.log_path(task.id).read_text()
        assert "refused" in text and "reclaimed" in text
        assert not await env.events(task.id, "completed")
        report = await env.dispatcher.run_cycle(env.board, max_new=0)
        assert not report.crashed and (await env.board.get_task(task.id)).status == "ready"


async def test_restarted_dispatcher_adopts_then_detects_death(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("sleep", "60"))
        task = await env.task()
        spawned = (await env.dispatcher.run_cycle(env.board)).spawned[0]
        await env.dispatcher.aclose()  # "dies": stops watching, the worker keeps running
        successor = Dispatcher(env.boards, env.profiles, DispatchSettings(tmux_cleanup=False),
                               base_env=dict(os.environ))
        try:
            report = await successor.run_cycle(env.board, max_new=0)
            assert report.adopted == [task.id]
            os.kill(spawned["pid"], signal.SIGKILL)
            [(_, _, proc)] = successor.workers()
            assert await proc.wait(DEADLINE)

            async def crashed() -> bool:
                rep = await successor.run_cycle(env.board, max_new=0)
                return bool(rep.crashed)

            await wait_until(crashed, what="crash of the adopted worker")
            [event] = await env.events(task.id, "crashed")
            assert event.payload["exit_code"] is None
        finally:
            await successor.aclose(terminate=True)


def start_sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


async def test_recycled_pid_is_never_taken_for_our_worker(tmp_path: Path) -> None:
    stranger = start_sleeper()
    try:
        async with dispatch_env(tmp_path) as env:
            task = await env.task(assignee=None)
            claim = await env.board.claim(task.id)
            started = process_start_time(stranger.pid)
            assert started is not None and is_same_process(stranger.pid, started)
            # The run says its worker had this pid, but it started at another time.
            await env.board.set_worker(claim.run_id, pid=stranger.pid, started_at=started - 100)
            await expire_claim(env, claim.run_id)
            report = await env.dispatcher.run_cycle(env.board, max_new=0)
            assert report.adopted == [] and report.extended == []
            assert [c["task_id"] for c in report.crashed] == [task.id]
            assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()
