"""Ready → worker process started, through the dispatcher's event-driven loop, beside the bare
cost of starting the same process. Prints figures; asserts nothing.

    python bench/dispatch.py [--tasks 200]

Each worker writes ``time.time()`` to a marker file as its first act. For the dispatcher the
clock starts when the task's creating transaction committed (it is ready); for the bare case
just before ``subprocess.Popen``. Both therefore include the interpreter's start-up; the
difference is what the dispatcher adds (wake-up, claim, workspace, prompt, spawn, set_worker).
It also prints the event loop's worst lag over the dispatched run (a 5 ms ticker): the daemon
shares that loop with chat, so the dispatcher's file and process work must stay off it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kanban.agents.profiles import Profiles  # noqa: E402
from kanban.home import Boards  # noqa: E402
from kanban.runtime.dispatcher import Dispatcher, DispatchSettings  # noqa: E402

WORKER = ("import sys, time; open(sys.argv[1], 'w').write(repr(time.time())); "
          "time.sleep(float(sys.argv[2]))")


def _read_marker(path: Path, deadline: float) -> float:
    while time.monotonic() < deadline:
        try:
            text = path.read_text()
            if text:
                return float(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.0005)
    raise TimeoutError(path)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def bare(n: int, root: Path) -> list[float]:
    out = []
    procs = []
    for i in range(n):
        marker = root / f"bare-{i}"
        start = time.time()
        proc = subprocess.Popen([sys.executable, "-S", "-c", WORKER, str(marker), "0"],
                                stdin=subprocess.DEVNULL, start_new_session=True)
        out.append(_read_marker(marker, time.monotonic() + 30) - start)
        procs.append(proc)
    for proc in procs:
        proc.wait()
    return out


class LagMeter:
    """How late a 5 ms periodic coroutine wakes up, worst case."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.monotonic() - before - 0.005)


async def dispatched(n: int, root: Path, meter: LagMeter) -> list[float]:
    home = root / "home"
    Profiles(home).create("bench", command=[sys.executable, "-S", "-c", WORKER,
                                            "{workspace}/marker", "0.3"])
    boards = Boards(home)
    board = await boards.open("default")
    settings = DispatchSettings(max_spawn=8, max_spawn_host=64, interval_seconds=60,
                                tmux_cleanup=False, exit_grace_seconds=5)
    dispatcher = Dispatcher(boards, Profiles(home), settings, base_env=dict(os.environ),
                            slugs=["default"])
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher.run(stop), name="bench-dispatcher")
    await dispatcher.ready.wait()
    ticker = asyncio.create_task(meter.run(), name="bench-lag-meter")
    out = []
    try:
        for i in range(n):
            created = await board.create_task(f"bench {i}", assignee="bench")
            ready_at = time.time()
            marker = board.workspaces_dir / str(created.task.id) / "marker"
            deadline = time.monotonic() + 30
            while not marker.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(marker)
                await asyncio.sleep(0.0005)
            started = await asyncio.to_thread(_read_marker, marker, deadline)
            out.append(started - ready_at)
            # Operator close of a running task (the worker lingers): needs force.
            await board.complete(created.task.id, as_operator=True, force=True)
    finally:
        ticker.cancel()
        stop.set()
        await runner
        await dispatcher.wait_workers(30)
        await dispatcher.aclose(terminate=True)
        await boards.close()
    return out


def show(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(f"{name:<28} n={len(ms):<4} p50={percentile(ms, 50):7.2f} ms  "
          f"p95={percentile(ms, 95):7.2f} ms  mean={statistics.fmean(ms):7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relayboard-bench-") as tmp:
        root = Path(tmp)
        bare_times = bare(args.tasks, root)
        meter = LagMeter()
        dispatch_times = asyncio.run(dispatched(args.tasks, root, meter))
    show("bare Popen → first line", bare_times)
    show("ready → worker first line", dispatch_times)
    delta50 = percentile(dispatch_times, 50) - percentile(bare_times, 50)
    delta95 = percentile(dispatch_times, 95) - percentile(bare_times, 95)
    print(f"dispatcher overhead: p50 +{delta50 * 1000:.2f} ms, p95 +{delta95 * 1000:.2f} ms")
    print(f"worst event-loop lag while dispatching: {meter.worst * 1000:.1f} ms")


if __name__ == "__main__":
    main()
