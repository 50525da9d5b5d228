"""create: status derivation, validation, initial status (S2), max runtime 0 (S8), idempotency
keys, skills vs toolsets (S24)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.errors import InvalidInput
from kanban.testing import make_task, open_board


async def test_status_is_derived_from_parents(board: Board) -> None:
    root = await make_task(board, "root")
    child = await make_task(board, "child", parents=[root.id])
    idea = await make_task(board, "idea", triage=True, parents=[root.id])
    assert (root.status, child.status, idea.status) == ("ready", "todo", "triage")
    assert child.parents == [root.id]
    await board.archive([root.id])
    late = await make_task(board, "late child", parents=[root.id])
    assert late.status == "ready"  # an archived parent satisfies (S20)


async def test_initial_status_blocked_parks_the_task_with_an_event_S2(board: Board) -> None:
    task = await make_task(board, "review me", initial_status="blocked")
    assert task.status == "blocked"
    assert task.blocked_by == "human"
    kinds = [e.kind for e in await board.events(task_id=task.id)]
    assert kinds == ["created", "blocked"]
    with pytest.raises(InvalidInput, match="initial status must be running or blocked"):
        await make_task(board, "x", initial_status="done")


async def test_max_runtime_zero_is_kept_S8(board: Board) -> None:
    task = await make_task(board, "instant timeout", max_runtime_seconds=0)
    assert task.max_runtime_seconds == 0
    again = await board.get_task(task.id)
    assert again.max_runtime_seconds == 0
    assert (await make_task(board, "no limit")).max_runtime_seconds is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"parents": [999]}, "unknown parent task(s): 999"),
        ({"priority": -1}, "priority must be 0 or more"),
        ({"max_runtime_seconds": -5}, "max runtime must be 0 or more"),
        ({"max_retries": 0}, "max retries must be 1 or more"),
        ({"workspace": "dir:relative/path"}, "needs an absolute path"),
        ({"workspace": "cloud"}, "invalid workspace"),
        ({"idempotency_key": "  "}, "idempotency key must not be empty"),
    ],
)
async def test_bad_values_are_refused_and_nothing_is_written(
    board: Board, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        await board.create_task("t", **fields)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert await board.list_tasks(include_archived=True) == []


async def test_empty_title_is_refused(board: Board) -> None:
    with pytest.raises(InvalidInput, match="non-empty title"):
        await board.create_task("   ")


async def test_toolset_names_as_skills_are_reported_in_one_error_S24(board: Board) -> None:
    with pytest.raises(InvalidInput) as info:
        await board.create_task("t", skills=["kanban-worker", "web", "terminal", "browser"])
    text = str(info.value)
    assert "browser, terminal, web" in text
    assert "kanban-worker" not in text.split("(")[0]
    assert "toolset" in text and "skills/" in text
    ok = await make_task(board, "fine", skills=["kanban-worker", "pdf-report"])
    assert ok.skills == ["kanban-worker", "pdf-report"]


async def test_idempotency_key_returns_the_live_task(board: Board) -> None:
    first = await board.create_task("report", idempotency_key="weekly-42")
    second = await board.create_task("report again", idempotency_key="weekly-42")
    assert first.created and not second.created
    assert second.task.id == first.task.id and second.task.title == "report"
    await board.archive([first.task.id])
    third = await board.create_task("report", idempotency_key="weekly-42")
    assert third.created and third.task.id != first.task.id


async def test_idempotency_key_holds_across_connections(tmp_path: Path) -> None:
    """The partial unique index, not a lookup, decides: racing boards make one task."""
    boards = [await open_board(tmp_path) for _ in range(4)]
    try:
        results = await asyncio.gather(*(
            b.create_task("same", idempotency_key="k") for b in boards for _ in range(3)
        ))
        assert len({r.task.id for r in results}) == 1
        assert sum(r.created for r in results) == 1
        assert len(await boards[0].list_tasks()) == 1
    finally:
        for b in boards:
            await b.close()
