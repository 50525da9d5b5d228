"""Factories for tests and benchmarks: real boards in a directory, small graphs, lease claims.

Shipped beside the kernel (like httpx's MockTransport) so other packages' tests build boards the
same way the kernel's own tests do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kanban.board import Board, BoardOptions
from kanban.models import Claim, Task
from kanban.storage.backend import Storage


async def open_board(directory: Path, *, slug: str = "default", storage: Storage | None = None,
                     **options: Any) -> Board:
    """A real board at ``<directory>/boards/<slug>/kanban.db`` (the file, or on PostgreSQL the
    board's local folder), in ``storage`` or the default storage."""
    path = directory / "boards" / slug / "kanban.db"
    return await Board.open(path, slug=slug, options=BoardOptions(**options), storage=storage)


async def make_task(board: Board, title: str = "task", **fields: Any) -> Task:
    return (await board.create_task(title, **fields)).task


async def make_chain(board: Board, length: int, *, prefix: str = "step") -> list[Task]:
    """``length`` tasks, each the child of the previous one."""
    tasks: list[Task] = []
    for index in range(length):
        parents = [tasks[-1].id] if tasks else []
        tasks.append(await make_task(board, f"{prefix} {index}", parents=parents))
    return tasks


async def claim_and_complete(board: Board, task_id: int, **complete: Any) -> tuple[Claim, Task]:
    claim = await board.claim(task_id)
    task = await board.complete(task_id, lease=claim.lease, **complete)
    return claim, task


async def operator_complete(board: Board, task_id: int, **complete: Any) -> Task:
    """Close a task as an operator would from the CLI (``--force`` over a live run)."""
    return await board.complete(task_id, as_operator=True, force=True, **complete)


class FakeClock:
    """The time a board's back-off rules read; moves only when told to."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fake_clock(board: Board, start: float | None = None) -> FakeClock:
    """Install (or return the already installed) fake clock on ``board``."""
    if isinstance(board.clock, FakeClock):
        return board.clock
    clock = FakeClock(start)
    board.clock = clock
    return clock


async def past_backoff(board: Board, task_id: int) -> None:
    """Move the board's clock just past the task's retry time, so it is claimable again."""
    task = await board.get_task(task_id)
    if task.not_before is not None:
        clock = fake_clock(board)
        clock.now = max(clock.now, task.not_before + 0.001)
