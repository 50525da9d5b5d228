"""Links, cycles, incremental readiness, worker blocks lifted when parents finish, archived
parents, unlink and the recompute sweep."""

from __future__ import annotations

import pytest

from kanban.board import Board
from kanban.errors import CycleError, InvalidInput, TaskNotFound
from kanban.testing import claim_and_complete, make_chain, make_task


async def test_link_rejects_cycles_before_writing(board: Board) -> None:
    a, b, c = await make_chain(board, 3)
    before = await board.last_event_id()
    with pytest.raises(CycleError) as info:
        await board.link(c.id, a.id)
    assert f"linking {c.id} → {a.id} would create a cycle" in str(info.value)
    assert info.value.path == [a.id, b.id, c.id]
    with pytest.raises(CycleError, match="cannot be its own parent"):
        await board.link(a.id, a.id)
    assert await board.last_event_id() == before
    assert (await board.get_task(a.id)).parents == []


async def test_link_unknown_task_is_refused(board: Board) -> None:
    a = await make_task(board)
    with pytest.raises(TaskNotFound, match="task 77 not found"):
        await board.link(a.id, 77)


async def test_link_demotes_a_ready_child(board: Board) -> None:
    parent = await make_task(board, "parent")
    child = await make_task(board, "child")
    assert child.status == "ready"
    linked = await board.link(parent.id, child.id)
    assert linked.status == "todo" and linked.parents == [parent.id]
    kinds = [e.kind for e in await board.events(task_id=child.id)]
    assert kinds[-2:] == ["linked", "demoted"]


async def test_unlink_makes_the_child_ready_at_once(board: Board) -> None:
    p1 = await make_task(board, "p1")
    p2 = await make_task(board, "p2")
    child = await make_task(board, "child", parents=[p1.id, p2.id])
    await claim_and_complete(board, p1.id)
    assert (await board.get_task(child.id)).status == "todo"
    unlinked = await board.unlink(p2.id, child.id)
    assert unlinked.status == "ready"
    with pytest.raises(InvalidInput, match=f"task {child.id} has no parent {p2.id}"):
        await board.unlink(p2.id, child.id)


async def test_completion_promotes_only_when_every_parent_is_done(board: Board) -> None:
    p1 = await make_task(board, "p1")
    p2 = await make_task(board, "p2")
    child = await make_task(board, "child", parents=[p1.id, p2.id])
    await claim_and_complete(board, p1.id)
    assert (await board.get_task(child.id)).status == "todo"
    await claim_and_complete(board, p2.id)
    assert (await board.get_task(child.id)).status == "ready"


async def test_archived_parents_satisfy_children(board: Board) -> None:
    parent = await make_task(board, "parent")
    child = await make_task(board, "child", parents=[parent.id])
    await board.archive([parent.id])
    assert (await board.get_task(child.id)).status == "ready"


async def test_readiness_is_incremental_only_children_are_touched(board: Board) -> None:
    """Completing a task writes events only for itself and its own children."""
    unrelated = [await make_task(board, f"waiting {i}", parents=[]) for i in range(3)]
    blocker = await make_task(board, "never done")
    for task in unrelated:
        await board.link(blocker.id, task.id)
    parent = await make_task(board, "parent")
    child = await make_task(board, "child", parents=[parent.id])
    mark = await board.last_event_id()
    await claim_and_complete(board, parent.id)
    touched = {e.task_id for e in await board.events(since=mark)}
    assert touched == {parent.id, child.id}


async def test_worker_blocked_child_is_promoted_when_parents_finish(board: Board) -> None:
    parent = await make_task(board, "parent")
    human = await make_task(board, "human-blocked")
    worker = await make_task(board, "worker-blocked")
    breaker = await make_task(board, "breaker-blocked", max_retries=1)
    # The worker blocks its own run ("waiting for data"), then we add the dependency.
    claim = await board.claim(worker.id)
    await board.block(worker.id, "need the parent's output", lease=claim.lease)
    await board.record_failure(breaker.id, run_id=(await board.claim(breaker.id)).run_id,
                               kind="crashed", error="boom")
    await board.block(human.id, "waiting for legal", as_operator=True)
    for task in (human, worker, breaker):
        await board.link(parent.id, task.id)
    tripped = await board.get_task(worker.id)
    assert tripped.status == "blocked" and tripped.blocked_by == "worker"
    await claim_and_complete(board, parent.id)
    promoted = await board.get_task(worker.id)
    assert promoted.status == "ready"
    assert promoted.consecutive_failures == 0 and promoted.last_failure_error is None
    assert (await board.get_task(human.id)).status == "blocked"
    assert (await board.get_task(breaker.id)).status == "blocked"


async def test_recompute_repairs_a_hand_edited_board(board: Board) -> None:
    parent = await make_task(board, "parent")
    child = await make_task(board, "child", parents=[parent.id])

    def corrupt(tx: object) -> None:
        # Simulate an old version that forgot to promote: parent done, child left in todo.
        from kanban.storage.db import Tx

        assert isinstance(tx, Tx)
        tx.execute("UPDATE tasks SET status = 'done' WHERE id = ?", (parent.id,))

    await board.db.write(corrupt)
    assert (await board.get_task(child.id)).status == "todo"
    counts = await board.recompute()
    assert counts == {"promoted": 1, "demoted": 0}
    assert (await board.get_task(child.id)).status == "ready"


async def test_list_reports_each_link_once_across_large_boards(board: Board) -> None:
    first = await make_task(board, "first")
    many = [first]
    for index in range(450):  # more than one chunk of ids in the link query
        many.append(await make_task(board, f"t{index}"))
    await board.link(first.id, many[-1].id)
    await board.link(many[200].id, many[-1].id)
    listed = {t.id: t for t in await board.list_tasks()}
    assert listed[many[-1].id].parents == [first.id, many[200].id]
    assert listed[first.id].children == [many[-1].id]
    assert sum(len(t.parents) for t in listed.values()) == 2
