"""CLI benchmark: prints figures measured in one run; asserts nothing.

1. ``relayboard kanban list`` (human table) and ``list --json`` on a board of N tasks (default
   10,000), wall time per process, median of a few runs. Goal: each <= 0.5x the time before the
   command layer (about 6 s and 1.5 s then).
2. ``relayboard kanban create`` wall time, and the import time of the modules it loads
   (``python -X importtime``). Goal: <= 150 ms.

To compare with another checkout, point ``--source`` at its tree (it goes first on PYTHONPATH).

Usage: python bench/cli.py [--tasks N] [--runs N] [--source DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kanban import Boards


async def seed(home: Path, count: int) -> None:
    boards = Boards(home)
    try:
        board = await boards.open("default")
        previous = None
        for i in range(count):
            # A body of some size, a few links and priorities: what a real board carries.
            parents = [previous] if previous is not None and i % 10 == 0 else []
            made = await board.create_task(f"task {i} of the benchmark", body="b" * 400,
                                           priority=i % 5, parents=parents)
            previous = made.task.id
    finally:
        await boards.close()


def timed(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time; NaN when the command fails (an older checkout without the flag)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            return float("nan")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_ms(argv: list[str], env: dict[str, str]) -> float:
    """Cumulative import time of the top-level imports of one run, in ms."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=True)
    total = 0
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match and not match.group(2).startswith(" "):
            total += int(match.group(1))
    return total / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, default=None,
                        help="checkout to measure instead of the installed package")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    entry = ["-m", "gateway"]
    if args.source is not None:
        # An editable install's import hook would still find this checkout: drop it first.
        entry = ["-c", (
            "import runpy, sys; "
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
            f"sys.path.insert(0, {str(args.source.resolve())!r}); "
            "runpy.run_module('gateway', run_name='__main__')")]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        started = time.perf_counter()
        asyncio.run(seed(home, args.tasks))
        print(f"seeded {args.tasks} tasks in {time.perf_counter() - started:.1f} s")
        cli = [sys.executable, *entry, "--home", str(home)]
        human = timed([*cli, "kanban", "list"], env, args.runs)
        as_json = timed([*cli, "kanban", "list", "--json"], env, args.runs)
        everything = timed([*cli, "kanban", "list", "--all"], env, 1)
        print(f"kanban list         {human * 1000:8.0f} ms  (first 100 rows)")
        print(f"kanban list --all   {everything * 1000:8.0f} ms  (every row, one run)")
        print(f"kanban list --json  {as_json * 1000:8.0f} ms")

        small = Path(tmp) / "small"
        create = [sys.executable, *entry, "--home", str(small), "kanban", "create", "start-up"]
        subprocess.run(create, env=env, stdout=subprocess.DEVNULL, check=True)  # board made
        wall = timed(create, env, max(7, args.runs))
        imports = import_ms(create, env)
        bare = timed([sys.executable, "-c", "pass"], env, 5)
        print(f"kanban create       {wall * 1000:8.0f} ms wall (interpreter alone "
              f"{bare * 1000:.0f} ms), imports {imports:.0f} ms")


if __name__ == "__main__":
    main()
