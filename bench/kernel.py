"""Kernel benchmark: prints figures and ratios measured in one run; asserts nothing.

1. claim+complete cycles/s through the Board next to the same work as a raw sqlite3 loop
   (WAL, synchronous=FULL, 3-4 statements per transaction). Goal: >= 50 % of the raw loop.
2. Chain step latency: complete a task → its child is claimable, with 0 and with 20,000
   unrelated waiting tasks on the board. Goal: <= 2 ms, and the 20k figure <= 2x the 0 figure.

Usage: python bench/kernel.py [--cycles N] [--steps N] [--filler N]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from kanban.board import Board
from kanban.storage.tx import Tx


def raw_loop(path: Path, cycles: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, status TEXT, run INTEGER, "
                 "result TEXT, updated REAL)")
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, task INTEGER, lease TEXT, "
                 "status TEXT, claimed REAL, ended REAL)")
    conn.execute("CREATE INDEX t_status ON tasks (status)")
    conn.executemany("INSERT INTO tasks (status) VALUES ('ready')", [()] * cycles)
    start = time.perf_counter()
    for task_id in range(1, cycles + 1):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
        run = conn.execute("INSERT INTO runs (task, lease, status, claimed) VALUES (?,?,?,?)",
                           (task_id, secrets.token_urlsafe(24), "active", time.time())).lastrowid
        conn.execute("UPDATE tasks SET status='running', run=?, updated=? WHERE id=? AND "
                     "status='ready'", (run, time.time(), task_id))
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SELECT * FROM runs WHERE id = ?", (run,)).fetchone()
        conn.execute("UPDATE runs SET status='completed', ended=? WHERE id=?", (time.time(), run))
        conn.execute("UPDATE tasks SET status='done', result='ok', updated=? WHERE id=? AND "
                     "status='running'", (time.time(), task_id))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return cycles / elapsed


async def board_loop(path: Path, cycles: int) -> float:
    board = await Board.open(path)
    try:
        ids = []
        for index in range(cycles):
            ids.append((await board.create_task(f"t{index}")).task.id)
        start = time.perf_counter()
        for task_id in ids:
            claim = await board.claim(task_id)
            await board.complete(task_id, lease=claim.lease, result="ok")
        return cycles / (time.perf_counter() - start)
    finally:
        await board.close()


async def burst(path: Path, count: int) -> tuple[float, float, int]:
    """``count`` running tasks completed at once (gathered): sequential vs grouped commits."""
    board = await Board.open(path)
    try:
        claims = []
        for index in range(2 * count):
            task = (await board.create_task(f"b{index}")).task
            claims.append(await board.claim(task.id))
        start = time.perf_counter()
        for claim in claims[:count]:
            await board.complete(claim.task_id, lease=claim.lease)
        sequential = count / (time.perf_counter() - start)
        before = board.db.batches
        start = time.perf_counter()
        await asyncio.gather(*(board.complete(c.task_id, lease=c.lease) for c in claims[count:]))
        grouped = count / (time.perf_counter() - start)
        return sequential, grouped, board.db.batches - before
    finally:
        await board.close()


async def add_filler(board: Board, count: int) -> None:
    """``count`` unrelated tasks waiting in todo behind one parent that never finishes."""
    blocker = (await board.create_task("never finishes")).task.id

    def insert(tx: Tx) -> None:
        now = time.time()
        cur = tx.conn.executemany(
            "INSERT INTO tasks (title, status, created_at, updated_at) VALUES (?, 'todo', ?, ?)",
            [(f"filler {i}", now, now) for i in range(count)],
        )
        del cur
        tx.conn.execute(
            "INSERT INTO task_links (parent_id, child_id) SELECT ?, id FROM tasks "
            "WHERE title LIKE 'filler %'", (blocker,))

    await board.db.write(insert)


async def chain_latency(path: Path, steps: int, filler: int) -> list[float]:
    board = await Board.open(path)
    try:
        if filler:
            await add_filler(board, filler)
        chain = []
        for index in range(steps + 1):
            parents = [chain[-1]] if chain else []
            chain.append((await board.create_task(f"step {index}", parents=parents)).task.id)
        samples = []
        for index in range(steps):
            claim = await board.claim(chain[index])
            start = time.perf_counter()
            await board.complete(chain[index], lease=claim.lease, result="ok")
            child = await board.get_task(chain[index + 1])
            samples.append((time.perf_counter() - start) * 1000)
            assert child.status == "ready", child.status
        return samples
    finally:
        await board.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--filler", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw, ours = [], []
        for attempt in range(args.repeat):
            raw.append(raw_loop(root / f"raw{attempt}.db", args.cycles))
            ours.append(asyncio.run(board_loop(root / f"board{attempt}.db", args.cycles)))
        raw_med, ours_med = statistics.median(raw), statistics.median(ours)
        print(f"claim+complete, {args.cycles} cycles x {args.repeat} runs (median):")
        print(f"  raw sqlite3 loop : {raw_med:8.0f} cycles/s")
        print(f"  Board (aiosqlite): {ours_med:8.0f} cycles/s")
        print(f"  ratio            : {ours_med / raw_med:8.1%}   (goal >= 50 %)")
        seq, grouped, commits = asyncio.run(burst(root / "burst.db", 500))
        print("burst of 500 completions:")
        print(f"  one at a time : {seq:8.0f} completions/s")
        print(f"  all at once   : {grouped:8.0f} completions/s in {commits} commits "
              f"({grouped / seq:.1f}x)")
        empty = asyncio.run(chain_latency(root / "chain0.db", args.steps, 0))
        full = asyncio.run(chain_latency(root / "chain20k.db", args.steps, args.filler))
        e50, f50 = statistics.median(empty), statistics.median(full)
        e95 = statistics.quantiles(empty, n=20)[18]
        f95 = statistics.quantiles(full, n=20)[18]
        print(f"chain step (complete → child claimable), {args.steps} steps:")
        print(f"  0 waiting tasks      : p50 {e50:6.2f} ms   p95 {e95:6.2f} ms")
        print(f"  {args.filler} waiting tasks: p50 {f50:6.2f} ms   p95 {f95:6.2f} ms")
        print(f"  ratio p50 20k/0      : {f50 / e50:6.2f}x  (goal <= 2x, and <= 2 ms)")


if __name__ == "__main__":
    main()
