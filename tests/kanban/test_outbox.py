"""The notification outbox: subscribed terminal events → rows, claimed, settled, never twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanban.board import Board, ChildSpec
from kanban.testing import claim_and_complete, make_task, open_board


async def _sub(board: Board, task_id: int, chat: str = "c1") -> int:
    return (await board.subscribe(task_id, platform="fake", chat=chat, thread="t")).id


async def test_terminal_events_become_one_row_each_and_never_twice(board: Board) -> None:
    task = await make_task(board, "report")
    await _sub(board, task.id)
    assert await board.queue_notifications() == 0  # nothing happened yet
    await claim_and_complete(board, task.id, summary="all good")
    assert await board.queue_notifications() == 1
    assert await board.queue_notifications() == 0
    rows = await board.outbox()
    assert [(r["kind"], r["state"]) for r in rows] == [("completed", "pending")]
    await board.archive([task.id])
    assert await board.queue_notifications() == 1
    assert [r["kind"] for r in await board.outbox()] == ["archived", "completed"]


async def test_non_terminal_events_queue_nothing_and_commit_nothing(board: Board) -> None:
    task = await make_task(board, "x")
    await _sub(board, task.id)
    await board.comment(task.id, "hello", author="me")
    batches = board.db.batches
    assert await board.queue_notifications() == 0
    assert await board.claim_notifications() == []
    assert board.db.batches == batches  # a wake-up that concerns nobody writes nothing


async def test_queueing_survives_a_reopen_without_duplicates(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    task = await make_task(board, "x")
    await _sub(board, task.id)
    await claim_and_complete(board, task.id)
    assert await board.queue_notifications() == 1
    await board.close()
    board = await open_board(tmp_path)
    try:
        assert await board.queue_notifications() == 0
        assert len(await board.outbox()) == 1
    finally:
        await board.close()


async def test_claim_send_and_lease_expiry_give_at_least_once(board: Board) -> None:
    task = await make_task(board, "x")
    await _sub(board, task.id)
    await claim_and_complete(board, task.id, summary="s")
    await board.queue_notifications()
    [item] = await board.claim_notifications(lease_seconds=30)
    assert (item.kind, item.task.title, item.event.payload["summary"]) == ("completed", "x", "s")
    assert item.attempts == 1
    assert await board.claim_notifications() == []  # leased
    # The notifier died mid-send: after the lease the row is due again.
    [again] = await board.claim_notifications(at=(item.event.created_at or 0) + 60)
    assert again.id == item.id and again.attempts == 2
    assert await board.mark_notification_sent(item.id, [{"status": "delivered"}])
    [row] = await board.outbox()
    assert row["state"] == "sent" and row["receipts"] == [{"status": "delivered"}]
    assert not await board.mark_notification_sent(item.id, [])  # already settled


async def test_one_subscription_keeps_its_order_and_never_holds_up_another(board: Board) -> None:
    a = await make_task(board, "a")
    b = await make_task(board, "b")
    await _sub(board, a.id, "chat-a")
    await _sub(board, b.id, "chat-b")
    await claim_and_complete(board, a.id)
    await board.archive([a.id])
    await claim_and_complete(board, b.id)
    await board.queue_notifications()
    first = await board.claim_notifications()
    assert sorted((i.chat, i.kind) for i in first) == [("chat-a", "completed"),
                                                       ("chat-b", "completed")]
    failing = next(i for i in first if i.chat == "chat-a")
    await board.mark_notification_failed(failing.id, "503", retry_at=10**12)
    ok = next(i for i in first if i.chat == "chat-b")
    assert await board.mark_notification_sent(ok.id, [])
    # chat-a's archived row waits behind its failed completed row; nothing else is due.
    assert await board.claim_notifications() == []
    assert await board.next_notification_due() == 10**12


async def test_permanent_failures_disable_a_subscription_with_its_reason(board: Board) -> None:
    task = await make_task(board, "x")
    sub_id = await _sub(board, task.id)
    await claim_and_complete(board, task.id)
    await board.archive([task.id])
    await board.queue_notifications()
    disabled = []
    for _ in range(2):
        [item] = await board.claim_notifications()
        disabled.append(await board.mark_notification_failed(
            item.id, "chat not found", retry_at=None, disable_after=2))
    assert disabled == [False, True]
    [sub] = await board.subscriptions(task.id)
    assert sub.id == sub_id and sub.disabled
    assert sub.disabled_reason is not None and "chat not found" in sub.disabled_reason
    assert [d["state"] for d in sub.deliveries] == ["failed", "failed"]
    kinds = [e.kind for e in await board.events(task_id=task.id)]
    assert "subscription_disabled" in kinds
    # Subscribing again re-enables it (from now on).
    again = await board.subscribe(task.id, platform="fake", chat="c1", thread="t")
    assert not again.disabled and again.consecutive_failures == 0


async def test_a_subscription_carries_over_to_decomposed_children(board: Board) -> None:
    root = (await board.create_task("big job", triage=True)).task
    await _sub(board, root.id)
    plan = await board.decompose_triage_task(
        root.id, [ChildSpec("part one"), ChildSpec("part two", parents=(0,))], orchestrator=None)
    one, two = plan.child_ids
    await board.queue_notifications()
    subs = await board.subscriptions()
    assert sorted(s.task_id for s in subs) == sorted([root.id, one, two])
    assert all(s.carried_from == root.id for s in subs if s.task_id != root.id)
    await claim_and_complete(board, one, summary="first")
    await claim_and_complete(board, two, summary="second")
    await claim_and_complete(board, root.id, summary="all")
    assert await board.queue_notifications() == 3
    rows = await board.outbox()
    assert sorted(r["task_id"] for r in rows if r["kind"] == "completed") == sorted(
        [root.id, one, two])


@pytest.mark.sqlite_only  # a shared (PostgreSQL) board releases nothing: test_postgres.py
async def test_rows_left_mid_send_are_released_at_start(board: Board) -> None:
    task = await make_task(board, "x")
    await _sub(board, task.id)
    await claim_and_complete(board, task.id)
    await board.queue_notifications()
    [item] = await board.claim_notifications(lease_seconds=3600)
    assert await board.release_notification_claims() == 1
    [again] = await board.claim_notifications()
    assert again.id == item.id and again.attempts == 2
