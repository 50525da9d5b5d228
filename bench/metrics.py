"""Metrics benchmark: what one ``GET /metrics`` scrape costs on a large board. Prints figures;
asserts nothing.

Medians over ``--rounds`` of: the board's status counts (one ``GROUP BY`` on the status index),
its outbox backlog, and the whole exposition (those reads plus rendering every family) through
:class:`~gateway.metrics.GatewayMetrics`, in process.

Usage: python bench/metrics.py [--tasks N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.metrics import BoardSnapshot, GatewayMetrics, Snapshot
from kanban.home import Boards


async def fill(boards: Boards, tasks: int) -> Any:
    board = await boards.open("default")
    made = 0
    while made < tasks:
        size = min(500, tasks - made)
        await asyncio.gather(*(board.create_task(f"task {made + i}") for i in range(size)))
        made += size
    for task in await board.list_tasks(status="ready", limit=tasks // 2):
        claim = await board.claim(task.id)
        await board.complete(task.id, lease=claim.lease, result="ok")
    return board


async def median_ms(call: Callable[[], Awaitable[object]], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main(tasks: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        boards = Boards(Path(tmp))
        start = time.perf_counter()
        board = await fill(boards, tasks)
        print(f"filled {tasks} tasks in {time.perf_counter() - start:.1f} s")

        async def snapshot() -> Snapshot:
            counts = await board.status_counts()
            pending, oldest = await board.outbox_backlog()
            return Snapshot(boards={"default": BoardSnapshot(
                tasks=counts, outbox_pending=pending, outbox_oldest=oldest)}, at=time.time())

        metrics = GatewayMetrics(snapshot)
        metrics.board_seen("default")
        print(f"status counts   median {await median_ms(board.status_counts, rounds):7.2f} ms")
        print(f"outbox backlog  median {await median_ms(board.outbox_backlog, rounds):7.2f} ms")
        print(f"whole scrape    median {await median_ms(metrics.exposition, rounds):7.2f} ms")
        await boards.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.rounds))
