"""Backing up PostgreSQL boards the way docs/postgres.md says: ``pg_dump`` of the catalog and
the board schemas, a board lost, ``pg_restore --clean`` brings it back with its tasks and its
ids. (``boards backup`` itself is for SQLite and says so on a PostgreSQL home.)"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanban import Boards, InvalidInput
from kanban.backup import backup_board
from kanban.storage.backend import Storage
from kanban.storage.pg import drop_namespace
from tests.storage_backends import pg_dsn

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def tools() -> None:
    missing = [t for t in ("pg_dump", "pg_restore") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (they come with the PostgreSQL "
                    "client tools)")


@pytest.fixture
def storage() -> Iterator[Storage]:
    namespace = "k" + secrets.token_hex(5)
    yield Storage.postgres(pg_dsn(), namespace=namespace, pool_size=2)
    drop_namespace(pg_dsn(), namespace)


def tool(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


async def test_pg_dump_and_pg_restore_bring_a_removed_board_back(
        tools: None, storage: Storage, tmp_path: Path) -> None:
    ns = storage.namespace
    boards = Boards(tmp_path / "home", storage=storage)
    try:
        await boards.create("team")
        board = await boards.open("team")
        first = (await board.create_task("kept", body="the body")).task
        second = (await board.create_task("finished")).task
        claim = await board.claim(second.id)
        await board.complete(second.id, lease=claim.lease, result="42")
    finally:
        await boards.close()
    dump = tmp_path / "relayboard.dump"
    # As docs/postgres.md: the catalog and every board schema of this installation.
    tool("pg_dump", "--format=custom", f"--schema=relayboard_{ns}", f"--schema=rb_{ns}_*",
         f"--file={dump}", f"--dbname={pg_dsn()}")

    boards = Boards(tmp_path / "home", storage=storage)
    try:
        await boards.remove("team", delete=True)  # the loss
        assert "team" not in {b.slug for b in await boards.list()}
    finally:
        await boards.close()

    tool("pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={pg_dsn()}",
         str(dump))
    boards = Boards(tmp_path / "home", storage=storage)
    try:
        assert "team" in {b.slug for b in await boards.list()}
        board = await boards.open("team")
        kept = await board.get_task(first.id)
        assert (kept.title, kept.body, kept.status) == ("kept", "the body", "ready")
        done = await board.get_task(second.id)
        assert (done.status, done.result) == ("done", "42")
        kinds = [e.kind for e in await board.events(task_id=second.id)]
        assert kinds[0] == "created" and "completed" in kinds
        # The ids go on where they stopped (the identity sequences came back too).
        assert (await board.create_task("new")).task.id == second.id + 1
    finally:
        await boards.close()


def test_boards_backup_on_a_postgresql_home_points_to_pg_dump(
        storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="pg_dump"):
        backup_board(Boards(tmp_path, storage=storage), "default")
