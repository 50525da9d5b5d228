"""A SQLite board in one archive, taken while the board is in use, and taken back.

The archive is a gzipped tar::

    manifest.json        what it holds: format, slug, name, when, schema, counts
    board.json           the board's name and creation time
    kanban.db            the database, as one consistent snapshot
    attachments/<id>/…   the tasks' files
    logs/<id>.log        the workers' logs

The database is copied with ``VACUUM INTO`` on a connection of its own: one read transaction,
so the copy is the board as of one commit, whatever the gateway writes meanwhile, and compact
(free pages are left out). The copy passes ``PRAGMA quick_check`` before it goes in. Files are
copied after the snapshot: a file the snapshot names was published before its row committed,
so it is there (unless a task was deleted in between). Workspaces are not kept: a scratch
workspace is removed after completion anyway, and ``dir:``/``worktree`` ones are the user's.

:func:`restore_board` refuses to put a backup where a board exists unless told to
(``replace``); the board it replaces is then archived under ``boards/_archived/``, never
deleted. The archive is checked member by member before anything is written: regular files and
folders only, under the names above, no links, no absolute or ``..`` paths. A PostgreSQL board
is backed up with ``pg_dump`` instead (docs/postgres.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from kanban.errors import BoardNotFound, Conflict, InvalidInput, StorageError
from kanban.home import DB_NAME, DEFAULT_BOARD, META_NAME, Boards, archive_place
from kanban.storage.db import forget_schema
from kanban.storage.modes import PRIVATE_FILE_MODE, private_dirs
from kanban.storage.schema import MIGRATIONS
from kanban.validation import check_slug

log = logging.getLogger(__name__)

FORMAT = "relayboard-board-backup"
VERSION = 1
MANIFEST = "manifest.json"
FOLDERS = ("attachments", "logs")
STAGING_PREFIX = ".staging-"
BUSY_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class BackupInfo:
    """What a backup holds (also its ``manifest.json``)."""

    slug: str
    name: str
    path: Path
    created_at: float
    schema: str
    tasks: int
    files: int
    file_bytes: int
    db_bytes: int
    archive_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


@dataclass(frozen=True)
class RestoreInfo:
    slug: str
    source: Path
    tasks: int
    files: int
    replaced: Path | None  # where the board that was there went (boards/_archived/…)
    backup_created_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"slug": self.slug, "source": str(self.source), "tasks": self.tasks,
                "files": self.files,
                "replaced": str(self.replaced) if self.replaced else None,
                "backup_created_at": self.backup_created_at}


def default_target(home: Path, slug: str, stamp: float | None = None) -> Path:
    """``<home>/backups/<slug>-YYYYmmdd-HHMMSS.tar.gz`` (UTC)."""
    when = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if stamp is None else stamp))
    return home / "backups" / f"{slug}-{when}.tar.gz"


# ---- taking a backup ---------------------------------------------------------------------------

def backup_board(boards: Boards, slug: str, target: Path | None = None) -> BackupInfo:
    """Write the archive of SQLite board ``slug`` to ``target`` (default
    :func:`default_target`); refuses an existing ``target``. Runs on a worker thread."""
    check_slug(slug)
    if boards.storage.is_postgres:
        raise InvalidInput("this home keeps its boards on PostgreSQL: back them up with "
                           "pg_dump (see docs/postgres.md, \"Backups\")")
    folder = boards.root / slug
    db = folder / DB_NAME
    if not db.is_file():
        if slug == DEFAULT_BOARD:
            raise InvalidInput("board 'default' has no database yet: nothing to back up")
        raise BoardNotFound(slug)
    stamp = time.time()
    target = (target or default_target(boards.home, slug, stamp)).expanduser().absolute()
    if target.exists():
        raise Conflict(f"{target} already exists; choose another --to (a backup never "
                       "overwrites a file)")
    if not target.parent.is_dir():
        if target.parent == boards.home / "backups":
            private_dirs(boards.home, target.parent)
        else:
            raise InvalidInput(f"cannot write the backup: folder {target.parent} does not exist")
    meta = boards.info(slug)
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=boards.root) as scratch:
        copy = Path(scratch) / DB_NAME
        snapshot(db, copy)
        tasks, schema = _describe(copy)
        members = list(_board_files(folder))
        info = BackupInfo(slug=slug, name=meta.name, path=target, created_at=stamp,
                          schema=schema, tasks=tasks, files=len(members),
                          file_bytes=sum(size for _p, _a, size in members),
                          db_bytes=copy.stat().st_size)
        manifest = {"format": FORMAT, "version": VERSION, **info.to_dict()}
        manifest.pop("path")
        manifest.pop("archive_bytes")
        board_meta = {"slug": slug, "name": meta.name, "created_at": meta.created_at}
        with _atomic(target) as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode(), stamp)
            _add_bytes(tar, META_NAME, json.dumps(board_meta).encode(), stamp)
            tar.add(copy, arcname=DB_NAME, recursive=False)
            for path, arcname, _size in members:
                with contextlib.suppress(FileNotFoundError):  # deleted since it was listed
                    tar.add(path, arcname=arcname, recursive=False)
    size = target.stat().st_size
    log.info("backed up board %s to %s (%d tasks, %d files, %d bytes)", slug, target, tasks,
             info.files, size)
    return BackupInfo(**{**asdict(info), "archive_bytes": size})


def snapshot(db: Path, copy: Path) -> None:
    """A consistent, compact copy of a live database (``VACUUM INTO``), checked."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open board database {db.parent.name!r}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("VACUUM INTO ?", (str(copy),))
    except sqlite3.Error as exc:
        raise StorageError(f"cannot copy board database {db.parent.name!r}: {exc}") from exc
    finally:
        conn.close()
    os.chmod(copy, PRIVATE_FILE_MODE)
    problem = quick_check(copy)
    if problem is not None:
        raise StorageError(f"the copy of board {db.parent.name!r} fails its integrity check "
                           f"({problem}); the board itself may be damaged: run "
                           "`relayboard doctor`")


