"""create: status derivation, validation, initial status blocked, max runtime 0, idempotency
keys, skills vs toolsets (all reported in one error), files attached at creation."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.errors import InvalidInput
from kanban.testing import make_task, open_board
from tests.kanban.workers.harness import wait_until


async def test_status_is_derived_from_parents(board: Board) -> None:
    root = await make_task(board, "root")
    child = await make_task(board, "child", parents=[root.id])
    idea = await make_task(board, "idea", triage=True, parents=[root.id])
    assert (root.status, child.status, idea.status) == ("ready", "todo", "triage")
    assert child.parents == [root.id]
    await board.archive([root.id])
    late = await make_task(board, "late child", parents=[root.id])
    assert late.status == "ready"  # an archived parent satisfies


async def test_initial_status_blocked_parks_the_task_with_an_event(board: Board) -> None:
    task = await make_task(board, "review me", initial_status="blocked")
    assert task.status == "blocked"
    assert task.blocked_by == "human"
    kinds = [e.kind for e in await board.events(task_id=task.id)]
    assert kinds == ["created", "blocked"]
    with pytest.raises(InvalidInput, match="initial status must be running or blocked"):
        await make_task(board, "x", initial_status="done")


async def test_max_runtime_zero_is_kept(board: Board) -> None:
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
        ({"workspace": "dir:/tmp/w/y;touch /tmp/PWNED;:"},
         "a dir: workspace path may only contain letters, digits and _ . / - "
         "(got '/tmp/w/y;touch /tmp/PWNED;:')"),
        ({"workspace": "dir:/tmp/a b"}, "may only contain letters, digits and _ . / -"),
        ({"workspace": "dir:/tmp/$(id)"}, "may only contain letters, digits and _ . / -"),
        ({"workspace": "dir:/tmp/it's"}, "may only contain letters, digits and _ . / -"),
        ({"workspace": "dir:/tmp/caf\u00e9"}, "may only contain letters, digits and _ . / -"),
        ({"workspace": "dir:/tmp/x/../y"}, "may not contain .. components"),
        ({"workspace": "worktree:/src/w;touch /tmp/PWNED"},
         "a worktree: workspace path may only contain letters, digits and _ . / -"),
        ({"workspace": "worktree:/src/../etc"}, "may not contain .. components"),
        ({"workspace": "worktree:relative/wt"}, "needs an absolute path"),
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


async def test_toolset_names_as_skills_are_reported_in_one_error(board: Board) -> None:
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


# ---- files given at creation ------------------------------------------------------------------

def _leftovers(board: Board) -> list[str]:
    """Everything under the board's attachments folder (staging included)."""
    return sorted(str(p.relative_to(board.attachments_dir))
                  for p in board.attachments_dir.rglob("*"))


async def test_attachments_are_in_place_when_the_task_is_created(
    board: Board, tmp_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "in").mkdir()
    sales = tmp_path / "in" / "sales.csv"
    sales.write_text("month,sales\nJan,10\n", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    (other / "sales.csv").write_text("second\n", encoding="utf-8")
    (other / ".env").write_text("hidden name\n", encoding="utf-8")
    monkeypatch.chdir(other)  # a relative path is the caller's (the CLI's cwd)
    made = await board.create_task("Chart the sales", attachments=[sales, "sales.csv", ".env"])
    folder = board.attachments_path(made.task.id)
    expected = [str(folder / "sales.csv"), str(folder / "sales-2.csv"), str(folder / "_.env")]
    assert made.task.metadata["inputs"] == expected
    assert (await board.get_task(made.task.id)).metadata["inputs"] == expected
    assert [Path(p).read_text(encoding="utf-8") for p in expected] == [
        "month,sales\nJan,10\n", "second\n", "hidden name\n"]
    assert sales.read_text(encoding="utf-8") == "month,sales\nJan,10\n"  # copied, not taken
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(Path(p).stat().st_mode) for p in expected} == {0o600}
    assert _leftovers(board) == sorted(str(Path(p).relative_to(board.attachments_dir))
                                       for p in [folder, *expected])
    [event] = [e for e in await board.events(task_id=made.task.id) if e.kind == "created"]
    assert event.payload["inputs"] == expected
    context = await board.context(made.task.id)
    assert "## Attached files\n\n" + "\n".join(f"- {p}" for p in expected) in context


