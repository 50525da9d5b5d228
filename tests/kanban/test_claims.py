"""Claims and leases: the parent gate (no claim while a parent is unfinished), compare-and-swap,
lease tokens (a stale run can never write), heartbeats, completion with artifacts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.errors import Conflict, InvalidInput, LeaseError, NotClaimable
from kanban.testing import make_task, open_board


async def test_claim_opens_a_run_with_a_lease(board: Board) -> None:
    task = await make_task(board, "work")
    claim = await board.claim(task.id, ttl=60, claimed_by="tester")
    assert len(claim.lease) >= 32
    assert claim.workspace == str(board.workspaces_dir / str(task.id))
    running = await board.get_task(task.id)
    assert running.status == "running" and running.current_run_id == claim.run_id
    run = await board.get_run(claim.run_id)
    assert run.status == "active" and run.claimed_by == "tester"
    assert run.expires_at is not None and run.claimed_at is not None
    assert run.expires_at - run.claimed_at == pytest.approx(60, abs=1)


async def test_claim_demotes_a_ready_task_with_an_unfinished_parent(board: Board) -> None:
    parent = await make_task(board, "parent")
    child = await make_task(board, "child")

    def sneak_link(tx: object) -> None:
        # A link written behind the kernel's back (older version, another tool): the claim
        # must still refuse, since it is the one enforcement point.
        from kanban.storage.db import Tx

        assert isinstance(tx, Tx)
        tx.execute("INSERT INTO task_links (parent_id, child_id) VALUES (?, ?)",
                   (parent.id, child.id))

    await board.db.write(sneak_link)
    with pytest.raises(NotClaimable, match=f"parent\\(s\\) {parent.id} not done; demoted"):
        await board.claim(child.id)
    demoted = await board.get_task(child.id)
    assert demoted.status == "todo" and demoted.current_run_id is None
    assert (await board.events(task_id=child.id))[-1].kind == "demoted"


async def test_claiming_a_non_ready_task_is_refused(board: Board) -> None:
    task = await make_task(board, "t", triage=True)
    with pytest.raises(NotClaimable, match="it is triage, not ready"):
        await board.claim(task.id)


async def test_exactly_one_of_many_concurrent_claimers_wins(tmp_path: Path) -> None:
    first = await open_board(tmp_path)
    claimers = [first] + [await open_board(tmp_path) for _ in range(7)]
    try:
        task = await make_task(first, "contested")

        async def attempt(b: Board) -> str:
            try:
                await b.claim(task.id)
            except NotClaimable:
                return "lost"
            return "won"

        outcomes = await asyncio.gather(*(attempt(b) for b in claimers))
        assert sorted(outcomes) == ["lost"] * 7 + ["won"]
        runs = (await first.show_task(task.id)).runs
        assert len(runs) == 1
    finally:
        for b in claimers:
            await b.close()


async def test_complete_needs_the_live_lease(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    with pytest.raises(LeaseError, match="matches no run"):
        await board.complete(task.id, lease="forged-token")
    other = await make_task(board, "other")
    with pytest.raises(LeaseError, match=f"belongs to task {task.id}, not task {other.id}"):
        await board.complete(other.id, lease=claim.lease)
    done = await board.complete(task.id, lease=claim.lease, result="ok")
    assert done.status == "done"
    with pytest.raises(LeaseError, match="already ended \\(completed\\); its token is stale"):
        await board.complete(task.id, lease=claim.lease)
    with pytest.raises(LeaseError, match="stale"):
        await board.heartbeat(task.id, lease=claim.lease)


async def test_a_reclaimed_worker_cannot_finish_its_successors_run(board: Board) -> None:
    task = await make_task(board, "t")
    old = await board.claim(task.id)
    assert await board.reclaim(old.run_id, payload={"worker_pid": 1234, "host_local": True})
    new = await board.claim(task.id)
    with pytest.raises(LeaseError, match=f"run {old.run_id} already ended \\(reclaimed\\)"):
        await board.complete(task.id, lease=old.lease, result="late")
    with pytest.raises(LeaseError):
        await board.comment(task.id, "still here", author="w", lease=old.lease)
    done = await board.complete(task.id, lease=new.lease, result="fresh")
    assert done.result == "fresh"
    reclaimed = [e for e in await board.events(task_id=task.id) if e.kind == "reclaimed"]
    assert reclaimed[0].payload == {"worker_pid": 1234, "host_local": True}


async def test_operator_completion_makes_the_lease_stale(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    with pytest.raises(Conflict, match=rf"task {task.id} is running \(run {claim.run_id}\); "
                       "use --force to complete it as operator"):
        await board.complete(task.id, as_operator=True, result="closed by hand")
    done = await board.complete(task.id, as_operator=True, force=True, result="closed by hand",
                                by="alice")
    assert done.status == "done"
    run = await board.get_run(claim.run_id)
    assert run.status == "superseded"
    [event] = [e for e in await board.events(task_id=task.id) if e.kind == "completed"]
    assert event.payload["forced"] is True and event.payload["by"] == "alice"
    with pytest.raises(LeaseError, match="stale"):
        await board.complete(task.id, lease=claim.lease)
    with pytest.raises(Conflict, match="already done"):
        await board.complete(task.id, as_operator=True)


async def test_heartbeat_extends_the_lease(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id, ttl=5)
    run = await board.heartbeat(task.id, lease=claim.lease, note="halfway", ttl=600)
    assert run.expires_at is not None and run.expires_at > claim.expires_at + 500
    assert run.last_heartbeat_at is not None
    beat = (await board.events(task_id=task.id))[-1]
    assert beat.kind == "heartbeat" and beat.payload["note"] == "halfway"


async def test_complete_records_artifacts_in_metadata_and_event(board: Board) -> None:
    task = await make_task(board, "chart")
    claim = await board.claim(task.id)
    done = await board.complete(
        task.id, lease=claim.lease, result="chart ready", summary="sales up",
        metadata={"rows": 12}, artifacts=["/data/chart.png", "/data/report.pdf"],
    )
    assert done.metadata == {"rows": 12, "artifacts": ["/data/chart.png", "/data/report.pdf"]}
    assert done.summary == "sales up" and done.completed_at is not None
    completed = [e for e in await board.events(task_id=task.id) if e.kind == "completed"]
    assert completed[0].payload["artifacts"] == ["/data/chart.png", "/data/report.pdf"]
    assert completed[0].payload["result"] == "chart ready"
    assert completed[0].run_id == claim.run_id


async def test_worker_comment_is_attributed_to_the_profile(board: Board) -> None:
    task = await make_task(board, "t", assignee="analyst")
    claim = await board.claim(task.id)
    note = await board.comment(task.id, "found the data", author="ignored", lease=claim.lease)
    assert (note.author, note.author_kind) == ("analyst", "worker")
    human = await board.comment(task.id, "thanks", author="ana")
    assert (human.author, human.author_kind) == ("ana", "human")


async def test_a_non_ascii_or_surrogate_lease_is_refused_not_a_type_error(board: Board) -> None:
    task = await make_task(board, "t")
    await board.claim(task.id)
    for lease in ("\x80", "clé"):
        with pytest.raises(LeaseError):
            await board.heartbeat(task.id, lease=lease)
        with pytest.raises(LeaseError):
            await board.complete(task.id, lease=lease)
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        await board.heartbeat(task.id, lease="\udcff")
    assert (await board.get_task(task.id)).status == "running"
