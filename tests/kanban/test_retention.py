"""Retention (``kanban gc``) on a populated board, on both backends: what goes, what stays
(each task's ``created`` and latest event, events a subscriber has not heard yet, undelivered
notifications, files of recent or unarchived tasks), dry runs that change nothing, and the
defaults, which keep everything a user would miss."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.retention import DAY, RetentionSettings, collect
from kanban.storage.tx import Tx
from kanban.testing import claim_and_complete, make_task

OLD = 100 * DAY


async def age(board: Board, sql: str, params: tuple[object, ...] = ()) -> None:
    """Move rows into the past (``sql`` is an UPDATE that subtracts ``?`` seconds)."""
    await board.db.write(lambda tx: tx.execute(sql, (OLD, *params)))


async def kinds(board: Board, task_id: int) -> list[str]:
    return [e.kind for e in await board.events(task_id=task_id, limit=1000)]


async def count(board: Board, sql: str) -> int:
    def run(tx: Tx) -> int:
        row = tx.one(sql)
        return int(row[0])

    return await board.db.read(run)


async def test_old_events_are_compacted_keeping_created_latest_and_unheard(
        board: Board) -> None:
    busy = await make_task(board, "busy")
    claim = await board.claim(busy.id)
    await board.heartbeat(busy.id, lease=claim.lease, note="working")
    await board.comment(busy.id, "half way", author="op")
    await board.complete(busy.id, lease=claim.lease, result="done")
    heard = await make_task(board, "subscribed")
    await board.subscribe(heard.id, platform="slack", chat="C1")
    await claim_and_complete(board, heard.id)  # its `completed` is not queued yet
    quiet = await make_task(board, "quiet")
    await age(board, "UPDATE task_events SET created_at = created_at - ?")
    before = {t: await kinds(board, t) for t in (busy.id, heard.id, quiet.id)}
    settings = RetentionSettings(events_days=30)

    dry = await collect(board, settings, dry_run=True)
    assert dry.events == len(before[busy.id]) - 2  # all of busy's but `created` and latest
    assert {t: await kinds(board, t) for t in before} == before  # nothing changed

    done = await collect(board, settings)
    assert done.events == dry.events
    assert await kinds(board, busy.id) == ["created", "completed"]
    # The subscriber's cursor has not passed its events (`claimed`, `completed`): they stay.
    assert await kinds(board, heard.id) == before[heard.id]
    assert "claimed" in before[heard.id]
    assert await kinds(board, quiet.id) == ["created"]
    assert (await collect(board, settings)).events == 0  # nothing left to compact
    # The notification the subscription still owes is queued and delivered as ever; once its
    # cursor passed `claimed`, that may go.
    assert await board.queue_notifications() == 1
    items = await board.claim_notifications()
    assert [(i.task_id, i.kind) for i in items] == [(heard.id, "completed")]
    assert (await collect(board, settings)).events == len(before[heard.id]) - 2
    assert await kinds(board, heard.id) == ["created", "completed"]
    # A new event gets a new id: the newest event was kept, so none is reused.
    newest = await count(board, "SELECT MAX(id) FROM task_events")
    await board.comment(quiet.id, "again", author="op")
    assert await count(board, "SELECT MAX(id) FROM task_events") == newest + 1


async def test_recent_events_stay(board: Board) -> None:
    task = await make_task(board)
    await claim_and_complete(board, task.id)
    report = await collect(board, RetentionSettings(events_days=1))
    assert report.events == 0
    assert await kinds(board, task.id) == ["created", "claimed", "completed"]


async def test_delivered_notifications_older_than_outbox_days_are_pruned(board: Board) -> None:
    sent, waiting = await make_task(board, "sent"), await make_task(board, "waiting")
    for task in (sent, waiting):
        await board.subscribe(task.id, platform="slack", chat=f"C{task.id}")
    await claim_and_complete(board, sent.id)
    await board.queue_notifications()
    [item] = await board.claim_notifications()
    assert await board.mark_notification_sent(item.id, [])
    await claim_and_complete(board, waiting.id)
    await board.queue_notifications()  # pending, never sent
    await age(board, "UPDATE notify_outbox SET delivered_at = delivered_at - ?, "
                     "created_at = created_at - ?", (OLD,))
    dry = await collect(board, RetentionSettings(), dry_run=True)  # default: 30 days
    assert dry.outbox == 1
    assert await count(board, "SELECT COUNT(*) FROM notify_outbox") == 2
    done = await collect(board, RetentionSettings())
    assert done.outbox == 1 and done.rows == 1
    rows = await board.outbox()
    assert [(r["task_id"], r["state"]) for r in rows] == [(waiting.id, "pending")]
    # Pruning never re-queues: the subscription's cursor is past the event.
    assert await board.queue_notifications() == 0


def put_files(board: Board, task_id: int, size: int) -> None:
    folder = board.attachments_path(task_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.csv").write_bytes(b"x" * size)
    board.logs_dir.mkdir(parents=True, exist_ok=True)
    board.log_path(task_id).write_bytes(b"l" * 10)
    scratch = board.workspaces_dir / str(task_id)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "left.txt").write_bytes(b"w" * 5)


async def test_files_of_long_archived_tasks_are_removed_and_their_rows_kept(
        board: Board) -> None:
    old, recent, live = [await make_task(board, n) for n in ("old", "recent", "live")]
    for task in (old, recent, live):
        put_files(board, task.id, 1000)
    await board.archive([old.id, recent.id])
    await age(board, "UPDATE task_events SET created_at = created_at - ? WHERE task_id = ?",
              (old.id,))
    settings = RetentionSettings(files_days=30)

    dry = await collect(board, settings, dry_run=True)
    assert (dry.tasks_with_files, dry.files, dry.file_bytes) == (1, 3, 1015)
    assert board.attachments_path(old.id).is_dir()

    done = await collect(board, settings)
    assert (done.tasks_with_files, done.files, done.file_bytes) == (1, 3, 1015)
    assert not board.attachments_path(old.id).exists()
    assert not board.log_path(old.id).exists()
    assert not (board.workspaces_dir / str(old.id)).exists()
    for kept in (recent, live):
        assert (board.attachments_path(kept.id) / "report.csv").is_file()
        assert board.log_path(kept.id).is_file()
    assert (await board.get_task(old.id)).status == "archived"  # the row stays
    assert (await collect(board, settings)).files == 0


async def test_the_defaults_keep_history_and_files(board: Board) -> None:
    task = await make_task(board)
    await claim_and_complete(board, task.id)
    put_files(board, task.id, 10)
    await board.archive([task.id])
    await age(board, "UPDATE task_events SET created_at = created_at - ? * 100")
    report = await collect(board, RetentionSettings())
    assert (report.events, report.files) == (0, 0)
    assert report.skipped == ["events", "files"]
    assert await kinds(board, task.id) == ["created", "claimed", "completed", "archived"]
    assert board.attachments_path(task.id).is_dir()


async def test_stale_staging_folders_are_swept_and_counted(board: Board) -> None:
    task = await make_task(board)
    dead = board.attachments_path(task.id) / ".staging-p999999999-1-abcdef"
    dead.mkdir(parents=True)
    (dead / "half.bin").write_bytes(b"x")
    assert (await collect(board, RetentionSettings(), dry_run=True)).staging == 1
    assert dead.exists()
    assert (await collect(board, RetentionSettings())).staging == 1
    assert not dead.exists()


@pytest.mark.sqlite_only
async def test_vacuum_gives_the_freed_pages_back_to_the_disk(board: Board) -> None:
    for i in range(40):
        task = await make_task(board, f"t{i}")
        claim = await board.claim(task.id)
        await board.heartbeat(task.id, lease=claim.lease, note="n" * 3000)
        await board.complete(task.id, lease=claim.lease)
    await age(board, "UPDATE task_events SET created_at = created_at - ?")
    report = await collect(board, RetentionSettings(events_days=1), vacuum=True)
    assert report.events == 80  # `claimed` and the heartbeat's note of each
    assert report.db_bytes is not None and report.db_bytes > 0
    assert report.file_size_before is not None and report.file_size_after is not None
    assert report.file_size_after < report.file_size_before
    conn = sqlite3.connect(board.db.path)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert os.path.getsize(board.db.path) <= report.file_size_after
    assert Path(board.db.path).is_file()


async def test_stored_artifacts_of_long_archived_tasks_go_with_their_files(
        board: Board) -> None:
    task = await make_task(board, "report")
    claim = await board.claim(task.id)
    scratch = board.workspaces_dir / str(task.id)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "chart.png").write_bytes(b"\x89PNG" + b"x" * 2000)
    await board.complete(task.id, lease=claim.lease, artifacts=[str(scratch / "chart.png")])
    await board.archive([task.id])
    await age(board, "UPDATE task_events SET created_at = created_at - ?")
    stored = await count(board, "SELECT COUNT(*) FROM artifact_files")
    # A board several hosts share keeps the artifact's bytes in the database as well.
    assert stored == (1 if board.storage.shared else 0)
    report = await collect(board, RetentionSettings(files_days=30))
    assert report.artifact_rows == stored
    assert report.files >= 1 and report.tasks_with_files == 1
    assert await count(board, "SELECT COUNT(*) FROM artifact_files") == 0
    assert await count(board, "SELECT COUNT(*) FROM artifact_blobs") == 0
    assert not board.attachments_path(task.id).exists()
