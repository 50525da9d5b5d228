"""Artifacts declared inside the scratch workspace are made durable by ``complete``."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.board.attachments import STALE_STAGING_SECONDS
from kanban.errors import InvalidInput, LeaseError
from kanban.testing import make_task, open_board


async def test_scratch_artifacts_move_to_attachments_before_the_event(
    board: Board, tmp_path: Path
) -> None:
    task = await make_task(board, "chart")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    (workspace / "out").mkdir(parents=True)
    (workspace / "out" / "chart.png").write_bytes(b"\x89PNG fake")
    (workspace / "report.pdf").write_bytes(b"%PDF-1.7")
    elsewhere = tmp_path / "shared.csv"
    elsewhere.write_text("a,b\n", encoding="utf-8")
    done = await board.complete(task.id, lease=claim.lease, artifacts=[
        str(workspace / "out" / "chart.png"), "report.pdf", str(elsewhere),
        str(workspace / "missing.txt"),
    ])
    attachments = board.attachments_path(task.id)
    expected = [str(attachments / "out" / "chart.png"), str(attachments / "report.pdf"),
                str(elsewhere), str(workspace / "missing.txt")]
    assert done.artifacts == expected
    assert (attachments / "out" / "chart.png").read_bytes() == b"\x89PNG fake"
    assert (attachments / "report.pdf").read_bytes() == b"%PDF-1.7"
    assert not any(p.name.startswith(".staging") for p in attachments.iterdir())
    [event] = [e for e in await board.events(task_id=task.id) if e.kind == "completed"]
    assert event.payload["artifacts"] == expected
    # The scratch workspace can go now: the recorded files do not live there.
    for path in expected[:2]:
        assert not Path(path).is_relative_to(workspace)


async def test_a_stale_worker_never_overwrites_its_successors_files(board: Board) -> None:
    task = await make_task(board, "t")
    old = await board.claim(task.id)
    await board.reclaim(old.run_id)
    new = await board.claim(task.id)
    workspace = Path(new.workspace or "")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "result.txt").write_text("new", encoding="utf-8")
    await board.complete(task.id, lease=new.lease, artifacts=["result.txt"])
    # The manual lane removed the workspace on completion; the stale worker writes it anew.
    assert not workspace.exists()
    workspace.mkdir(parents=True)
    (workspace / "result.txt").write_text("stale", encoding="utf-8")
    with pytest.raises(LeaseError):
        await board.complete(task.id, lease=old.lease, artifacts=["result.txt"])
    # The refused file was only read: it is where the worker left it.
    assert (workspace / "result.txt").read_text(encoding="utf-8") == "stale"
    attachments = board.attachments_path(task.id)
    assert (attachments / "result.txt").read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in attachments.iterdir()) == ["result.txt"]


async def test_a_symlink_out_of_the_workspace_is_not_copied(board: Board, tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE", encoding="utf-8")
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "innocent.txt").symlink_to(secret)
    with pytest.raises(InvalidInput, match=r"innocent\.txt: is a symbolic link"):
        await board.complete(task.id, lease=claim.lease, artifacts=["innocent.txt"])
    # The worker may still complete without it.
    assert (await board.get_task(task.id)).status == "running"
    assert not any(board.attachments_path(task.id).rglob("*"))


async def test_staging_copies_and_leaves_the_workspace_as_it_was(board: Board) -> None:
    task = await make_task(board, "big")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    (workspace / "dir").mkdir(parents=True)
    (workspace / "video.mp4").write_bytes(b"\0" * 4096)
    (workspace / "dir" / "a.txt").write_text("a", encoding="utf-8")
    inode = os.stat(workspace / "video.mp4").st_ino
    done = await board.complete(task.id, lease=claim.lease, artifacts=["video.mp4", "dir"])
    attachments = board.attachments_path(task.id)
    # Copied, never moved (the manual lane then removed the workspace after the commit).
    assert os.stat(attachments / "video.mp4").st_ino != inode
    assert (attachments / "video.mp4").read_bytes() == b"\0" * 4096
    assert (attachments / "dir" / "a.txt").read_text(encoding="utf-8") == "a"  # copied tree
    assert done.artifacts == [str(attachments / "video.mp4"), str(attachments / "dir")]


async def test_a_hard_linked_artifact_is_refused_and_left_alone(board: Board,
                                                              tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE", encoding="utf-8")
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    workspace.mkdir(parents=True)
    os.link(secret, workspace / "k.txt")
    with pytest.raises(InvalidInput, match=r"artifact refused: k\.txt: has 2 hard links"):
        await board.complete(task.id, lease=claim.lease, artifacts=["k.txt"])
    assert (workspace / "k.txt").read_text(encoding="utf-8") == "PRIVATE"
    attachments = board.attachments_path(task.id)
    assert not attachments.exists() or list(attachments.iterdir()) == []
    assert (await board.get_task(task.id)).status == "running"


async def test_stale_staging_is_cleaned_when_a_board_is_opened(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    stale = board.attachments_path(3) / ".staging-dead"
    live = board.attachments_path(4) / ".staging-live"
    kept = board.attachments_path(3) / "report.pdf"
    stale_create = board.attachments_dir / ".staging-create"  # a killed create's copy
    live_create = board.attachments_dir / ".staging-create-live"
    for folder in (stale, live, stale_create, live_create):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "part.bin").write_bytes(b"x")
    kept.write_bytes(b"%PDF")
    old = time.time() - STALE_STAGING_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(stale_create, (old, old))
    await board.close()
    board = await open_board(tmp_path)
    try:
        assert not stale.exists() and not stale_create.exists()
        # Young: may belong to a complete or a create running elsewhere right now.
        assert live.exists() and live_create.exists()
        assert kept.read_bytes() == b"%PDF"
    finally:
        await board.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def test_attachments_are_private_whatever_the_worker_made_them(
    board: Board, umask_022: None,
) -> None:
    task = await make_task(board, "chart")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    (workspace / "out" / "deep").mkdir(parents=True)
    renamed = workspace / "out" / "deep" / "chart.png"
    renamed.write_bytes(b"\x89PNG")
    os.chmod(renamed, 0o755)  # the worker's mode: would travel with a rename
    (workspace / "nest" / "tree").mkdir(parents=True)
    (workspace / "nest" / "tree" / "a.txt").write_text("a", encoding="utf-8")
    # The copy comes first: it makes attachments/<id>/ on its way (with the umask's mode).
    await board.complete(task.id, lease=claim.lease,
                         artifacts=["nest/tree", "out/deep/chart.png"])
    attachments = board.attachments_path(task.id)
    folders = [attachments, attachments / "out", attachments / "out" / "deep",
               attachments / "nest", attachments / "nest" / "tree"]
    files = [attachments / "out" / "deep" / "chart.png", attachments / "nest" / "tree" / "a.txt"]
    assert [_mode(f) for f in folders] == [0o700] * 5
    assert [_mode(f) for f in files] == [0o600] * 2


async def test_a_refused_completion_leaves_the_workers_file_as_it_was(
    board: Board, umask_022: None,
) -> None:
    task = await make_task(board, "t")
    old = await board.claim(task.id)
    await board.reclaim(old.run_id)
    await board.claim(task.id)
    workspace = board.workspaces_dir / str(task.id)
    workspace.mkdir(parents=True, exist_ok=True)
    script = workspace / "run.sh"
    script.write_text("echo hi\n", encoding="utf-8")
    os.chmod(script, 0o754)
    inode = os.stat(script).st_ino
    with pytest.raises(LeaseError):
        await board.complete(task.id, lease=old.lease, artifacts=["run.sh"])
    assert os.stat(script).st_ino == inode  # only read, never moved
    assert _mode(script) == 0o754


def test_copies_make_every_new_folder_private_whatever_the_umask(tmp_path: Path) -> None:
    from kanban.fsutil import copy_no_follow

    source = tmp_path / "src"
    (source / "a" / "b").mkdir(parents=True)
    (source / "a" / "b" / "f.csv").write_text("x", encoding="utf-8")
    old = os.umask(0o022)
    try:
        copy_no_follow(source, tmp_path / "out" / "deep" / "copy")
        copy_no_follow(source / "a" / "b" / "f.csv", tmp_path / "one" / "two" / "f.csv")
    finally:
        os.umask(old)
    for folder in (tmp_path / "out", tmp_path / "out" / "deep", tmp_path / "out" / "deep" / "copy",
                   tmp_path / "out" / "deep" / "copy" / "a", tmp_path / "one",
                   tmp_path / "one" / "two"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


async def test_staging_whose_owner_died_goes_at_open_and_at_the_next_completion(
    tmp_path: Path,
) -> None:
    import asyncio
    import sys

    from kanban.board.attachments import staging_name

    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()  # reaped: its pid names no process now
    dead_name = f".staging-p{proc.pid}-1-abcdef"
    board = await open_board(tmp_path)
    at_open = board.attachments_path(7) / dead_name
    live = board.attachments_path(7) / staging_name()  # this process: alive
    for folder in (at_open, live):
        (folder / "out").mkdir(parents=True)
        (folder / "out" / "x.bin").write_bytes(b"x")
    await board.close()
    board = await open_board(tmp_path)
    try:
        assert not at_open.exists()  # young, but its owner is gone
        assert live.exists()
        task = await make_task(board, "t")
        claim = await board.claim(task.id)
        workspace = Path(claim.workspace or "")
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "a.txt").write_text("a", encoding="utf-8")
        left = board.attachments_path(task.id) / dead_name
        (left / "sub").mkdir(parents=True)
        await board.complete(task.id, lease=claim.lease, artifacts=["a.txt"])
        assert sorted(p.name for p in board.attachments_path(task.id).iterdir()) == ["a.txt"]
    finally:
        await board.close()


async def test_a_fifo_artifact_is_refused_without_hanging_or_staging(board: Board) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "ok.txt").write_text("ok", encoding="utf-8")
    os.mkfifo(workspace / "pipe")
    with pytest.raises(InvalidInput, match=r"artifact refused: pipe: not a regular file"):
        await board.complete(task.id, lease=claim.lease, artifacts=["ok.txt", "pipe"])
    attachments = board.attachments_path(task.id)
    assert not attachments.exists() or list(attachments.iterdir()) == []
    assert (workspace / "ok.txt").read_text(encoding="utf-8") == "ok"