async def test_a_task_without_attachments_records_none(board: Board) -> None:
    made = await board.create_task("plain")
    assert "inputs" not in made.task.metadata
    [event] = [e for e in await board.events(task_id=made.task.id) if e.kind == "created"]
    assert "inputs" not in event.payload
    assert "Attached files" not in await board.context(made.task.id)
    assert not board.attachments_path(made.task.id).exists()


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "folder", "missing"])
async def test_an_unsafe_attachment_refuses_the_create_and_leaves_nothing(
    board: Board, tmp_path: Path, kind: str,
) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE", encoding="utf-8")
    fine = tmp_path / "fine.csv"
    fine.write_text("a,b\n", encoding="utf-8")
    bad = tmp_path / "innocent.txt"
    if kind == "symlink":
        bad.symlink_to(secret)
    elif kind == "hardlink":
        os.link(secret, bad)
    elif kind == "folder":
        bad.mkdir()
    message = {"symlink": r"^attachment refused: innocent\.txt: is a symbolic link$",
               "hardlink": r"^attachment refused: innocent\.txt: has 2 hard links$",
               "folder": r"^attachment refused: innocent\.txt: is a folder; attach files$",
               "missing": r"^attachment innocent\.txt: no such file$"}[kind]
    # The good file is staged first: the refusal must take it away again.
    with pytest.raises(InvalidInput, match=message):
        await board.create_task("t", attachments=[fine, bad])
    assert await board.list_tasks(include_archived=True) == []
    assert _leftovers(board) == []
    assert secret.read_text(encoding="utf-8") == "PRIVATE"


async def test_a_refused_create_discards_its_staged_files(board: Board, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown parent task"):
        await board.create_task("orphan", parents=[99], attachments=[data])
    assert await board.list_tasks(include_archived=True) == []
    assert _leftovers(board) == []


async def test_an_idempotent_repeat_attaches_nothing(board: Board, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n", encoding="utf-8")
    first = await board.create_task("report", idempotency_key="k", attachments=[data])
    data.write_text("changed\n", encoding="utf-8")
    again = await board.create_task("report", idempotency_key="k", attachments=[data])
    assert not again.created and again.task.metadata["inputs"] == first.task.metadata["inputs"]
    folder = board.attachments_path(first.task.id)
    assert (folder / "data.csv").read_text(encoding="utf-8") == "x\n"
    assert _leftovers(board) == [str(folder.name), f"{folder.name}/data.csv"]


async def test_a_folder_left_by_a_failed_commit_is_replaced(board: Board, tmp_path: Path) -> None:
    # A create whose COMMIT failed after the rename leaves attachments/<id>/ with no task, and
    # the next create gets the same id.
    orphan = board.attachments_path(1)
    orphan.mkdir(parents=True)
    (orphan / "stale.csv").write_text("old\n", encoding="utf-8")
    data = tmp_path / "data.csv"
    data.write_text("new\n", encoding="utf-8")
    made = await board.create_task("t", attachments=[data])
    assert made.task.id == 1
    assert sorted(p.name for p in orphan.iterdir()) == ["data.csv"]


@pytest.mark.sqlite_only  # holds SQLite's write lock from a second connection
async def test_a_create_cancelled_in_flight_leaves_no_task_and_no_staging(
    board: Board, tmp_path: Path,
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n", encoding="utf-8")
    # Another process holds the write lock, so the create waits inside its batch.
    other = sqlite3.connect(board.db.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        create = asyncio.ensure_future(board.create_task("t", attachments=[data]))

        async def waiting_for_the_lock() -> bool:
            staged = [p for p in board.attachments_dir.glob(".staging-*/data.csv")]
            writer = board.db._writer
            return bool(staged) and writer is not None and not writer.done()

        await wait_until(waiting_for_the_lock, what="the create's write in flight")
        create.cancel()
        with pytest.raises(asyncio.CancelledError):
            await create
        assert _leftovers(board) == []  # the caller's cancellation discarded the copy at once
        other.execute("COMMIT")
    finally:
        other.close()
    await board.db.settled()
    assert await board.list_tasks(include_archived=True) == []
    assert _leftovers(board) == []
    # The board carries on: the next create gets its files.
    made = await board.create_task("t", attachments=[data])
    assert Path(made.task.metadata["inputs"][0]).read_text(encoding="utf-8") == "x\n"


async def test_a_create_cancelled_while_copying_leaves_no_staging(
    board: Board, tmp_path: Path,
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (4 * 1024 * 1024))
    create = asyncio.ensure_future(board.create_task("t", attachments=[big]))
    await asyncio.sleep(0)  # one step: the create is now waiting on its copy thread
    assert not create.done()
    create.cancel()
    with pytest.raises(asyncio.CancelledError):
        await create
    await board.db.settled()  # the copy thread finishes, then its folder is discarded
    assert await board.list_tasks(include_archived=True) == []
    assert _leftovers(board) == []
