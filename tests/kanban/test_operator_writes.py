"""Who may write to a task: the run's lease holder, or an operator who says so (and forces a
live run); reassigning a running task; per-run outcomes; the manual lane's workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanban.board import Board
from kanban.errors import Conflict, LeaseError
from kanban.testing import claim_and_complete, make_task, operator_complete


async def test_a_write_without_lease_or_operator_override_is_a_lease_error(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    with pytest.raises(LeaseError, match=r"complete needs the run's lease .* operator override"):
        await board.complete(task.id)
    with pytest.raises(LeaseError, match="block needs the run's lease"):
        await board.block(task.id, "stuck")
    assert (await board.get_run(claim.run_id)).status == "active"
    assert (await board.get_task(task.id)).status == "running"


async def test_operator_block_of_a_live_run_needs_force_and_is_recorded(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    with pytest.raises(Conflict, match=rf"task {task.id} is running \(run {claim.run_id}\); "
                       "use --force to block it as operator"):
        await board.block(task.id, "stop", as_operator=True)
    blocked = await board.block(task.id, "stop", as_operator=True, force=True, by="alice")
    assert blocked.status == "blocked" and blocked.blocked_by == "human"
    assert (await board.get_run(claim.run_id)).status == "superseded"
    [event] = [e for e in await board.events(task_id=task.id) if e.kind == "blocked"]
    assert event.payload == {"reason": "stop", "by": "alice", "forced": True}
    with pytest.raises(LeaseError, match="stale"):
        await board.complete(task.id, lease=claim.lease)


async def test_operator_writes_on_idle_tasks_need_no_force(board: Board) -> None:
    a = await make_task(board, "a")
    b = await make_task(board, "b")
    done = await board.complete(a.id, as_operator=True, result="by hand")
    assert done.status == "done"
    [event] = [e for e in await board.events(task_id=a.id) if e.kind == "completed"]
    assert "forced" not in event.payload and event.payload["by"] == "operator"
    assert (await board.block(b.id, "later", as_operator=True)).status == "blocked"


async def test_reassigning_a_running_task_is_refused_without_force(board: Board) -> None:
    parent = await make_task(board, "parent")
    task = await make_task(board, "t", assignee="old")
    claim = await board.claim(task.id)
    await board.link(parent.id, task.id)  # so the released task has to wait again
    with pytest.raises(Conflict, match=rf"task {task.id} is running \(run {claim.run_id}\); "
                       "use --force to reassign it"):
        await board.assign(task.id, "new")
    assert (await board.get_task(task.id)).assignee == "old"
    moved = await board.assign(task.id, "new", force=True)
    assert (moved.assignee, moved.status, moved.current_run_id) == ("new", "todo", None)
    assert (await board.get_run(claim.run_id)).status == "released"
    [event] = [e for e in await board.events(task_id=task.id) if e.kind == "assigned"]
    assert event.payload == {"assignee": "new", "previous": "old", "forced": True,
                             "released_run": claim.run_id, "to": "todo"}
    assert event.run_id == claim.run_id
    with pytest.raises(LeaseError, match="stale"):
        await board.heartbeat(task.id, lease=claim.lease)
    # An idle task is reassigned without ceremony.
    idle = await make_task(board, "idle", assignee="x")
    assert (await board.assign(idle.id, None)).assignee is None


async def test_each_run_keeps_its_own_outcome(board: Board) -> None:
    task = await make_task(board, "retried")
    first = await board.claim(task.id)
    await board.block(task.id, "need the API key", lease=first.lease)
    await board.unblock([task.id])
    _, done = await claim_and_complete(board, task.id, result="42 rows", summary="loaded",
                                       metadata={"rows": 42})
    detail = await board.show_task(task.id)
    one, two = detail.runs
    assert (one.status, one.summary, one.result, one.metadata) == (
        "blocked", "need the API key", None, None)
    assert (two.status, two.summary, two.result, two.metadata) == (
        "completed", "loaded", "42 rows", {"rows": 42})
    as_json = detail.to_dict()["runs"]
    assert as_json[1]["summary"] == "loaded" and as_json[1]["metadata"] == {"rows": 42}
    assert "lease" not in as_json[1]
    assert done.result == "42 rows"


async def test_created_event_of_a_task_created_blocked_says_blocked(board: Board) -> None:
    task = await make_task(board, "review me", initial_status="blocked")
    created = [e for e in await board.events(task_id=task.id) if e.kind == "created"]
    assert created[0].payload["status"] == "blocked"


async def test_recompute_never_lifts_a_block(board: Board) -> None:
    worker = await make_task(board, "asked a human")
    human = await make_task(board, "held")
    breaker = await make_task(board, "crashy", max_retries=1)
    claim = await board.claim(worker.id)
    await board.block(worker.id, "need a human to approve", lease=claim.lease)
    await board.block(human.id, "legal", as_operator=True)
    await board.record_failure(breaker.id, run_id=(await board.claim(breaker.id)).run_id,
                               kind="crashed", error="boom")
    assert await board.recompute() == {"promoted": 0, "demoted": 0}
    for task, by in ((worker, "worker"), (human, "human"), (breaker, "breaker")):
        after = await board.get_task(task.id)
        assert (after.status, after.blocked_by) == ("blocked", by)
        assert after.blocked_reason


async def test_manual_lane_removes_the_scratch_workspace_on_completion(board: Board) -> None:
    task = await make_task(board, "by hand")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    (workspace / "out").mkdir(parents=True)
    (workspace / "out" / "table.csv").write_text("a,b\n", encoding="utf-8")
    (workspace / "scratch.tmp").write_text("junk", encoding="utf-8")
    done = await board.complete(task.id, lease=claim.lease, artifacts=["out/table.csv"])
    assert not workspace.exists()
    assert Path(done.artifacts[0]).read_text(encoding="utf-8") == "a,b\n"


async def test_dispatcher_runs_and_links_keep_their_workspace(board: Board,
                                                              tmp_path: Path) -> None:
    # A dispatched run (a worker pid is recorded) is cleaned by the dispatcher, not here.
    task = await make_task(board, "dispatched")
    claim = await board.claim(task.id)
    await board.set_worker(claim.run_id, pid=4242, started_at=None)
    Path(claim.workspace or "").mkdir(parents=True)
    await board.complete(task.id, lease=claim.lease)
    assert Path(claim.workspace or "").is_dir()
    # A workspace a worker replaced by a link: the link goes, its target stays.
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("x", encoding="utf-8")
    linked = await make_task(board, "linked")
    link_claim = await board.claim(linked.id)
    Path(link_claim.workspace or "").symlink_to(precious)
    await board.complete(linked.id, lease=link_claim.lease)
    assert not Path(link_claim.workspace or "").is_symlink()
    assert (precious / "keep.txt").exists()


async def test_operator_complete_helper_supersedes(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    await operator_complete(board, task.id)
    assert (await board.get_run(claim.run_id)).status == "superseded"
