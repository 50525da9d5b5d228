"""Dashboard benchmark: GET /api/board on a 10,000-task board. Prints figures; asserts nothing.

Two medians, through the real app in process (httpx ASGITransport, so HTTP parsing is included
but no socket):

* changed — a task is written before every request, so each read lists the board again (what
  the first tab sees after every event);
* unchanged — repeated reads of the same board version (every other open tab, reloads), served
  from the snapshot kept for that version;

and, for the breakdown, the kernel's card read alone (``Board.list_cards``).

Goal (issue 12): median <= 150 ms.

Usage: python bench/dashboard.py [--tasks N] [--rounds N] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from gateway.config import load_config
from gateway.dashboard import create_app

STATUS_MIX = ("ready", "ready", "todo", "done", "done", "done", "triage", "blocked")


async def fill(app: object, tasks: int) -> None:
    """Tasks spread over the columns: chains of five (so cards show children progress)."""
    board = await app.state.dashboard.boards.open("default")  # type: ignore[attr-defined]
    made = 0
    while made < tasks:
        batch = []
        for offset in range(min(250, tasks - made)):
            index = made + offset
            parents = [index] if index % 5 and index > 0 else []  # ids start at 1
            batch.append(board.create_task(
                f"Task {index}: {STATUS_MIX[index % len(STATUS_MIX)]} work item",
                body="A body the board view must never load. " * 20,
                assignee=f"agent-{index % 7}", triage=index % 40 == 0,
                parents=parents if index % 5 else []))
        await asyncio.gather(*batch)
        made += len(batch)
    # Finish roughly a third, so the done column is large too.
    for task in await board.list_tasks(status="ready", limit=tasks // 3):
        claim = await board.claim(task.id)
        await board.complete(task.id, lease=claim.lease, result="ok")


async def measure(tasks: int, rounds: int, limit: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        app = create_app(home, load_config(None, {}, home=home))
        async with app.router.lifespan_context(app):
            start = time.perf_counter()
            await fill(app, tasks)
            print(f"filled {tasks} tasks in {time.perf_counter() - start:.1f}s")
            board = await app.state.dashboard.boards.open("default")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                url = f"/api/board?limit={limit}"
                first = await client.get(url)
                data = first.json()
                print(f"payload {len(first.content) / 1024:.0f} KiB, counts {data['counts']}")
                changed, unchanged, kernel = [], [], []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    await board.list_cards()
                    kernel.append(time.perf_counter() - t0)
                for index in range(rounds):
                    await board.comment(1, f"bump {index}", author="bench")  # a new version
                    t0 = time.perf_counter()
                    response = await client.get(url)
                    changed.append(time.perf_counter() - t0)
                    assert response.status_code == 200
                    t0 = time.perf_counter()
                    await client.get(url)
                    unchanged.append(time.perf_counter() - t0)
    ms = 1000
    print(f"GET /api/board, {tasks} tasks, {limit} cards per column, {rounds} rounds")
    print(f"  board changed before each read: median {statistics.median(changed) * ms:6.1f} ms"
          f"  (p90 {sorted(changed)[int(0.9 * len(changed))] * ms:.1f} ms)")
    print(f"  unchanged board:                median {statistics.median(unchanged) * ms:6.1f} ms")
    print(f"  of which the kernel's read (Board.list_cards): median "
          f"{statistics.median(kernel) * ms:.1f} ms")
    print("  goal: median <= 150 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(measure(args.tasks, args.rounds, args.limit))


if __name__ == "__main__":
    main()