def quick_check(db: Path) -> str | None:
    """``PRAGMA quick_check`` of a database file: None when it is sound, else the first
    problem (a file that is no database at all included). Never creates the file."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()
    first = str(rows[0][0]) if rows else "no answer"
    return None if first == "ok" else first


def _describe(db: Path) -> tuple[int, str]:
    """(tasks, newest migration) of a database copy."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tasks = int(conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])
        row = conn.execute("SELECT MAX(name) FROM schema_migrations").fetchone()
    except sqlite3.Error as exc:
        raise StorageError(f"the board's database is not a Relayboard board: {exc}") from exc
    finally:
        conn.close()
    return tasks, str(row[0] or "")


def _board_files(folder: Path) -> Iterator[tuple[Path, str, int]]:
    """(path, name in the archive, size) of every regular file under ``attachments/`` and
    ``logs/``; staging folders (work in progress) and links are left out."""
    for top in FOLDERS:
        root = folder / top
        if not root.is_dir() or root.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(STAGING_PREFIX))
            for name in sorted(filenames):
                if name.startswith(STAGING_PREFIX):
                    continue
                path = Path(dirpath) / name
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if not os.path.isfile(path) or path.is_symlink():
                    continue
                yield path, path.relative_to(folder).as_posix(), info.st_size


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, stamp: float) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mtime = int(stamp)
    member.mode = PRIVATE_FILE_MODE
    tar.addfile(member, io.BytesIO(data))


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[IO[bytes]]:
    """A private file written beside ``target`` and renamed into place once complete."""
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            raise Conflict(f"{target} appeared while the backup was written; it is kept")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# ---- restoring -------------------------------------------------------------------------------

