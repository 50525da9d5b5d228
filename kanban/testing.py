"""Factories for tests and benchmarks: real boards in a directory, small graphs, lease claims.

Shipped beside the kernel (like httpx's MockTransport) so other packages' tests build boards the
same way the kernel's own tests do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kanban.board import Board, BoardOptions
from kanban.models import Claim, Task


async def open_board(directory: Path, *, slug: str = "default", **options: Any) -> Board:
    """A real board file at ``<directory>/boards/<slug>/kanban.db``."""
    path = directory / "boards" / slug / "kanban.db"
    return await Board.open(path, slug=slug, options=BoardOptions(**options))


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
