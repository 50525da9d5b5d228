"""A stress participant run as its own process: ``python racer.py ROLE DB ARG``.

creator N   — N times: create a parent, create a child, link parent → child.
claimer S   — claim every ready task and complete it at once, until a ``stop`` file appears
              beside the DB and nothing is ready. S seconds is only a safety bound: reaching it
              is a failure (exit 3, with what was still ready), never a quiet stop.
grabber IDS — try to claim each task id in IDS (comma-separated); print the ids it won.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from kanban.board import Board
from kanban.errors import NotClaimable
from kanban.storage.backend import Storage


async def creator(board: Board, rounds: int) -> None:
    for index in range(rounds):
        parent = (await board.create_task(f"parent {index}")).task
        child = (await board.create_task(f"child {index}")).task
        await board.link(parent.id, child.id)


async def claimer(board: Board, seconds: float, stop: Path) -> None:
    deadline = time.monotonic() + seconds
    while True:
        ready = await board.ready_candidates(20)
        if not ready and stop.exists():
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"claimer gave up after {seconds:.0f} s with tasks "
                             f"{[t.id for t in ready]} still ready")
        if not ready:
            # Nothing claimable: wait for a commit (ours or another process's) instead of
            # spinning on reads, which starves the creator on a loaded 2-core machine.
            version = board.changes.version
            await board.poll_external()
            await board.changes.wait(version, 0.05)
            continue
        for task in ready:
            try:
                claim = await board.claim(task.id)
            except NotClaimable:
                continue
            await board.complete(task.id, lease=claim.lease, result="ok")


async def grabber(board: Board, ids: list[int]) -> None:
    won = []
    for task_id in ids:
        try:
            await board.claim(task_id)
        except NotClaimable:
            continue
        won.append(task_id)
    print(",".join(map(str, won)), flush=True)


async def main(role: str, db: str, arg: str) -> None:
    board = await Board.open(Path(db), storage=Storage.from_environ(os.environ))
    try:
        if role == "creator":
            await creator(board, int(arg))
        elif role == "claimer":
            await claimer(board, float(arg), Path(db).parent / "stop")
        elif role == "grabber":
            await grabber(board, [int(x) for x in arg.split(",") if x])
        else:
            raise SystemExit(f"unknown role {role}")
    finally:
        await board.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
