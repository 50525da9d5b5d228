"""Notification and wake-up latency of the gateway daemon. Prints figures; asserts nothing.

    python bench/notify.py [--rounds 60]

Runs the real :class:`gateway.daemon.Daemon` in this process with the in-memory FakeAdapter.
Every clock starts at the commit of the event concerned (its ``created_at`` in the event log) and
stops at a wall-clock reading taken when the measured thing happened:

1. ``completed`` event (completed in this process) → the adapter's ``send`` called;
2. the same with ``relayboard kanban complete`` run in another process (the daemon hears of it
   through its ``PRAGMA data_version`` poll);
3. ``relayboard kanban create`` in another process → the ``spawned`` event of its worker
   (wake-up, claim, workspace, prompt and ``Popen``; the worker's own start-up is not included).

Goal (issue): p95 ≤ 50 ms for 1 and 2; ≤ 50 ms + spawn for 3.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import load_config  # noqa: E402
from gateway.daemon import Daemon  # noqa: E402
from kanban.agents.profiles import Profiles  # noqa: E402
from kanban.board import Board  # noqa: E402
from platforms.base import Destination  # noqa: E402
from platforms.fake import FakeAdapter  # noqa: E402
from platforms.receipts import Receipt  # noqa: E402


class TimedFake(FakeAdapter):
    """Records the wall-clock time of every send."""

    def __init__(self) -> None:
        super().__init__(platform="fake")
        self.sent_at: list[float] = []

    async def send(self, dest: Destination, text: str) -> Receipt:
        self.sent_at.append(time.time())
        return await super().send(dest, text)


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "--home", str(home), *args]


async def _wait(probe_count: int, fake: TimedFake, within: float = 10.0) -> float:
    deadline = time.monotonic() + within
    while len(fake.sent_at) < probe_count:
        if time.monotonic() > deadline:
            raise SystemExit("no notification within 10 s")
        await asyncio.sleep(0.001)
    return fake.sent_at[probe_count - 1]


async def _completed_at(board: Board, task_id: int, kind: str = "completed") -> float:
    for event in reversed(await board.events(task_id=task_id)):
        if event.kind == kind and event.created_at is not None:
            return event.created_at
    raise SystemExit(f"no {kind} event on task {task_id}")


def _row(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"| {label} | {statistics.median(ms):.1f} ms | {p95:.1f} ms | {len(ms)} |"


async def main(rounds: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "config.yaml").write_text(
            "kanban: {auto_decompose: false, dispatch_interval_seconds: 60, max_spawn: 16}\n",
            encoding="utf-8")
        Profiles(home).create("w", command=[sys.executable, "-c", "pass"])
        fake = TimedFake()
        daemon = Daemon(load_config(None, env, home=home), environ=env,
                        adapters={"fake": lambda: fake}, web=False, dashboard=False)
        stop = anyio.Event()
        in_process: list[float] = []
        cross_process: list[float] = []
        spawn: list[float] = []
        async with anyio.create_task_group() as group:
            group.start_soon(daemon.run, stop)
            await daemon.ready.wait()
            board = await daemon.boards.open("default")
            for _ in range(rounds):
                # Unassigned: the dispatcher leaves it alone; we complete it ourselves.
                task = (await board.create_task("bench")).task
                await board.subscribe(task.id, platform="fake", chat="c")
                await board.complete(task.id, summary="ok", as_operator=True)
                sent = await _wait(len(fake.sent_at) + 1, fake)
                in_process.append(sent - await _completed_at(board, task.id))
            for _ in range(rounds):
                task = (await board.create_task("bench")).task
                await board.subscribe(task.id, platform="fake", chat="c")
                expected = len(fake.sent_at) + 1
                await anyio.run_process(_cli(home, "kanban", "complete", str(task.id),
                                             "--summary", "ok"), env=env)
                sent = await _wait(expected, fake)
                cross_process.append(sent - await _completed_at(board, task.id))
            for _ in range(max(10, rounds // 3)):
                result = await anyio.run_process(
                    _cli(home, "kanban", "create", "job", "--assignee", "w", "--json"), env=env)
                task_id = int(result.stdout.decode().split('"id":')[1].split(",")[0])
                deadline = time.monotonic() + 10
                while True:
                    kinds = [e.kind for e in await board.events(task_id=task_id)]
                    if "spawned" in kinds or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.005)
                spawn.append(await _completed_at(board, task_id, "spawned")
                             - await _completed_at(board, task_id, "created"))
            stop.set()
        await daemon.dispatcher.aclose(terminate=True)
    print("| path | p50 | p95 | n |")
    print("|---|---|---|---|")
    print(_row("completed (in process) → adapter send", in_process))
    print(_row("CLI `kanban complete` (other process) → adapter send", cross_process))
    print(_row("CLI `kanban create` (other process) → worker spawned", spawn))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    asyncio.run(main(parser.parse_args().rounds))
