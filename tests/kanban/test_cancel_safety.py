"""A write that reached the database thread finishes everything even if its caller is cancelled:
rows, files and the change signal always agree (the daemon cancels on every shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from kanban.board import Board
from kanban.errors import TaskNotFound
from kanban.testing import make_task


async def _cancel_after(rng: random.Random, work: Awaitable[Any], spins: int) -> bool:
    """Start ``work``, let the loop turn 0..spins times, cancel it; True if it was cancelled."""
    call = asyncio.ensure_future(work)
    for _ in range(rng.randrange(0, spins + 1)):
        await asyncio.sleep(0)  # a turn of the event loop, not a wait for anything
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call
    return call.cancelled()


async def test_cancelled_delete_archived_never_leaves_files_or_sleeping_watchers(
    board: Board,
) -> None:
    rng = random.Random(8_3)
    outcomes = {"ran despite cancel": 0, "never ran": 0, "finished": 0}
    # At least 80 rounds, and on until the interesting outcome has happened (how many loop turns
    # a write takes to reach the database thread depends on the machine's load).
    for index in range(600):
        if index >= 80 and outcomes["ran despite cancel"] > 0:
            break
        task = await make_task(board, f"t{index}")
        await board.archive([task.id])
        files = board.attachments_path(task.id)
        files.mkdir(parents=True)
        (files / "report.pdf").write_bytes(b"%PDF")
        await board.db.settled()
        version = board.changes.version
        cancelled = await _cancel_after(rng, board.delete_archived([task.id]), 12)
        await board.db.settled()
        try:
            await board.get_task(task.id)
        except TaskNotFound:
            deleted = True
        else:
            deleted = False
        if deleted:
            assert not files.exists(), f"iteration {index}: rows deleted, files left"
            assert board.changes.version > version, f"iteration {index}: no watcher woken"
            kinds = [e.payload.get("task_id") for e in await board.events(kinds=("deleted",))]
            assert task.id in kinds
        else:
            assert cancelled
            assert (files / "report.pdf").exists(), f"iteration {index}: files without rows"
            assert board.changes.version == version
        key = "finished" if not cancelled else ("ran despite cancel" if deleted else "never ran")
        outcomes[key] += 1
    # The interesting case must actually have happened, or the test proves nothing.
    assert outcomes["ran despite cancel"] > 0, outcomes


async def _turns_to_complete(board: Board, index: int) -> int:
    """How many turns of the event loop one uncancelled complete with an artifact takes here
    (staging copies and syncs the file, so it depends on the disk and the machine's load)."""
    task = await make_task(board, f"calibrate {index}")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    workspace.mkdir(parents=True)
    (workspace / "chart.png").write_bytes(b"\x89PNG")
    call = asyncio.ensure_future(board.complete(task.id, lease=claim.lease,
                                                artifacts=["chart.png"]))
    turns = 0
    while not call.done():
        await asyncio.sleep(0)  # a turn of the event loop, counted
        turns += 1
    await call
    return turns


async def test_cancelled_complete_with_artifacts_agrees_with_its_files(board: Board) -> None:
    rng = random.Random(8_31)
    seen = {"done": 0, "not done": 0, "done though cancelled": 0}
    # Cancel anywhere from before the write starts to a little after it usually ends, so both
    # outcomes happen on a fast machine and on a loaded one.
    spins = max(400, 2 * max([await _turns_to_complete(board, i) for i in range(3)]))
    for index in range(600):
        if index >= 60 and seen["done though cancelled"] > 0 and seen["not done"] > 0:
            break
        task = await make_task(board, f"t{index}")
        claim = await board.claim(task.id)
        workspace = Path(claim.workspace or "")
        workspace.mkdir(parents=True)
        (workspace / "chart.png").write_bytes(b"\x89PNG" + bytes(index))
        await board.db.settled()
        version = board.changes.version
        cancelled = await _cancel_after(
            rng, board.complete(task.id, lease=claim.lease, artifacts=["chart.png"]), spins)
        await board.db.settled()
        after = await board.get_task(task.id)
        attachments = board.attachments_path(task.id)
        staging = [p for p in attachments.glob(".staging-*")] if attachments.exists() else []
        assert staging == [], f"iteration {index}: staging left behind"
        if after.status == "done":
            assert (attachments / "chart.png").read_bytes() == b"\x89PNG" + bytes(index)
            assert after.artifacts == [str(attachments / "chart.png")]
            assert not workspace.exists(), f"iteration {index}: manual-lane workspace kept"
            assert board.changes.version > version
            assert [e.kind for e in await board.events(task_id=task.id)].count("completed") == 1
            seen["done though cancelled" if cancelled else "done"] += 1
        else:
            assert cancelled and after.status == "running"
            assert not (attachments / "chart.png").exists()
            # Staging copies: the worker's file is still where it left it.
            assert (workspace / "chart.png").read_bytes() == b"\x89PNG" + bytes(index)
            assert board.changes.version == version
            seen["not done"] += 1
            await board.complete(task.id, lease=claim.lease)  # tidy up the run
    assert seen["done though cancelled"] > 0 and seen["not done"] > 0, seen
