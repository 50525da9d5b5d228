"""Completions per second from 1, 4 and 16 worker processes: through the worker API, and by
writing the board's database directly (how workers reported before the API). Prints figures;
asserts nothing.

    python bench/workers.py [--tasks 1000] [--rounds 5]

The bench process claims every task itself and records each run's worker pid, as a dispatcher
does, and hands each long-lived worker process its ``task lease`` lines before the clock starts,
so neither process start-up nor claiming is in the figure: only the workers' reports. A worker
on the API sends ``complete`` on its connection (the serving process runs it through the command
layer, and concurrent completions share commits); a direct worker holds the SQLite file open and
completes under its own write lock, as every worker process did before. Each round runs both,
one after the other; the medians are printed, with the median and range of the rounds' ratios
API/direct. Direct writers contending for SQLite's lock vary widely from run to run on a busy
machine: read the ratio's range, not one round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.commands import Services  # noqa: E402
from gateway.worker_api import serving, socket_path  # noqa: E402
from kanban.agents.profiles import Profiles  # noqa: E402
from kanban.home import Boards  # noqa: E402

API_WORKER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from gateway.worker_api.client import Connection
mine = [line.split() for line in iter(sys.stdin.readline, "go\\n")]
with Connection(Path(sys.argv[1])) as api:
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()
    for task, lease in mine:
        api.call("complete", {{"result": "ok"}}, task_id=int(task), lease=lease,
                 board="default")
sys.stdout.write("done\\n"); sys.stdout.flush()
"""

DIRECT_WORKER = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from kanban.board import Board
async def main():
    mine = [line.split() for line in iter(sys.stdin.readline, "go\\n")]
    async with Board.open(Path(sys.argv[1]), slug="default") as board:
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()
        for task, lease in mine:
            await board.complete(int(task), lease=lease, result="ok")
        sys.stdout.write("done\\n"); sys.stdout.flush()
asyncio.run(main())
"""


async def one_run(kind: str, workers: int, tasks: int) -> float:
    with tempfile.TemporaryDirectory(prefix="rb-bench-workers-") as tmp:
        home = Path(tmp) / "home"
        boards = Boards(home)
        services = Services(boards=boards, profiles=Profiles(home))
        board = await boards.open("default")
        claims = [await board.claim((await board.create_task(f"t{i}")).task.id, ttl=600)
                  for i in range(tasks)]
        script = (API_WORKER if kind == "api" else DIRECT_WORKER).format(root=str(ROOT))
        target = str(socket_path(home) if kind == "api" else board.db.path)
        try:
            async with serving(services, socket_path(home)):
                procs = [await asyncio.create_subprocess_exec(
                    sys.executable, "-c", script, target,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(workers)]
                # Each worker is handed its runs (recorded as its own, as the dispatcher records
                # a worker's pid) and is up, its imports done, before the clock starts.
                for n, proc in enumerate(procs):
                    assert proc.stdin is not None and proc.stdout is not None
                    for claim in claims[n::workers]:
                        await board.set_worker(claim.run_id, pid=proc.pid, started_at=None)
                        proc.stdin.write(f"{claim.task_id} {claim.lease}\n".encode())
                    proc.stdin.write(b"go\n")
                    await proc.stdin.drain()
                    if await proc.stdout.readline() != b"ready\n":
                        raise RuntimeError("a worker did not start")
                started = time.perf_counter()
                for proc in procs:
                    assert proc.stdin is not None
                    proc.stdin.write(b"go\n")
                    await proc.stdin.drain()
                for proc in procs:
                    assert proc.stdout is not None
                    if (line := await proc.stdout.readline()) != b"done\n":
                        raise RuntimeError(f"a worker said {line!r}")
                elapsed = time.perf_counter() - started
                for proc in procs:
                    await proc.wait()
        finally:
            await services.aclose()
        done = sum(1 for t in await _statuses(home) if t == "done")
        if done != tasks:
            raise RuntimeError(f"{kind}: {done} of {tasks} tasks done")
        return tasks / elapsed


async def _statuses(home: Path) -> list[str]:
    boards = Boards(home)
    try:
        board = await boards.open("default")
        return [t.status for t in await board.list_tasks()]
    finally:
        await boards.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"claim-held tasks completed per second ({args.tasks} tasks; median of {args.rounds} "
          "rounds, each a direct run then an API run, so both see the same load)")
    print(f"{'workers':>8} {'direct DB':>12} {'worker API':>12} {'API/direct':>11} "
          f"{'ratio range':>14}")
    for workers in (1, 4, 16):
        rounds = [(await one_run("direct", workers, args.tasks),
                   await one_run("api", workers, args.tasks)) for _ in range(args.rounds)]
        ratios = sorted(api / direct for direct, api in rounds)
        print(f"{workers:>8} {statistics.median(d for d, _ in rounds):>10.0f}/s "
              f"{statistics.median(a for _, a in rounds):>10.0f}/s "
              f"{statistics.median(ratios):>10.2f}x {ratios[0]:>6.2f}-{ratios[-1]:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
