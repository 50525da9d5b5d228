"""The kernel's decomposition transaction (Board.decompose_triage_task and friends)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanban.board import Board
from kanban.board.triage import ChildSpec, plan_from_json, validate_plan
from kanban.errors import Conflict, CycleError, InvalidInput
from kanban.storage.tx import Tx
from kanban.testing import open_board


async def triage(board: Board, title: str = "rough idea", body: str = "") -> int:
    return (await board.create_task(title, body=body, triage=True)).task.id


async def counts(board: Board) -> tuple[int, int, int]:
    def run(tx: Tx) -> tuple[int, int, int]:
        return (int(tx.one("SELECT COUNT(*) FROM tasks")[0]),
                int(tx.one("SELECT COUNT(*) FROM task_links")[0]),
                int(tx.one("SELECT COUNT(*) FROM task_events")[0]))

    return await board.db.read(run)


DIAMOND = [
    ChildSpec("research", "find sources", "researcher"),
    ChildSpec("draft", "write it", "writer", parents=(0,)),
    ChildSpec("charts", "plot it", "analyst", parents=(0,)),
    ChildSpec("review", "check it", "editor", parents=(1, 2)),
]


async def test_children_edges_root_wait_comment_and_event(board: Board) -> None:
    root = await triage(board)
    result = await board.decompose_triage_task(root, DIAMOND, orchestrator="boss",
                                               rationale="four steps", author="tester")
    ids = result.child_ids
    assert len(ids) == 4
    children = [await board.get_task(i) for i in ids]
    assert [c.title for c in children] == ["research", "draft", "charts", "review"]
    assert [c.assignee for c in children] == ["researcher", "writer", "analyst", "editor"]
    # sibling edges from the parent indices
    assert children[0].parents == []
    assert children[1].parents == [ids[0]]
    assert children[2].parents == [ids[0]]
    assert sorted(children[3].parents) == sorted([ids[1], ids[2]])
    # the root waits for every child, is todo and assigned to the orchestrator
    root_task = await board.get_task(root)
    assert sorted(root_task.parents) == sorted(ids)
    assert root_task.status == "todo" and root_task.assignee == "boss"
    assert root_task.decomposed_at is not None
    assert all(root in c.children for c in children)
    # auto-promotion: parent-free children are ready, the rest wait
    assert [c.status for c in children] == ["ready", "todo", "todo", "todo"]
    detail = await board.show_task(root)
    [comment] = detail.comments
    assert comment.author == "tester"
    assert "into 4 task(s)" in comment.body and "four steps" in comment.body
    decomposed = [e for e in detail.events if e.kind == "decomposed"]
    assert decomposed and decomposed[0].payload["children"] == ids


async def test_auto_promote_false_leaves_children_in_todo(board: Board) -> None:
    root = await triage(board)
    result = await board.decompose_triage_task(
        root, [ChildSpec("a", assignee="x"), ChildSpec("b", assignee="x")],
        orchestrator="boss", auto_promote=False)
    statuses = [(await board.get_task(i)).status for i in result.child_ids]
    assert statuses == ["todo", "todo"]
    event = next(e for e in (await board.show_task(root)).events if e.kind == "decomposed")
    assert event.payload["auto_promote"] is False


async def test_cycle_rejected_before_any_write(board: Board) -> None:
    root = await triage(board)
    before = await counts(board)
    cyclic = [ChildSpec("a", parents=(1,)), ChildSpec("b", parents=(2,)),
              ChildSpec("c", parents=(0,)), ChildSpec("free")]
    with pytest.raises(CycleError) as info:
        await board.decompose_triage_task(root, cyclic, orchestrator="boss")
    assert sorted(info.value.path) == [0, 1, 2]
    assert await counts(board) == before
    assert (await board.get_task(root)).status == "triage"


@pytest.mark.parametrize("plan, message", [
    ([ChildSpec("a", parents=(0,))], "itself"),
    ([ChildSpec("a"), ChildSpec("b", parents=(5,))], "outside 0..1"),
    ([ChildSpec("a", parents=(-1,))], "outside"),
    ([], "at least one"),
    ([ChildSpec("   ")], "empty title"),
    ([ChildSpec("a"), ChildSpec("b", parents=("0",))], "non-integer"),  # type: ignore[arg-type]
])
async def test_invalid_plans_rejected_before_any_write(board: Board, plan: list[ChildSpec],
                                                       message: str) -> None:
    root = await triage(board)
    before = await counts(board)
    with pytest.raises(InvalidInput, match=message):
        await board.decompose_triage_task(root, plan, orchestrator="boss")
    assert await counts(board) == before


async def test_fanout_bound(board: Board) -> None:
    root = await triage(board)
    nine = [ChildSpec(f"t{i}") for i in range(9)]
    before = await counts(board)
    with pytest.raises(InvalidInput, match="fan-out limit is 8"):
        await board.decompose_triage_task(root, nine, orchestrator="boss")
    with pytest.raises(InvalidInput, match="fan-out limit is 3"):
        await board.decompose_triage_task(root, nine[:4], orchestrator="boss", max_fanout=3)
    assert await counts(board) == before
    result = await board.decompose_triage_task(root, nine, orchestrator="boss", max_fanout=9)
    assert len(result.child_ids) == 9


async def test_already_decomposed_or_not_triage_is_refused(board: Board) -> None:
    root = await triage(board)
    await board.decompose_triage_task(root, [ChildSpec("a")], orchestrator="boss")
    before = await counts(board)
    with pytest.raises(Conflict, match="already decomposed"):
        await board.decompose_triage_task(root, [ChildSpec("b")], orchestrator="boss")
    assert await counts(board) == before
    plain = (await board.create_task("not triage")).task.id
    with pytest.raises(Conflict, match="only a triage task"):
        await board.decompose_triage_task(plain, [ChildSpec("b")], orchestrator="boss")


async def test_root_wakes_when_the_graph_is_done(board: Board) -> None:
    root = await triage(board)
    result = await board.decompose_triage_task(
        root, [ChildSpec("a"), ChildSpec("b", parents=(0,))], orchestrator="boss")
    first, second = result.child_ids
    for child in (first, second):
        claim = await board.claim(child)
        await board.complete(child, lease=claim.lease)
    assert (await board.get_task(root)).status == "ready"


async def test_promote_triage_and_record_failure(board: Board) -> None:
    root = await triage(board, "rough")
    failed = await board.record_decompose_failure(root, "the LLM said no")
    assert failed.status == "triage" and failed.decompose_error == "the LLM said no"
    assert failed.decompose_failed_at is not None
    assert await board.triage_candidates(limit=5, cooldown_seconds=3600) == []
    assert [t.id for t in await board.triage_candidates(limit=5, cooldown_seconds=0)] == [root]
    task = await board.promote_triage(root, title="refined", body="details", assignee="coder",
                                      author="tester")
    assert (task.status, task.title, task.body, task.assignee) == (
        "ready", "refined", "details", "coder")
    assert task.decompose_error is None
    with pytest.raises(Conflict):
        await board.promote_triage(root, title="again", body="", assignee=None)


async def test_triage_candidates_oldest_first_and_limited(board: Board) -> None:
    ids = [await triage(board, f"t{i}") for i in range(4)]
    got = await board.triage_candidates(limit=3)
    assert [t.id for t in got] == ids[:3]


def test_validate_plan_returns_a_topological_order() -> None:
    order = validate_plan(DIAMOND)
    assert order.index(0) < order.index(1) < order.index(3)
    assert order.index(2) < order.index(3)


def test_plan_from_json_shapes() -> None:
    specs = plan_from_json([{"title": " a ", "body": "b", "assignee": "x", "parents": None},
                            {"title": "c", "assignee": "  ", "parents": [0]}])
    assert specs == [ChildSpec("a", "b", "x", ()), ChildSpec("c", "", None, (0,))]
    for bad in ([1], [{"body": "no title"}], [{"title": "t", "parents": 0}]):
        with pytest.raises(InvalidInput):
            plan_from_json(bad)


async def test_a_late_failure_never_stamps_a_decomposed_task(tmp_path: Path) -> None:
    b = await open_board(tmp_path / "late")
    try:
        root = (await b.create_task("idea", triage=True)).task
        await b.decompose_triage_task(root.id, [ChildSpec("only child")], orchestrator=None)
        after = await b.record_decompose_failure(root.id, "LLM timed out (other process)")
        assert after.decompose_error is None and after.decompose_failed_at is None
        kinds = [e.kind for e in await b.events(task_id=root.id)]
        assert "decompose_failed" not in kinds
    finally:
        await b.close()


def test_a_null_body_in_a_plan_is_empty_text() -> None:
    [spec] = plan_from_json([{"title": "t", "body": None}])
    assert spec.body == ""
