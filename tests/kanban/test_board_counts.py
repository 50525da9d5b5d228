"""The board's cheap counts a metrics scrape reads: tasks per status, the outbox backlog."""

from __future__ import annotations

from kanban.board import Board
from kanban.testing import claim_and_complete, make_task


async def test_status_counts_are_one_group_by(board: Board) -> None:
    assert await board.status_counts() == {}
    done = await make_task(board, "done")
    await make_task(board, "waits")
    await make_task(board, "idea", triage=True)
    await claim_and_complete(board, done.id)
    assert await board.status_counts() == {"done": 1, "ready": 1, "triage": 1}
    assert (await board.stats())["by_status"] == await board.status_counts()


async def test_outbox_backlog_counts_undelivered_rows_of_enabled_subscriptions(
    board: Board,
) -> None:
    assert await board.outbox_backlog() == (0, None)
    first, second = await make_task(board, "a"), await make_task(board, "b")
    await board.subscribe(first.id, platform="fake", chat="c1")
    sub = await board.subscribe(second.id, platform="fake", chat="c2")
    await claim_and_complete(board, first.id)
    await claim_and_complete(board, second.id)
    assert await board.queue_notifications() == 2
    count, oldest = await board.outbox_backlog()
    assert count == 2 and oldest is not None
    # Claimed (sending) rows still wait; a delivered one no longer does.
    items = await board.claim_notifications(limit=1)
    assert (await board.outbox_backlog())[0] == 2
    await board.mark_notification_sent(items[0].id, [])
    assert (await board.outbox_backlog())[0] == 1
    # Rows of a disabled subscription wait for it to be re-enabled: not counted. The second
    # chat has two rows; its first fails for good and disables it, the other stays pending.
    await board.archive([second.id])
    assert await board.queue_notifications() == 1
    assert (await board.outbox_backlog())[0] == 2
    head = [i for i in await board.claim_notifications(limit=5) if i.sub_id == sub.id]
    assert [i.kind for i in head] == ["completed"]
    assert await board.mark_notification_failed(head[0].id, "chat gone", retry_at=None,
                                                disable_after=1)
    assert [r["state"] for r in await board.outbox(sub_id=sub.id)].count("pending") == 1
    assert await board.outbox_backlog() == (0, None)
