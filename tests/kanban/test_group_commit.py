"""Concurrent writes share commits; one failing write never takes its neighbours down."""

from __future__ import annotations

import asyncio

import pytest

from kanban.board import Board
from kanban.errors import LeaseError
from kanban.testing import make_task


@pytest.mark.sqlite_only  # SQLite's group commit
async def test_a_burst_of_completions_shares_commits(board: Board) -> None:
    tasks = [await make_task(board, f"t{i}") for i in range(40)]
    claims = [await board.claim(t.id) for t in tasks]
    before = board.db.batches
    done = await asyncio.gather(*(
        board.complete(c.task_id, lease=c.lease, result=f"r{c.task_id}") for c in claims
    ))
    commits = board.db.batches - before
    assert [t.status for t in done] == ["done"] * 40
    assert [t.result for t in done] == [f"r{c.task_id}" for c in claims]
    assert 1 <= commits < 40
    completed = [e for e in await board.events() if e.kind == "completed"]
    assert len(completed) == 40


async def test_one_failing_write_in_a_batch_rolls_back_only_itself(board: Board) -> None:
    good = [await make_task(board, f"good {i}") for i in range(5)]
    bad = await make_task(board, "bad")
    claims = [await board.claim(t.id) for t in good]
    await board.claim(bad.id)
    results = await asyncio.gather(
        *(board.complete(c.task_id, lease=c.lease) for c in claims),
        board.complete(bad.id, lease="not-the-lease"),
        *(board.comment(t.id, "note", author="me") for t in good),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], LeaseError)
    assert [(await board.get_task(t.id)).status for t in good] == ["done"] * 5
    assert (await board.get_task(bad.id)).status == "running"
    for task in good:
        assert len((await board.show_task(task.id)).comments) == 1


async def test_a_failed_write_leaves_no_partial_rows(board: Board) -> None:
    parent = await make_task(board, "p")
    before = await board.last_event_id()
    with pytest.raises(Exception, match="unknown parent"):
        await board.create_task("child", parents=[parent.id, 999])
    assert await board.last_event_id() == before
    assert len(await board.list_tasks()) == 1
