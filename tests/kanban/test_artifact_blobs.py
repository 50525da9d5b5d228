"""Artifact bytes travel through the database on a board several hosts serve: a worker's files
completed on host A are written back on host B, bounded by the board's max_artifact_bytes.

Two hosts are two local folders (homes) on one PostgreSQL board. The SQLite half checks that a
single-host board stores nothing and reads files where they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kanban.board import Board, BoardOptions
from kanban.errors import InvalidInput, NotFound, StorageError
from kanban.storage.artifact_rows import CHUNK_BYTES
from kanban.storage.backend import Storage
from kanban.storage.pg import drop_namespace
from kanban.testing import make_task, open_board
from tests.storage_backends import pg_dsn


@pytest.fixture
async def pg() -> AsyncIterator[Storage]:
    dsn = pg_dsn()
    storage = Storage.postgres(dsn, namespace=f"b{secrets.token_hex(5)}", pool_size=3)
    try:
        yield storage
    finally:
        await asyncio.to_thread(drop_namespace, dsn, storage.namespace)


async def host(tmp_path: Path, storage: Storage, name: str,
               options: BoardOptions | None = None) -> Board:
    """The board as one host sees it: its own home folder, the shared database."""
    return await Board.open(tmp_path / name / "boards" / "default" / "kanban.db",
                            storage=storage, options=options)


async def complete_with_files(board: Board, files: dict[str, bytes]) -> tuple[int, list[str]]:
    task = await make_task(board, "report")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    for name, data in files.items():
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_bytes(data)
    done = await board.complete(task.id, lease=claim.lease, artifacts=list(files))
    return task.id, done.artifacts


@pytest.mark.postgres_only
async def test_files_completed_on_one_host_are_read_on_another(
    tmp_path: Path, pg: Storage
) -> None:
    chart = os.urandom(2 * CHUNK_BYTES + 1234)  # three chunks, the last one short
    csv = b"region,revenue\nnorth,12\nsouth,7\n"
    a = await host(tmp_path, pg, "a")
    b = await host(tmp_path, pg, "b")
    try:
        task_id, recorded = await complete_with_files(
            a, {"out/chart.png": chart, "data.csv": csv})
        assert all(Path(p).is_relative_to(tmp_path / "a") for p in recorded)
        stored = await b.stored_artifacts(task_id)
        assert {n: (f.size, f.chunks, f.sha256) for n, f in stored.items()} == {
            "out/chart.png": (len(chart), 3, hashlib.sha256(chart).hexdigest()),
            "data.csv": (len(csv), 1, hashlib.sha256(csv).hexdigest())}
        attachments_b = b.attachments_path(task_id)
        assert not attachments_b.exists()  # nothing on host B until someone reads it

        local = await b.local_artifacts(task_id, recorded)
        assert local == [attachments_b / "out" / "chart.png", attachments_b / "data.csv"]
        assert local[0].read_bytes() == chart and local[1].read_bytes() == csv
        for path in local:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for folder in (attachments_b, attachments_b / "out"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert sorted(p.name for p in attachments_b.iterdir()) == ["data.csv", "out"]
        # Host A reads its own files; nothing is written over them.
        mtime = Path(recorded[1]).stat().st_mtime_ns
        assert await a.local_artifacts(task_id, recorded) == [Path(p) for p in recorded]
        assert Path(recorded[1]).stat().st_mtime_ns == mtime
        # By name, too.
        assert await b.artifact_file(task_id, "out/chart.png") == local[0]
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres_only
async def test_a_folder_artifact_arrives_whole(tmp_path: Path, pg: Storage) -> None:
    a = await host(tmp_path, pg, "a")
    b = await host(tmp_path, pg, "b")
    try:
        task = await make_task(a, "plots")
        claim = await a.claim(task.id)
        plots = Path(claim.workspace or "") / "plots"
        plots.mkdir(parents=True)
        (plots / "one.png").write_bytes(b"1")
        (plots / "two.png").write_bytes(b"22")
        done = await a.complete(task.id, lease=claim.lease, artifacts=["plots"])
        [folder] = await b.local_artifacts(task.id, done.artifacts)
        assert folder == b.attachments_path(task.id) / "plots"
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
            "one.png": b"1", "two.png": b"22"}
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres_only
async def test_an_oversized_artifact_is_refused_at_complete(tmp_path: Path, pg: Storage) -> None:
    a = await host(tmp_path, pg, "a", BoardOptions(max_artifact_bytes=1000))
    try:
        task = await make_task(a, "big")
        claim = await a.claim(task.id)
        workspace = Path(claim.workspace or "")
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "small.txt").write_bytes(b"ok")
        (workspace / "huge.bin").write_bytes(b"x" * 2000)
        with pytest.raises(InvalidInput) as refused:
            await a.complete(task.id, lease=claim.lease, artifacts=["small.txt", "huge.bin"])
        message = str(refused.value)
        assert "huge.bin is 2,000 bytes" in message and "at most 1,000 bytes" in message
        assert "Nothing was completed" in message and "\n" not in message
        # Nothing happened: still running, nothing stored, the worker keeps its files.
        assert (await a.get_task(task.id)).status == "running"
        assert await a.stored_artifacts(task.id) == {}
        assert (workspace / "huge.bin").stat().st_size == 2000
        assert (workspace / "small.txt").read_bytes() == b"ok"
        # Without the big file the same worker completes.
        done = await a.complete(task.id, lease=claim.lease, artifacts=["small.txt"])
        assert done.status == "done" and list(await a.stored_artifacts(task.id)) == ["small.txt"]
    finally:
        await a.close()


@pytest.mark.postgres_only
async def test_a_stale_or_linked_local_copy_is_replaced_never_followed(
    tmp_path: Path, pg: Storage
) -> None:
    a = await host(tmp_path, pg, "a")
    b = await host(tmp_path, pg, "b")
    try:
        task_id, recorded = await complete_with_files(a, {"r.csv": b"fresh,data\n"})
        folder = b.attachments_path(task_id)
        folder.mkdir(parents=True)
        (folder / "r.csv").write_bytes(b"left by an older board")
        [path] = await b.local_artifacts(task_id, recorded)
        assert path.read_bytes() == b"fresh,data\n"
        secret = tmp_path / "secret.txt"
        secret.write_bytes(b"PRIVATE")
        path.unlink()
        path.symlink_to(secret)
        assert (await b.artifact_file(task_id, "r.csv")).read_bytes() == b"fresh,data\n"
        assert not path.is_symlink() and secret.read_bytes() == b"PRIVATE"
        # The task's folder itself a link: refused, nothing written through it.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        path.unlink()
        folder.rmdir()
        folder.symlink_to(elsewhere)
        with pytest.raises(StorageError, match=r"cannot write file 'r\.csv' of task"):
            await b.artifact_file(task_id, "r.csv")
        assert list(elsewhere.iterdir()) == []
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres_only
async def test_corrupt_stored_bytes_are_never_written_out(tmp_path: Path, pg: Storage) -> None:
    a = await host(tmp_path, pg, "a")
    b = await host(tmp_path, pg, "b")
    try:
        task_id, recorded = await complete_with_files(a, {"r.csv": b"1,2,3\n"})
        await a.db.write(lambda tx: tx.execute(
            "UPDATE artifact_blobs SET data = ? WHERE task_id = ?", (b"9,9,9\n", task_id)))
        with pytest.raises(StorageError, match="do not match their size and checksum"):
            await b.local_artifacts(task_id, recorded)
        folder = b.attachments_path(task_id)
        assert list(folder.iterdir()) == []  # neither the file nor its temporary copy
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres_only
async def test_deleting_a_task_drops_its_bytes(tmp_path: Path, pg: Storage) -> None:
    a = await host(tmp_path, pg, "a")
    try:
        task_id, _ = await complete_with_files(a, {"r.csv": b"x"})
        await a.archive([task_id])
        await a.delete_archived([task_id])
        count = await a.db.read(lambda tx: tx.one("SELECT COUNT(*) FROM artifact_blobs")[0])
        assert count == 0 and await a.stored_artifacts(task_id) == {}
    finally:
        await a.close()


async def test_names_that_leave_the_folder_are_refused(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        task = await make_task(board, "t")
        for name in ("../x", "/etc/passwd", "a/../../b", "", ".staging-1.part"):
            with pytest.raises(InvalidInput, match="invalid artifact name"):
                await board.artifact_file(task.id, name)
        with pytest.raises(NotFound, match=r"has no file 'nothing\.txt'"):
            await board.artifact_file(task.id, "nothing.txt")
    finally:
        await board.close()


async def test_a_single_host_board_reads_files_where_they_are(
    tmp_path: Path, storage_backend: Storage
) -> None:
    board = await open_board(tmp_path)
    try:
        started = time.monotonic()
        task_id, recorded = await complete_with_files(board, {"r.csv": b"a\n"})
        assert time.monotonic() - started < 10
        local = await board.local_artifacts(task_id, recorded)
        assert local == [Path(p) for p in recorded]
        assert (await board.artifact_file(task_id, "r.csv")).read_bytes() == b"a\n"
        stored = await board.stored_artifacts(task_id)
        # Only a board several hosts serve keeps bytes in its database.
        assert list(stored) == (["r.csv"] if storage_backend.shared else [])
    finally:
        await board.close()


@pytest.mark.postgres_only
async def test_a_worker_on_another_host_gets_the_inputs_and_parent_files_its_context_names(
    tmp_path: Path, pg: Storage,
) -> None:
    a = await host(tmp_path, pg, "a")
    b = await host(tmp_path, pg, "b")
    try:
        parent_id, _ = await complete_with_files(a, {"sales.csv": b"month,total\njan,3\n"})
        upload = tmp_path / "brief.txt"
        upload.write_bytes(b"use the sales figures")
        child = (await a.create_task("chart", parents=[parent_id],
                                     attachments=[upload])).task
        assert child.status == "ready"
        await b.localise_for_worker(child.id)
        context = await b.context(child.id)
        b_input = b.attachments_path(child.id) / "brief.txt"
        b_parent = b.attachments_path(parent_id) / "sales.csv"
        assert f"- {b_input}" in context and str(b_parent) in context
        assert str(a.root) not in context  # host A's paths mean nothing on host B
        assert b_input.read_bytes() == b"use the sales figures"
        assert b_parent.read_bytes() == b"month,total\njan,3\n"
        # Host A's own view still names its own files.
        assert str(a.attachments_path(child.id) / "brief.txt") in await a.context(child.id)
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres_only
async def test_an_input_over_the_limit_refuses_the_create_and_leaves_nothing(
    tmp_path: Path, pg: Storage,
) -> None:
    a = await host(tmp_path, pg, "a", BoardOptions(max_artifact_bytes=1000))
    try:
        big = tmp_path / "big.csv"
        big.write_bytes(b"x" * 5000)
        with pytest.raises(InvalidInput, match=r"attachment refused: big\.csv is 5,000 bytes.*"
                                               r"The task was not created"):
            await a.create_task("too big", attachments=[big])
        assert await a.list_tasks(include_archived=True) == []
        assert [p.name for p in a.attachments_dir.iterdir()] == []
    finally:
        await a.close()
