"""The daemon in process: supervision, board hub, dispatcher watcher, notifier wiring, status."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.config import PlatformConfig, load_config
from gateway.daemon import Backoff, Daemon, Supervisor
from gateway.daemon.adapters import AdapterRunner, adapter_options
from gateway.notifier import NotifierSettings
from kanban.agents.profiles import Profiles
from platforms.base import PlatformAdapter
from platforms.errors import AuthError
from platforms.fake import FakeAdapter
from tests.kanban.workers.harness import AGENT_PATHS, agent, wait_until

FAST_BACKOFF = Backoff(base=0.01, cap=0.05, steady_seconds=5.0)


@asynccontextmanager
async def running(home: Path, config_text: str = "",
                  adapters: dict[str, Callable[[], PlatformAdapter]] | None = None,
                  board: dict[str, Any] | None = None, **options: Any) -> AsyncIterator[Daemon]:
    """The daemon running on ``home``; ``board`` overrides board options the config cannot set
    (back-off timing), before the hub opens any board."""
    home.mkdir(parents=True, exist_ok=True)
    if config_text:
        (home / "config.yaml").write_text(config_text, encoding="utf-8")
    config = load_config(None, {}, home=home)
    daemon = Daemon(config, environ=dict(os.environ), adapters=adapters or {},
                    backoff=FAST_BACKOFF,
                    notifier_settings=NotifierSettings(backoff_base=0.01, tick_seconds=0.2),
                    user_home=home / "user", **{"dashboard": False, **options})
    if board:
        daemon.boards.options = dataclasses.replace(daemon.boards.options, **board)
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(daemon.run, stop)
        with anyio.fail_after(10):
            await daemon.ready.wait()
        try:
            yield daemon
        finally:
            stop.set()
    await daemon.dispatcher.aclose(terminate=True)


async def test_a_crashing_component_is_restarted_and_never_takes_others_down() -> None:
    supervisor = Supervisor(FAST_BACKOFF)
    runs = 0
    ticks = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"boom {runs}")
        await anyio.sleep_forever()

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as group:
        group.start_soon(supervisor.supervise, "flaky", flaky)
        group.start_soon(supervisor.supervise, "steady", steady)

        async def settled() -> bool:
            return runs == 3 and supervisor.components["flaky"].state == "running"

        await wait_until(settled, within=5, what="flaky restarted twice")
        before = ticks
        await wait_until(lambda: _async(ticks > before), within=5, what="steady still ticking")
        group.cancel_scope.cancel()
    flaky_state = supervisor.components["flaky"]
    assert flaky_state.restarts == 2 and flaky_state.last_error == "RuntimeError: boom 2"
    assert supervisor.components["steady"].restarts == 0


async def _async(value: bool) -> bool:
    return value


async def test_completion_reaches_the_adapter_and_status_reports_everything(
    tmp_path: Path,
) -> None:
    fake = FakeAdapter(platform="fake")

    class Refused(FakeAdapter):
        async def start(self, inbox: Any) -> None:
            raise AuthError("token refused")

    async with running(tmp_path / "home", "kanban: {auto_decompose: false}\n",
                       {"fake": lambda: fake, "broken": lambda: Refused(platform="broken")}
                       ) as daemon:
        board = await daemon.boards.open("default")
        task = (await board.create_task("Quarterly report", assignee="reporter")).task
        await board.subscribe(task.id, platform="fake", chat="c1")
        claim = await board.claim(task.id)
        await board.complete(task.id, lease=claim.lease, summary="done and dusted")
        await wait_until(lambda: _async(bool(fake.texts)), within=5, what="message sent")
        assert fake.texts == ["✔ done · #1 Quarterly report · @reporter\ndone and dusted"]

        async def broken_retrying() -> dict[str, Any] | None:
            # The delivered count moves once the receipt is stored, just after the send.
            status = await daemon.status()
            settled = status["notifications"]["delivered"] == 1
            return status if settled and status["adapters"]["broken"]["state"] == "retrying" \
                else None

        status = await wait_until(broken_retrying, within=5,
                                  what="broken adapter retrying, the message marked sent")
        assert "token refused" in status["adapters"]["broken"]["detail"]
        assert status["adapters"]["fake"]["state"] == "connected"
        assert status["boards"]["default"]["by_status"] == {"done": 1}
        assert status["notifications"] == {"delivered": 1, "failed": 0}
        assert status["uptime_seconds"] >= 0 and status["workers"] == []
        assert status["components"]["notifier"]["state"] == "running"


async def test_other_processes_commits_and_new_boards_wake_the_dispatcher(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    records = tmp_path / "records"
    records.mkdir()
    Profiles(home).create("w", command=agent("complete", "ok"), read_paths=AGENT_PATHS,
                          write_paths=[str(records)], env={"AGENT_RECORD_DIR": str(records)})
    async with running(home, "kanban: {dispatch_interval_seconds: 60}\n") as daemon:
        await wait_until(lambda: _async(daemon.watcher.cycles > 0), within=5,
                         what="first cycle")
        # A board created by another process while the daemon runs, and a task created there
        # by the CLI: the interval tick is 60 s, so only the change poll can spawn it in time.
        cli = [sys.executable, "-m", "gateway", "--home", str(home), "kanban"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
        with anyio.fail_after(30):
            await anyio.run_process([*cli, "boards", "create", "later"], env=env)
            await anyio.run_process([*cli, "--board", "later", "create", "t", "--assignee", "w"],
                                    env=env)
        created = time.monotonic()

        async def done() -> bool:
            if "later" not in {b.slug for b in daemon.hub.open_boards()}:
                return False
            board = await daemon.boards.open("later")
            return (await board.get_task(1)).status == "done"

        await wait_until(done, within=20, what="task on the new board done")
        assert time.monotonic() - created < 20


async def test_auto_decompose_toggle_on_disk_applies_without_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with running(home, "kanban: {auto_decompose: false}\n") as daemon:
        board = await daemon.boards.open("default")
        task = (await board.create_task("ship it\n- one\n- two", triage=True)).task
        await wait_until(lambda: _async(daemon.watcher.cycles > 1), within=5, what="cycles")
        assert (await board.get_task(task.id)).status == "triage"
        config = home / "config.yaml"
        config.write_text("kanban: {auto_decompose: true}\n", encoding="utf-8")
        os.utime(config, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        await board.comment(task.id, "nudge", author="me")  # any commit wakes the watcher

        async def decomposed() -> bool:
            return (await board.get_task(task.id)).status != "triage"

        await wait_until(decomposed, within=10, what="triage task decomposed")
        assert daemon.decomposer.settings.auto_decompose is True


async def test_no_platform_logs_how_to_add_one(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="gateway.daemon.components"):
        async with running(tmp_path / "home"):
            pass
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "no external chat platform is enabled" in text and "TELEGRAM_BOT_TOKEN" in text


def test_adapters_keep_no_retry_policy_the_runner_has_the_one_formula() -> None:
    options = adapter_options(PlatformConfig("telegram", enabled=True, secrets={"token": "1:x"}))
    assert "backoff" not in options  # a lost connection is retried by the runner alone
    runner = AdapterRunner("telegram", lambda: FakeAdapter(), {}, asyncio.Queue())
    ceilings = [1.0, 2.0, 60.0, 60.0]  # 1 s doubling up to a minute, jitter only shortening
    delays = [runner.backoff.delay(n) for n in (1, 2, 7, 100)]
    assert all(0.8 * c <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays


# Crashes on its first run (leaving a marker), then runs forever: only its claims matter here.
_CRASH_ONCE = ("import os, sys, time; marker = sys.argv[1]\n"
               "if not os.path.exists(marker):\n"
               "    open(marker, 'w').close(); sys.exit(1)\n"
               "time.sleep(60)")


async def test_a_backed_off_task_is_claimed_when_due_not_on_the_tick(tmp_path: Path) -> None:
    home = tmp_path / "home"
    marks = tmp_path / "marks"
    marks.mkdir()
    Profiles(home).create("w", command=[sys.executable, "-c", _CRASH_ONCE,
                                        str(marks / "crashed")], write_paths=[str(marks)])
    async with running(home, "kanban: {dispatch_interval_seconds: 30, auto_decompose: false}\n",
                       board={"backoff_base_seconds": 0.3, "backoff_jitter": 0.0}) as daemon:
        board = await daemon.boards.open("default")
        task = (await board.create_task("retried 0.3 s after its crash", assignee="w")).task

        async def retried() -> tuple[float, float] | None:
            events = await board.events(task_id=task.id)
            crashes = [e.created_at or 0.0 for e in events if e.kind == "crashed"]
            claims = [e.created_at or 0.0 for e in events if e.kind == "claimed"]
            return (crashes[0], claims[1]) if crashes and len(claims) > 1 else None

        crashed, reclaimed = await wait_until(retried, within=10, what="the retry claimed")
        # Due 0.3 s after the crash; the 30 s tick would have been far too late.
        assert 0.25 <= reclaimed - crashed < 1.3


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")
async def test_a_worker_exit_wakes_the_daemon_without_polling_and_it_never_spins(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    Profiles(home).create("w", command=[sys.executable, "-c",
                                        "import sys, time; time.sleep(0.5); sys.exit(3)"])
    config = "kanban: {dispatch_interval_seconds: 30, auto_decompose: false, failure_limit: 1}\n"
    async with running(home, config) as daemon:
        # No exit poll at all: only the worker's pidfd can report its end before the tick.
        daemon.dispatcher.settings = dataclasses.replace(daemon.dispatcher.settings,
                                                         exit_poll_seconds=30.0)
        board = await daemon.boards.open("default")
        task = (await board.create_task("crashes, then stays blocked", assignee="w")).task

        async def crashed() -> float | None:
            events = await board.events(task_id=task.id)
            claims = [e.created_at or 0.0 for e in events if e.kind == "claimed"]
            crashes = [e.created_at or 0.0 for e in events if e.kind == "crashed"]
            return crashes[0] - claims[0] if claims and crashes else None

        assert await wait_until(crashed, within=10, what="the crash recorded") < 3.0

        async def blocked() -> bool:
            return (await board.get_task(task.id)).status == "blocked"

        await wait_until(blocked, within=5, what="task blocked")
        before = daemon.watcher.cycles
        # Waiting on the clock is the point: nothing happens, so nothing may wake the loop.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 1.0)
        assert daemon.watcher.cycles - before <= 2, "the loop spun with nothing to do"
