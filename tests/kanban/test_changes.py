"""Change notification: watchers wake on commits in this process and, through
``PRAGMA data_version``, on commits made by another connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.testing import make_task, open_board


async def test_a_commit_wakes_a_waiting_watcher(board: Board) -> None:
    version = board.changes.version
    waiter = asyncio.create_task(board.changes.wait(version, timeout=10))
    await asyncio.sleep(0)  # let the waiter park on the event
    assert not waiter.done()
    await make_task(board, "wake up")
    assert await asyncio.wait_for(waiter, 5) > version


async def test_wait_returns_at_once_when_the_version_already_moved(board: Board) -> None:
    version = board.changes.version
    await make_task(board, "t")
    assert await asyncio.wait_for(board.changes.wait(version, timeout=10), 1) == version + 1


async def test_wait_times_out_without_changes(board: Board) -> None:
    version = board.changes.version
    assert await board.changes.wait(version, timeout=0.01) == version


@pytest.mark.sqlite_only  # PRAGMA data_version; PostgreSQL wakes by LISTEN (test_postgres.py)
async def test_another_connections_commit_is_noticed(tmp_path: Path) -> None:
    watcher = await open_board(tmp_path)
    writer = await open_board(tmp_path)
    try:
        assert await watcher.poll_external() is False  # first poll only records the version
        assert await watcher.poll_external() is False
        version = watcher.changes.version
        await make_task(writer, "from elsewhere")
        assert await watcher.poll_external() is True
        assert watcher.changes.version == version + 1
        assert await watcher.poll_external() is False
        # Our own commits do not move our data_version (they bump the signal directly).
        await make_task(watcher, "mine")
        assert await watcher.poll_external() is False
    finally:
        await watcher.close()
        await writer.close()


async def test_repeated_ids_are_handled_once(board: Board) -> None:
    task = await make_task(board, "t", initial_status="blocked")
    assert [t.status for t in await board.unblock([task.id, task.id])] == ["ready"]
    await board.archive([task.id, task.id])
    assert await board.delete_archived([task.id, task.id]) == [task.id]
    deleted = [e for e in await board.events() if e.kind == "deleted"]
    assert len(deleted) == 1
