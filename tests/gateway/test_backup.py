"""``kanban boards backup`` / ``boards restore``: a consistent copy of a SQLite board taken while
a worker process completes tasks on it, round-tripped; the refusals (an existing board without
--replace, a running gateway, bad archives, callers other than the operator's command line)."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from gateway.commands import (
    BoardsBackupRequest,
    BoardsRestoreRequest,
    ChatUser,
    NotAllowed,
    Operator,
    Services,
    Worker,
    execute,
)
from gateway.daemon.lock import HomeLock
from kanban import Boards, Conflict, InvalidInput
from tests.gateway.conftest import SUBPROCESS_TIMEOUT, Cli, clean_environ

pytestmark = pytest.mark.sqlite_only

TASKS = 60

# A worker process on the board: claims and completes every ready task, each with an artifact,
# until none is left; says "go" after its first completion.
WORKER = r"""
import asyncio, sys
from pathlib import Path
from kanban.board import Board

async def main(db):
    async with Board.open(Path(db), slug="default") as board:
        first = True
        while True:
            ready = await board.list_tasks(status="ready", with_body=False)
            if not ready:
                break
            task = ready[0]
            claim = await board.claim(task.id)
            ws = board.workspaces_dir / str(task.id)
            ws.mkdir(parents=True, exist_ok=True)
            (ws / "out.txt").write_text(f"result of {task.id}\n" * 50)
            board.logs_dir.mkdir(exist_ok=True)
            (board.logs_dir / f"{task.id}.log").write_text(f"log of {task.id}\n")
            await board.complete(task.id, lease=claim.lease, result=f"r{task.id}",
                                 artifacts=[str(ws / "out.txt")])
            if first:
                print("go", flush=True)
                first = False

