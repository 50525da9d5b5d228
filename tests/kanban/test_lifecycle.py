"""Blocking, unblocking, archiving and deletion, failure accounting and the breaker."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanban.board import Board
from kanban.errors import Conflict, InvalidInput, TaskNotFound
from kanban.testing import make_task, open_board, operator_complete, past_backoff


async def _fail(board: Board, task_id: int, error: str = "boom", **kw: object) -> object:
    await past_backoff(board, task_id)
    claim = await board.claim(task_id)
    return await board.record_failure(task_id, run_id=claim.run_id, kind="crashed",
                                      error=error, **kw)  # type: ignore[arg-type]


async def test_breaker_trips_at_the_board_limit(board: Board) -> None:
    task = await make_task(board, "flaky")
    first = await _fail(board, task.id, "exit 1")
    assert (first.failures, first.tripped, first.status) == (1, False, "ready")  # type: ignore[attr-defined]
    second = await _fail(board, task.id, "exit 1 again")
    assert (second.failures, second.tripped, second.status) == (2, True, "blocked")  # type: ignore[attr-defined]
    blocked = await board.get_task(task.id)
    assert blocked.blocked_by == "breaker" and blocked.last_failure_error == "exit 1 again"
    gave_up = [e for e in await board.events(task_id=task.id) if e.kind == "gave_up"]
    assert gave_up[0].payload["failures"] == 2 and gave_up[0].payload["limit"] == 2


async def test_max_retries_overrides_the_board_limit(board: Board) -> None:
    task = await make_task(board, "patient", max_retries=3)
    for _ in range(2):
        await _fail(board, task.id)
    assert (await board.get_task(task.id)).status == "ready"
    outcome = await _fail(board, task.id)
    assert outcome.tripped  # type: ignore[attr-defined]


async def test_forced_trip_blocks_at_once(board: Board) -> None:
    task = await make_task(board, "systemic victim")
    outcome = await _fail(board, task.id, "provider 503", force_trip=True)
    assert outcome.tripped and outcome.failures == 1  # type: ignore[attr-defined]
    gave_up = [e for e in await board.events(task_id=task.id) if e.kind == "gave_up"]
    assert gave_up[0].payload["forced"] is True


async def test_failure_of_a_superseded_run_changes_nothing(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    await operator_complete(board, task.id, result="closed by operator")
    outcome = await board.record_failure(task.id, run_id=claim.run_id, kind="crashed",
                                         error="late crash")
    assert not outcome.recorded
    assert (await board.get_task(task.id)).status == "done"


async def test_protocol_violations_have_their_own_budget_and_leave_a_comment(
    board: Board,
) -> None:
    task = await make_task(board, "silent worker")
    claim = await board.claim(task.id)
    outcome = await board.record_failure(task.id, run_id=claim.run_id,
                                         kind="protocol_violation", error="exit 0, no complete")
    assert outcome.recorded and not outcome.tripped and outcome.limit == 2
    detail = await board.show_task(task.id)
    assert detail.task.consecutive_failures == 0 and detail.task.protocol_violations == 1
    assert "without calling `relayboard kanban complete`" in detail.comments[0].body
    with pytest.raises(InvalidInput, match="unknown failure kind"):
        await board.record_failure(task.id, run_id=None, kind="oops", error="x")


async def test_requeue_does_not_count(board: Board) -> None:
    task = await make_task(board, "rate limited")
    claim = await board.claim(task.id)
    assert await board.requeue(claim.run_id, reason="rate limited", exit_code=75)
    again = await board.get_task(task.id)
    assert again.status == "ready" and again.consecutive_failures == 0
    assert (await board.get_run(claim.run_id)).status == "requeued"
    assert not await board.requeue(claim.run_id, reason="twice")


async def test_extend_claim_records_the_old_and_new_expiry(board: Board) -> None:
    task = await make_task(board, "slow model")
    claim = await board.claim(task.id, ttl=1)
    assert await board.extend_claim(claim.run_id, ttl=900, payload={"worker_pid": 42})
    event = (await board.events(task_id=task.id))[-1]
    assert event.kind == "claim_extended"
    assert event.payload["previous_expires_at"] == pytest.approx(claim.expires_at)
    assert event.payload["worker_pid"] == 42
    assert event.payload["expires_at"] > claim.expires_at + 800


async def test_unblock_resets_counters_and_regates(board: Board) -> None:
    parent = await make_task(board, "parent")
    child = await make_task(board, "child", parents=[parent.id])
    lone = await make_task(board, "lone")
    for _ in range(2):
        await _fail(board, lone.id)
    await board.block(child.id, "needs a decision", as_operator=True)
    tripped = await board.get_task(lone.id)
    assert tripped.status == "blocked" and tripped.consecutive_failures == 2
    unblocked = await board.unblock([lone.id, child.id])
    assert [t.status for t in unblocked] == ["ready", "todo"]
    assert unblocked[0].consecutive_failures == 0 and unblocked[0].last_failure_error is None
    with pytest.raises(Conflict, match="is ready, not blocked"):
        await board.unblock([lone.id])


async def test_archive_running_task_stales_its_lease(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    with pytest.raises(Conflict, match=f"task {task.id} is running .*use --force to archive"):
        await board.archive([task.id])
    assert (await board.get_run(claim.run_id)).status == "active"
    archived = await board.archive([task.id], force=True)
    assert archived[0].status == "archived"
    [event] = [e for e in await board.events(task_id=task.id) if e.kind == "archived"]
    assert event.payload["forced"] is True and event.run_id == claim.run_id
    assert (await board.get_run(claim.run_id)).status == "cancelled"
    assert [t.id for t in await board.list_tasks()] == []
    assert [t.id for t in await board.list_tasks(include_archived=True)] == [task.id]


async def test_archive_rm_deletes_only_archived_tasks_with_everything(
    board: Board, tmp_path: Path
) -> None:
    keep = await make_task(board, "keep")
    gone = await make_task(board, "gone", parents=[keep.id])
    claim = await board.claim(keep.id)
    await board.complete(keep.id, lease=claim.lease)
    await board.comment(gone.id, "note", author="me")
    await board.subscribe(gone.id, platform="slack", chat="C1", thread="T1")
    files = board.attachments_path(gone.id)
    files.mkdir(parents=True)
    (files / "report.pdf").write_bytes(b"%PDF")
    with pytest.raises(Conflict, match=f"archive these first: {gone.id} \\(ready\\)"):
        await board.delete_archived([gone.id])
    assert (await board.get_task(gone.id)).status == "ready"
    await board.archive([gone.id])
    assert await board.delete_archived([gone.id]) == [gone.id]
    with pytest.raises(TaskNotFound):
        await board.get_task(gone.id)
    assert not files.exists()

    def counts(tx: object) -> dict[str, int]:
        from kanban.storage.db import Tx

        assert isinstance(tx, Tx)
        out = {}
        for table in ("task_links", "task_comments", "task_runs", "notify_subs"):
            row = tx.one(f"SELECT COUNT(*) FROM {table} WHERE "
                         + ("child_id" if table == "task_links" else "task_id") + " = ?",
                         (gone.id,))
            out[table] = int(row[0]) if row else -1
        row = tx.one("SELECT COUNT(*) FROM task_events WHERE task_id = ?", (gone.id,))
        out["task_events"] = int(row[0]) if row else -1
        return out

    assert await board.db.read(counts) == {
        "task_links": 0, "task_comments": 0, "task_runs": 0, "notify_subs": 0, "task_events": 0,
    }
    assert (await board.get_task(keep.id)).status == "done"


async def test_subscriptions_are_unique_per_destination(board: Board) -> None:
    task = await make_task(board, "t")
    a = await board.subscribe(task.id, platform="telegram", chat="42", thread="7")
    b = await board.subscribe(task.id, platform="telegram", chat="42", thread="7")
    c = await board.subscribe(task.id, platform="telegram", chat="42")
    assert a.id == b.id and c.id != a.id
    assert len(await board.subscriptions(task.id)) == 2
    assert await board.unsubscribe(task.id, platform="telegram", chat="42", thread="7")
    assert not await board.unsubscribe(task.id, platform="telegram", chat="42", thread="7")
    assert [s.thread for s in await board.subscriptions()] == [None]


async def test_events_are_read_by_cursor(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        a = await make_task(board, "a")
        first = await board.events()
        assert [e.kind for e in first] == ["created"]
        await board.claim(a.id)
        later = await board.events(since=first[-1].id)
        assert [e.kind for e in later] == ["claimed"]
        assert all(e.id > first[-1].id for e in later)
        assert await board.events(since=later[-1].id) == []
    finally:
        await board.close()
