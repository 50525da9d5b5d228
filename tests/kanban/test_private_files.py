"""The home is private (folders 0700, files 0600, whatever the umask; older ones tightened on
open), a 0-byte database is refused rather than taken for an empty board, profiles are written
whole or not at all (a full disk says so), and a workspace may not be a system folder or the
home."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.errors import InvalidInput, StorageError
from kanban.home import Boards


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the common default: new files 0644, folders 0755
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("loose_umask")
@pytest.mark.sqlite_only  # the database file's mode
async def test_a_new_home_is_private_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    boards = Boards(home)
    try:
        board = await boards.open("default")
        await board.create_task("t")
        await boards.create("team")
        root = home / "boards"
        for folder in (home, root, root / "default", root / "team"):
            assert mode(folder) == 0o700, folder
        for name in ("kanban.db", "kanban.db-wal", "kanban.db-shm", "board.json"):
            assert mode(root / "default" / name) == 0o600, name
        assert mode(root / "team" / "kanban.db") == 0o600
    finally:
        await boards.close()
    profiles = Profiles(home)
    made = profiles.create("p", description="d", env={"TOKEN": "secret"})
    assert mode(home / "profiles") == 0o700 and mode(made.home) == 0o700
    assert mode(made.home / "profile.yaml") == 0o600 and mode(made.skills_dir) == 0o700
    assert not [p for p in (home / "profiles").iterdir() if p.name.startswith(".")]


@pytest.mark.sqlite_only  # the database file's mode
async def test_an_older_open_home_is_tightened_on_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    boards = Boards(home)
    board = await boards.open("default")
    for folder in ("attachments", "logs", "workspaces"):
        (board.root / folder).mkdir()
    await boards.close()
    root = home / "boards" / "default"
    loose = [home, home / "boards", root, root / "attachments", root / "logs",
             root / "workspaces"]
    for folder in loose:
        os.chmod(folder, 0o755)
    for name in ("kanban.db", "board.json"):
        os.chmod(root / name, 0o644)
    boards = Boards(home)
    try:
        await boards.open("default")
        assert {str(p): mode(p) for p in loose} == {str(p): 0o700 for p in loose}
        assert mode(root / "kanban.db") == 0o600 and mode(root / "board.json") == 0o600
        assert mode(root / "kanban.db-wal") == 0o600
    finally:
        await boards.close()


@pytest.mark.sqlite_only  # a SQLite file
async def test_a_zero_byte_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    boards = Boards(home)
    await boards.create("team")
    await boards.close()
    db = home / "boards" / "team" / "kanban.db"
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    db.write_bytes(b"")  # a copy that failed half-way
    boards = Boards(home)
    try:
        with pytest.raises(StorageError) as refused:
            await boards.open("team")
        assert str(refused.value) == (
            "board 'team' database (kanban.db) is empty (0 bytes) — it may be a failed copy; "
            "move it away to start fresh")
        assert db.stat().st_size == 0 and not db.with_name("kanban.db-wal").exists()
    finally:
        await boards.close()


async def test_concurrent_first_opens_of_one_board_all_succeed(tmp_path: Path) -> None:
    # A fresh database is built aside and linked into place: no opener ever sees it half-made.
    path = tmp_path / "b" / "kanban.db"
    opened = await asyncio.gather(*(Board.open(path) for _ in range(6)))
    try:
        made = await opened[0].create_task("t")
        for board in opened[1:]:
            assert (await board.get_task(made.task.id)).title == "t"
        assert sorted(p.name for p in path.parent.iterdir()
                      if p.name.startswith(".")) == []
    finally:
        for board in opened:
            await board.close()


def test_an_empty_leftover_profile_folder_does_not_block_creation(tmp_path: Path) -> None:
    profiles = Profiles(tmp_path)
    (profiles.root / "p" / "skills").mkdir(parents=True)  # what an old failed create left
    assert profiles.create("p", description="again").description == "again"
    with pytest.raises(InvalidInput, match="profile 'p' already exists"):
        profiles.create("p")
    (profiles.root / "q").mkdir()
    (profiles.root / "q" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InvalidInput, match="profile 'q' already exists"):
        profiles.create("q")
    assert (profiles.root / "q" / "notes.txt").read_text(encoding="utf-8") == "mine"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that can really fill up (needs the right to mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    ballast = disk / "ballast"
    with ballast.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return ballast


@pytest.mark.sqlite_only  # a SQLite file on a full disk
async def test_a_full_disk_says_so_and_leaves_nothing_half_made(tiny_disk: Path) -> None:
    home = tiny_disk / "home"
    profiles = Profiles(home)
    (home / "profiles").mkdir(parents=True)
    ballast = fill(tiny_disk)
    with pytest.raises(StorageError) as full:
        profiles.create("writer", description="x" * 20_000)
    assert str(full.value) == ("disk full: cannot write profile 'writer'; free some space and "
                               "try again")
    assert list((home / "profiles").iterdir()) == []  # nothing blocks a later create
    with pytest.raises(StorageError, match=r"^disk full: cannot create board 'default'"):
        await Board.open(home / "boards" / "default" / "kanban.db", slug="default")
    assert not (home / "boards" / "default" / "kanban.db").exists()
    ballast.unlink()
    assert profiles.create("writer", description="ok").description == "ok"
    async with Board.open(home / "boards" / "default" / "kanban.db") as board:
        assert (await board.create_task("t")).task.id == 1


@pytest.mark.parametrize("spec, says", [
    ("dir:/", "is the file-system root"),
    ("dir:/etc", "is a system folder (/etc)"),
    ("dir:/usr/local/share", "is a system folder (/usr)"),
    ("dir:{home}", "is inside the Relayboard home"),
    ("dir:{home}/boards/default", "is inside the Relayboard home"),
    ("dir:{home}/profiles/p/../../boards", "may not contain .. components"),
    ("dir:{parent}", "contains the Relayboard home"),
    ("worktree:/etc/wt", "is a system folder (/etc)"),
])
async def test_workspace_may_not_be_a_system_folder_or_the_home(
        tmp_path: Path, spec: str, says: str) -> None:
    home = tmp_path / "home"
    boards = Boards(home)
    try:
        board = await boards.open("default")
        spec = spec.format(home=home, parent=tmp_path)
        with pytest.raises(InvalidInput, match=re.escape(says)) as refused:
            await board.create_task("t", workspace=spec)
        assert "\n" not in str(refused.value)
        assert await board.list_tasks() == []
        made = await board.create_task("ok", workspace=f"dir:{tmp_path / 'work'}")
        assert made.task.workspace_path == str(tmp_path / "work")
    finally:
        await boards.close()