def read_manifest(archive: Path) -> dict[str, Any]:
    """The manifest of a backup archive, checked: one line naming what is wrong otherwise."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            member = tar.getmember(MANIFEST)
            handle = tar.extractfile(member)
            data = json.loads(handle.read(1_000_000)) if handle is not None else None
    except FileNotFoundError:
        raise InvalidInput(f"no such backup file: {archive}") from None
    except KeyError:
        raise InvalidInput(f"{archive.name} is not a Relayboard board backup (no "
                           f"{MANIFEST})") from None
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise InvalidInput(f"{archive.name} is not a readable board backup: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInput(f"{archive.name} is not a Relayboard board backup")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise InvalidInput(f"{archive.name} was written by a newer Relayboard (backup format "
                           f"{data.get('version')!r}); upgrade to restore it")
    return data


def _check_member(member: tarfile.TarInfo) -> PurePosixPath:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise InvalidInput(f"the backup holds an unsafe path {member.name!r}; nothing was "
                           "restored")
    if not (member.isfile() or member.isdir()):
        raise InvalidInput(f"the backup holds {member.name!r}, which is not a regular file "
                           "or folder; nothing was restored")
    top = path.parts[0]
    if len(path.parts) == 1 and top in (MANIFEST, META_NAME, DB_NAME):
        if not member.isfile():
            raise InvalidInput(f"the backup's {top} is not a file; nothing was restored")
        return path
    if top not in FOLDERS:
        raise InvalidInput(f"the backup holds an unexpected entry {member.name!r}; nothing "
                           "was restored")
    return path


def _extract(archive: Path, into: Path) -> int:
    """Unpack a checked archive into the empty folder ``into``; returns the files under
    attachments/ and logs/."""
    files = 0
    with tarfile.open(archive, mode="r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member)
        if DB_NAME not in {m.name for m in members}:
            raise InvalidInput(f"{archive.name} holds no {DB_NAME}; nothing was restored")
        for member in members:
            path = _check_member(member)
            if path.name == MANIFEST and len(path.parts) == 1:
                continue
            if hasattr(tarfile, "data_filter"):  # 3.11.4+: the stdlib's own checks as well
                tar.extract(member, into, filter="data")
            else:  # pragma: no cover - older 3.11 patch releases; members checked above
                tar.extract(member, into)
            files += int(member.isfile() and path.parts[0] in FOLDERS)
    for dirpath, _dirnames, filenames in os.walk(into):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            os.chmod(Path(dirpath) / name, PRIVATE_FILE_MODE)
    return files


def _check_schema(db: Path) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = {str(r[0]) for r in conn.execute("SELECT name FROM schema_migrations")}
    except sqlite3.Error as exc:
        raise InvalidInput(f"the backup's database is not a Relayboard board: {exc}") from exc
    finally:
        conn.close()
    newer = sorted(names - {m.name for m in MIGRATIONS})
    if newer:
        raise InvalidInput(f"the backup's board was written by a newer Relayboard (schema "
                           f"{newer[-1]}); upgrade to restore it")


async def restore_board(boards: Boards, archive: Path, *, slug: str | None = None,
                        replace: bool = False) -> RestoreInfo:
    """Put the board in ``archive`` back as ``slug`` (default: the slug it was taken from).

    A board that exists there is refused unless ``replace``; it is then archived under
    ``boards/_archived/`` (never deleted) and the backup takes its place. The caller makes
    sure no gateway serves the home meanwhile (its lock)."""
    if boards.storage.is_postgres:
        raise InvalidInput("this home keeps its boards on PostgreSQL: restore a SQLite backup "
                           "on a SQLite home, then `boards migrate` it (or use pg_restore, "
                           "see docs/postgres.md)")
    archive = await asyncio.to_thread(lambda: archive.expanduser().absolute())
    manifest = await asyncio.to_thread(read_manifest, archive)
    target = check_slug(slug or str(manifest.get("slug") or ""))
    if target.startswith("_"):
        raise InvalidInput("board slugs starting with '_' are reserved")
    exists = await boards.exists(target)
    if exists and not replace:
        raise Conflict(f"board {target!r} already exists; restore under another slug with "
                       f"--as NEW, or use --replace to archive the current board under "
                       "boards/_archived/ and put the backup in its place")
    if exists:
        board = await boards.open(target)
        active = await board.active_runs()
        if active:
            ids = ", ".join(str(task.id) for _run, task in active[:5])
            raise Conflict(f"board {target!r} has {len(active)} active run(s) (task {ids}); "
                           "let them finish (or `boards remove --force`) before replacing it")
        await boards.close_one(target)  # its connection must not follow the renamed file
    return await asyncio.to_thread(_restore_files, boards, archive, manifest, target,
                                   exists)


def _restore_files(boards: Boards, archive: Path, manifest: dict[str, Any], slug: str,
                   exists: bool) -> RestoreInfo:
    private_dirs(boards.home, boards.root)
    staging = Path(tempfile.mkdtemp(prefix=f".restore-{slug}-", dir=boards.root))
    try:
        files = _extract(archive, staging)
        db = staging / DB_NAME
        problem = quick_check(db)
        if problem is not None:
            raise InvalidInput(f"the backup's database fails its integrity check ({problem}); "
                               "nothing was restored")
        _check_schema(db)
        tasks, _schema = _describe(db)
        meta_path = staging / META_NAME
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        name = meta.get("name") if isinstance(meta, dict) else None
        created = meta.get("created_at") if isinstance(meta, dict) else None
        meta_path.write_text(json.dumps({"slug": slug, "name": name or slug,
                                         "created_at": created or time.time()}),
                             encoding="utf-8")
        os.chmod(meta_path, PRIVATE_FILE_MODE)
        folder = boards.root / slug
        forget_schema(boards.db_path(slug))
        replaced = None
        if exists or folder.exists():
            replaced = archive_place(boards.root, f"{slug}-{int(time.time())}-replaced")
            folder.rename(replaced)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    created_at = manifest.get("created_at")
    log.info("restored board %s from %s (%d tasks, %d files)", slug, archive, tasks, files)
    return RestoreInfo(slug=slug, source=archive, tasks=tasks, files=files,
                       replaced=replaced,
                       backup_created_at=float(created_at)
                       if isinstance(created_at, int | float) else None)