asyncio.run(main(sys.argv[1]))
"""


def done_without_files(db: Path, board_dir: Path) -> list[int]:
    """Tasks the database says are done whose artifact is missing from attachments/."""
    conn = sqlite3.connect(db)
    try:
        done = [int(r[0]) for r in conn.execute("SELECT id FROM tasks WHERE status = 'done'")]
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return [t for t in done if not (board_dir / "attachments" / str(t) / "out.txt").is_file()]


def test_backups_taken_while_a_worker_completes_restore_to_consistent_boards(rb: Cli) -> None:
    for i in range(TASKS):
        rb.create(f"task {i}")
    db = rb.home / "boards" / "default" / "kanban.db"
    with subprocess.Popen([sys.executable, "-c", WORKER, str(db)], env=clean_environ(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as worker:
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "go"
            taken = [rb.json("kanban", "boards", "backup", "default", "--to",
                             str(rb.home / f"b{i}.tar.gz")) for i in range(3)]
            _out, err = worker.communicate(timeout=SUBPROCESS_TIMEOUT)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert worker.returncode == 0, err
    final = rb.json("kanban", "boards", "backup", "default")  # default target: <home>/backups
    assert Path(final["path"]).parent == rb.home / "backups"
    assert final["tasks"] == TASKS and final["files"] == 2 * TASKS  # an artifact and a log each
    for i, info in enumerate([*taken, final]):
        slug = f"copy{i}"
        restored = rb.json("kanban", "boards", "restore", info["path"], "--as", slug)
        assert restored["slug"] == slug and restored["tasks"] == TASKS
        folder = rb.home / "boards" / slug
        # Every completion in the snapshot has its files: the copy is of one commit.
        assert done_without_files(folder / "kanban.db", folder) == []
        tasks = rb.json("kanban", "--board", slug, "list")
        assert len(tasks) == TASKS
        assert {t["status"] for t in tasks} <= {"ready", "running", "done"}
        assert sum(t["status"] == "running" for t in tasks) <= 1  # the one worker's claim
        shown = rb.show(tasks[-1]["id"], board=slug)
        assert shown["events"][0]["kind"] == "created"
    last = rb.json("kanban", "--board", "copy3", "list", "--status", "done")
    assert len(last) == TASKS
    sample = rb.home / "boards" / "copy3" / "attachments" / str(last[0]["id"]) / "out.txt"
    assert sample.read_text().startswith(f"result of {last[0]['id']}")
    # The restored board works: a new task gets the next id.
    assert rb.create("after restore", board="copy3") == TASKS + 1


def test_restore_refuses_an_existing_board_unless_replace_which_keeps_the_old_one(
        rb: Cli) -> None:
    first = rb.create("in the backup")
    archive = rb.json("kanban", "boards", "backup", "default")["path"]
    rb.create("after the backup")
    err = rb.fail("kanban", "boards", "restore", archive)
    assert isinstance(err, Conflict)
    assert "board 'default' already exists" in str(err) and "--replace" in str(err)
    assert len(rb.json("kanban", "list")) == 2  # nothing lost
    done = rb.json("kanban", "boards", "restore", archive, "--replace")
    assert [t["id"] for t in rb.json("kanban", "list")] == [first]
    kept = Path(done["replaced"])
    assert kept.parent == rb.home / "boards" / "_archived"
    conn = sqlite3.connect(kept / "kanban.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 2
    finally:
        conn.close()


def test_restore_is_refused_while_a_gateway_holds_the_home(rb: Cli) -> None:
    rb.create("x")
    archive = rb.json("kanban", "boards", "backup", "default")["path"]
    with HomeLock(rb.home):
        err = rb.fail("kanban", "boards", "restore", archive, "--as", "other")
    assert isinstance(err, Conflict)
    assert "a gateway is running on this home" in str(err)
    assert not (rb.home / "boards" / "other").exists()
    rb.ok("kanban", "boards", "restore", archive, "--as", "other")  # once it stopped


def test_backup_never_overwrites_a_file(rb: Cli) -> None:
    rb.create("x")
    target = rb.home / "mine.tar.gz"
    target.write_bytes(b"precious")
    err = rb.fail("kanban", "boards", "backup", "default", "--to", str(target))
    assert "already exists" in str(err)
    assert target.read_bytes() == b"precious"
    err = rb.fail("kanban", "boards", "backup", "default", "--to",
                  str(rb.home / "no-such-dir" / "b.tar.gz"))
    assert "does not exist" in str(err)


def _archive(path: Path, members: dict[str, bytes], manifest: object) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {"manifest.json": json.dumps(manifest).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(("members", "manifest", "needle"), [
    ({}, {"format": "something-else"}, "is not a Relayboard board backup"),
    ({}, {"format": "relayboard-board-backup", "version": 99}, "newer Relayboard"),
    ({"../escape": b"x"}, None, "unsafe path"),
    ({"etc/passwd": b"x"}, None, "unexpected entry"),
    ({"attachments/1/a.txt": b"x"}, None, "holds no kanban.db"),
    ({"kanban.db": b"not a database at all, just text" * 100}, None, "integrity check"),
])
def test_bad_archives_are_refused_and_restore_nothing(
        rb: Cli, members: dict[str, bytes], manifest: object, needle: str) -> None:
    head = manifest or {"format": "relayboard-board-backup", "version": 1, "slug": "bad"}
    archive = _archive(rb.home / "bad.tar.gz", members, head)
    err = rb.fail("kanban", "boards", "restore", str(archive))
    assert isinstance(err, InvalidInput)
    assert needle in str(err)
    assert not (rb.home / "boards" / "bad").exists()
    leftovers = [p.name for p in (rb.home / "boards").iterdir()] if (
        rb.home / "boards").exists() else []
    assert not [n for n in leftovers if n.startswith(".restore-")]


def test_not_an_archive_is_one_line(rb: Cli) -> None:
    junk = rb.home / "junk.tar.gz"
    junk.write_text("hello")
    proc = rb.main("kanban", "boards", "restore", str(junk))
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: junk.tar.gz is not a readable board backup")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("caller", [
    ChatUser("slack", "U1", role="admin"),
    ChatUser("slack", "U2"),
    Operator("dashboard", host_paths=False),
    Worker(task_id=1, run_id=1, lease="x"),
])
async def test_only_the_operators_command_line_backs_up_or_restores(
        tmp_path: Path, caller: ChatUser | Operator | Worker) -> None:
    services = Services(boards=Boards(tmp_path))
    try:
        await (await services.boards.open("default")).create_task("x")
        for request in (BoardsBackupRequest(slug="default"),
                        BoardsRestoreRequest(file=str(tmp_path / "b.tar.gz"))):
            with pytest.raises(NotAllowed):
                await execute(request, caller, services)
        assert not (tmp_path / "backups").exists()
        done = await execute(BoardsBackupRequest(slug="default"), Operator(), services)
        assert done.to_json()["tasks"] == 1
    finally:
        await services.aclose()


async def test_restore_refuses_a_board_with_active_runs(tmp_path: Path) -> None:
    services = Services(boards=Boards(tmp_path), home_lock=lambda: HomeLock(tmp_path))
    try:
        board = await services.boards.open("default")
        task = await board.create_task("x")
        made = await execute(BoardsBackupRequest(slug="default"), Operator(), services)
        await board.claim(task.task.id)
        with pytest.raises(Conflict, match="active run"):
            await execute(BoardsRestoreRequest(file=made.to_json()["path"], replace=True),
                          Operator(), services)
        assert (await board.get_task(task.task.id)).status == "running"
    finally:
        await services.aclose()
