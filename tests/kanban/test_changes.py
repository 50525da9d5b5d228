"""Change notification: watchers wake on commits in this process and, through
``PRAGMA data_version``, on commits made by another connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.board.events import EventTail
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


async def test_an_event_tail_hands_out_a_late_commit_below_its_cursor_once(board: Board) -> None:
    first = await make_task(board, "one")
    await make_task(board, "two")
    # The first task's event stands for one a concurrent claim holds, not yet committed.
    held = (await board.events(task_id=first.id))[0].id
    await board.db.write(lambda tx: tx.execute("DELETE FROM task_events WHERE id = ?", (held,)))
    tail = EventTail(board, await board.last_event_id())
    await tail.prime()
    assert (await tail.read())[0] == []  # history is not news
    await board.db.write(lambda tx: tx.execute(
        "INSERT INTO task_events (id, task_id, kind, payload, created_at) "
        "VALUES (?, ?, 'claimed', '{}', 0)", (held, first.id)))
    late, more = await tail.read()
    assert [e.id for e in late] == [held] and not more
    three = await make_task(board, "three")
    fresh, _ = await tail.read()
    assert [e.task_id for e in fresh] == [three.id]  # the late one is not handed out again
    assert tail.cursor == fresh[-1].id
