"""PostgreSQL next to SQLite, measured in one run: prints figures and ratios; asserts nothing.

1. claim+complete cycles/s with 1, 4 and 16 worker PROCESSES on one board. Each process opens
   the board and loops — pick a ready task (at random among the first 32, as competing
   dispatchers would), claim it, complete it — until none is left. The clock runs from the
   moment every process is ready to the last one's finish. Median of ``--repeat`` runs.
2. ready → claimed latency across processes: this process creates a task; another process,
   idle and waiting on the board's change signal (LISTEN/NOTIFY on PostgreSQL; on SQLite the
   dispatcher's ``PRAGMA data_version`` poll every ``--poll`` seconds), sees it and claims it.
   A spawn then adds the process start that bench/dispatch.py measures.

The DSN comes from RELAYBOARD_PG_DSN or RELAYBOARD_TEST_PG_DSN (never the command line); the
boards live in a random namespace, dropped at the end.

Usage: python bench/postgres.py [--tasks 1600] [--procs 1,4,16] [--repeat 3] [--samples 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kanban.board import Board  # noqa: E402
from kanban.errors import Conflict  # noqa: E402
from kanban.storage.backend import Storage  # noqa: E402
from kanban.storage.tx import Tx  # noqa: E402

DSN_VARS = ("RELAYBOARD_PG_DSN", "RELAYBOARD_TEST_PG_DSN")
START_TIMEOUT = 60.0


# ---- inside a child process -------------------------------------------------------------------

async def open_child_board(path: Path, slug: str) -> Board:
    # The storage arrives in RELAYBOARD_STORAGE/_PG_DSN/_PG_NAMESPACE (Storage.as_environ).
    storage = Storage.from_environ(os.environ) or Storage()
    return await Board.open(path, slug=slug, storage=storage)


async def worker(path: Path, slug: str) -> None:
    board = await open_child_board(path, slug)
    try:
        await board.ready_candidates(limit=1)  # connections warm before the clock starts
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go"
        rng = random.Random()
        done = conflicts = 0
        while True:
            candidates = await board.ready_candidates(limit=32)
            if not candidates:
                break
            task = rng.choice(candidates)
            try:
                claim = await board.claim(task.id)
            except Conflict:
                conflicts += 1  # another process won it
                continue
            await board.complete(task.id, lease=claim.lease, result="ok")
            done += 1
        print(json.dumps({"done": done, "conflicts": conflicts, "end": time.time()}),
              flush=True)
    finally:
        await board.close()


async def watcher(path: Path, slug: str, poll: float) -> None:
    """Idle until the change signal moves, then claim every ready task, printing when."""
    board = await open_child_board(path, slug)
    try:
        await board.poll_external()  # PostgreSQL: starts the LISTEN connection
        print("ready", flush=True)
        stop = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))

        async def poll_loop() -> None:
            while True:  # the dispatcher's SQLite safety net; on PostgreSQL a no-op
                await board.poll_external()
                await asyncio.sleep(poll)

        poller = asyncio.create_task(poll_loop())
        version = board.changes.version
        while not stop.done():
            version = await board.changes.wait(version, 1.0)
            for task in await board.ready_candidates(limit=8):
                try:
                    await board.claim(task.id)
                except Conflict:
                    continue
                print(json.dumps({"task": task.id, "claimed": time.time()}), flush=True)
        poller.cancel()
    finally:
        await board.close()


# ---- the conductor ----------------------------------------------------------------------------

class Backend:
    def __init__(self, name: str, home: Path, storage: Storage) -> None:
        self.name, self.home, self.storage = name, home, storage

    def path(self, slug: str) -> Path:
        return self.home / "boards" / slug / "kanban.db"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
        env.update(self.storage.as_environ())
        return env

    async def child(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, __file__, *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=self.env())


async def fill(board: Board, count: int) -> None:
    def insert(tx: Tx) -> None:
        stamp = time.time()
        for index in range(count):
            tx.execute("INSERT INTO tasks (title, status, created_at, updated_at) "
                       "VALUES (?, 'ready', ?, ?)", (f"t{index}", stamp, stamp))

    await board.db.write(insert)


async def line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
    if not raw:
        raise RuntimeError("a benchmark process ended early")
    return raw.decode().strip()


async def throughput(backend: Backend, procs: int, tasks: int, slug: str) -> tuple[float, int]:
    board = await Board.open(backend.path(slug), slug=slug, storage=backend.storage)
    try:
        await fill(board, tasks)
    finally:
        await board.close()
    children = [await backend.child("_worker", str(backend.path(slug)), slug)
                for _ in range(procs)]
    for proc in children:
        assert await line(proc) == "ready"
    start = time.time()
    for proc in children:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    reports = [json.loads(await line(proc)) for proc in children]
    for proc in children:
        await proc.wait()
    done = sum(int(r["done"]) for r in reports)
    if done != tasks:
        raise RuntimeError(f"{backend.name}: {done} of {tasks} tasks completed")
    elapsed = max(float(r["end"]) for r in reports) - start
    return tasks / elapsed, sum(int(r["conflicts"]) for r in reports)


async def latency(backend: Backend, samples: int, poll: float) -> list[float]:
    slug = "latency"
    board = await Board.open(backend.path(slug), slug=slug, storage=backend.storage)
    proc = await backend.child("_watcher", str(backend.path(slug)), slug, str(poll))
    try:
        assert await line(proc) == "ready"
        rng = random.Random(7)
        out = []
        for index in range(samples):
            # A pause spread over the poll period, so SQLite's poll phase is sampled evenly
            # (a fixed pause would lock onto it).
            await asyncio.sleep(rng.uniform(0.01, max(0.1, poll)))
            task = (await board.create_task(f"l{index}")).task
            committed = time.time()
            seen = json.loads(await line(proc))
            if seen["task"] != task.id:
                raise RuntimeError(f"claimed {seen['task']}, expected {task.id}")
            out.append((float(seen["claimed"]) - committed) * 1000)
        return out
    finally:
        assert proc.stdin is not None
        proc.stdin.write(b"stop\n")
        await proc.stdin.drain()
        await asyncio.wait_for(proc.wait(), START_TIMEOUT)
        await board.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace, dsn: str, root: Path) -> None:
    namespace = "bench" + secrets.token_hex(4)
    backends = [Backend("SQLite", root / "sqlite", Storage()),
                Backend("PostgreSQL", root / "pg", Storage.postgres(dsn, namespace=namespace))]
    procs = [int(p) for p in args.procs.split(",")]
    try:
        rates: dict[tuple[str, int], float] = {}
        print(f"claim+complete, {args.tasks} tasks per run, median of {args.repeat} runs "
              f"({os.cpu_count()} CPUs):")
        print(f"  {'processes':>9}  {'SQLite':>10}  {'PostgreSQL':>10}  {'PG/SQLite':>9}  "
              "conflicts (sqlite/pg)")
        for n in procs:
            conflicts: dict[str, int] = {}
            for backend in backends:
                runs = [await throughput(backend, n, args.tasks, f"tp{n}x{i}")
                        for i in range(args.repeat)]
                rates[backend.name, n] = statistics.median(r for r, _ in runs)
                conflicts[backend.name] = int(statistics.median(c for _, c in runs))
            s, p = rates["SQLite", n], rates["PostgreSQL", n]
            print(f"  {n:>9}  {s:>8.0f}/s  {p:>8.0f}/s  {p / s:>8.2f}x  "
                  f"{conflicts['SQLite']}/{conflicts['PostgreSQL']}")
        base = procs[0]
        print("  scaling vs " + f"{base} process(es): " + ", ".join(
            f"{n}: SQLite {rates['SQLite', n] / rates['SQLite', base]:.2f}x, PostgreSQL "
            f"{rates['PostgreSQL', n] / rates['PostgreSQL', base]:.2f}x" for n in procs[1:]))
        print(f"ready → claimed by another process, {args.samples} tasks:")
        for backend in backends:
            ms = await latency(backend, args.samples, args.poll)
            how = ("LISTEN/NOTIFY" if backend.storage.is_postgres
                   else f"data_version poll every {args.poll:g} s")
            print(f"  {backend.name:<10} ({how}): p50 {pct(ms, 50):7.2f} ms   "
                  f"p95 {pct(ms, 95):7.2f} ms   max {max(ms):7.2f} ms")
    finally:
        from kanban.storage.pg import drop_namespace

        drop_namespace(dsn, namespace)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        asyncio.run(worker(Path(sys.argv[2]), sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_watcher":
        asyncio.run(watcher(Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1600)
    parser.add_argument("--procs", default="1,4,16")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--poll", type=float, default=0.5,
                        help="SQLite watcher's data_version poll (the dispatcher's default)")
    args = parser.parse_args()
    dsn = next((os.environ[v] for v in DSN_VARS if os.environ.get(v)), "")
    if not dsn:
        sys.exit(f"set {' or '.join(DSN_VARS)} to a PostgreSQL DSN")
    with tempfile.TemporaryDirectory(prefix="relayboard-bench-") as tmp:
        asyncio.run(run(args, dsn, Path(tmp)))


if __name__ == "__main__":
    main()
