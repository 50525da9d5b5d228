"""Large-board benchmark: the same reads and writes at 10,000 and 100,000 tasks, side by side.

Prints figures; asserts nothing. For each size a fresh home is filled by bench/populate.py
(mostly done tasks, chains, created events), then:

* ``GET /api/board`` through the real dashboard app (httpx ASGITransport), the board changed
  before each read so none is served from the snapshot (median);
* ``kanban list --json`` and ``kanban show ID`` as real processes (median wall time);
* the chain step: ``complete`` of a parent that readies its child, in process (median);
* gateway start: ``relayboard gateway run`` until its ``gateway running`` line (median), and
  the gateway's resident memory then (VmRSS, median).

Nothing here should grow with the board faster than the work it does: the board view reads a
window of each column, a show reads one task, start reads no task at all.

Usage: python bench/large_board.py [--sizes 10000,100000] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from populate import populate

from gateway.config import load_config
from gateway.dashboard import create_app
from kanban import Boards

CONFIG = """\
dashboard: {port: 0}
kanban:
  max_spawn: 0            # the dispatcher runs, but starts no worker for the ready tasks
"""
READY_LINE = "gateway running on"
START_DEADLINE = 120.0
WARM_UP = 5  # chain steps not timed: a serving board's pages are in memory


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def board_read(home: Path, runs: int) -> float:
    app = create_app(home, load_config(None, {}, home=home))
    times = []
    async with app.router.lifespan_context(app):
        board = await app.state.dashboard.boards.open("default")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await client.get("/api/board")
            for index in range(runs):
                await board.comment(1, f"bump {index}", author="bench")  # a new version
                start = time.perf_counter()
                response = await client.get("/api/board")
                times.append(time.perf_counter() - start)
                response.raise_for_status()
    return median_ms(times)


async def chain_step(home: Path, runs: int) -> float:
    """``complete`` of a parent whose only child waits on it: the child becomes ready."""
    boards = Boards(home)
    times = []
    try:
        board = await boards.open("default")
        for step in range(runs + WARM_UP):
            parent = (await board.create_task("chain parent")).task.id
            child = (await board.create_task("chain child", parents=[parent])).task.id
            claim = await board.claim(parent)
            start = time.perf_counter()
            await board.complete(parent, lease=claim.lease, result="ok")
            if step >= WARM_UP:  # the first steps read the indexes' pages from disk
                times.append(time.perf_counter() - start)
            shown = await board.show_task(child)
            assert shown.task.status == "ready", shown.task.status
    finally:
        await boards.close()
    return median_ms(times)


def child_env() -> dict[str, str]:
    """This environment without Relayboard's variables, and with bytecode caching on (as an
    installed package runs: a process compiling its modules each time measures the compiler)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYBOARD_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "relayboard-bench-pycache")
    return env


def cli_wall(home: Path, args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gateway", "--home", str(home), *args],
                       stdout=subprocess.DEVNULL, env=child_env(), check=True)
        times.append(time.perf_counter() - start)
    return median_ms(times)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def gateway_start(home: Path, runs: int) -> tuple[float, float]:
    """Median seconds from exec to the ready line, and median RSS (MiB) then."""
    env = child_env()
    starts, rss = [], []
    for _ in range(runs):
        log = home / "bench-gateway.log"
        with log.open("wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "gateway", "--home", str(home),
                                     "gateway", "run"], stdout=out, stderr=subprocess.STDOUT,
                                    env=env)
            try:
                while READY_LINE not in log.read_text(errors="replace"):
                    if proc.poll() is not None:
                        raise RuntimeError(f"gateway exited: {log.read_text()[-2000:]}")
                    if time.perf_counter() - start > START_DEADLINE:
                        raise RuntimeError("gateway did not start in time")
                    time.sleep(0.005)  # a bench polls its log; tests wait on events
                starts.append(time.perf_counter() - start)
                rss.append(rss_kib(proc.pid) / 1024)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    return statistics.median(starts) * 1000, statistics.median(rss)


def measure(tasks: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "config.yaml").write_text(CONFIG, encoding="utf-8")
        started = time.perf_counter()
        populate(home, tasks)
        print(f"  populated {tasks} tasks in {time.perf_counter() - started:.1f} s", flush=True)
        figures = {"GET /api/board": asyncio.run(board_read(home, runs * 3)),
                   "kanban list --json": cli_wall(home, ["kanban", "list", "--json"], runs),
                   "kanban show": cli_wall(home, ["kanban", "show", str(tasks // 2)], runs),
                   "chain step (complete)": asyncio.run(chain_step(home, runs * 3))}
        start_ms, rss = gateway_start(home, runs)
        figures["gateway start"] = start_ms
        figures["gateway RSS (MiB)"] = rss
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for size in sizes:
        print(f"{size} tasks:", flush=True)
        results[size] = measure(size, args.runs)
    header = "".join(f"{size:>14,}" for size in sizes)
    print(f"\n{'median':28}{header}   growth")
    for name in results[sizes[0]]:
        cells = "".join(f"{results[size][name]:14.1f}" for size in sizes)
        growth = results[sizes[-1]][name] / results[sizes[0]][name]
        unit = "" if "MiB" in name else " ms"
        print(f"{name + unit:28}{cells}   {growth:5.2f}x")


if __name__ == "__main__":
    main()
