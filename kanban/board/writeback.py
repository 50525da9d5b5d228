"""A task's files on this host, wherever its worker ran: the reading half of artifact bytes.

A worker's files land in ``attachments/<id>/`` on the worker's host. On a board several hosts
serve (PostgreSQL), ``complete`` also keeps their bytes in the database
(:mod:`kanban.storage.artifact_rows`); here a reader on any host — the notifier, the
dashboard — gets a path on its own disk: the file as it is when this host has it, else
written back from the database into this host's ``attachments/<id>/``.

Writing it back follows the attachments' rules: every folder 0700 and reached one component at a
time without following a link, the file 0600, written under a ``.staging-*`` name (a write killed
midway is swept like a killed ``complete``) and renamed into place only once its size and SHA-256
match what was stored. A local copy whose size differs from the stored one (say, left by an
older board of the same name) is replaced.

Recorded artifact paths are the worker host's (``/home/a/.relayboard/boards/x/attachments/7/
out/chart.png``); :meth:`BlobsMixin.local_artifacts` maps each to this host's path by its name
below ``attachments/<id>/``, so two hosts need not share a home path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath

from kanban.board.attachments import STAGING_PREFIX, private_mkdirs, staging_name
from kanban.board.shared import BoardCore
from kanban.errors import InvalidInput, NotFound, StorageError
from kanban.fsutil import DIR_MODE, FILE_MODE, open_dir_no_follow
from kanban.models import Task
from kanban.storage import artifact_rows, store
from kanban.storage.artifact_rows import StoredFile
from kanban.storage.tx import Tx


def check_artifact_name(name: str) -> PurePosixPath:
    """A file's name below ``attachments/<id>/``: relative, never leaving the folder, never
    one of the kernel's own ``.staging-*`` names."""
    path = PurePosixPath(name)
    if (not name or path.is_absolute() or "\\" in name or "\x00" in name
            or any(part in ("", ".", "..") or part.startswith(STAGING_PREFIX)
                   for part in path.parts)):
        raise InvalidInput(f"invalid artifact name {name!r}")
    return path


class BlobsMixin(BoardCore):
    """Artifact files on this host, written back from the database when they were made
    elsewhere."""

    async def stored_artifacts(self, task_id: int) -> dict[str, StoredFile]:
        """The task's files kept in the database, by name (none on a single-host board)."""
        if not self.storage.shared:
            return {}
        return await self.db.read(lambda tx: artifact_rows.stored_files(tx, task_id))

    async def artifact_file(self, task_id: int, name: str) -> Path:
        """The path on this host of the task's file ``name`` (its path below
        ``attachments/<id>/``), written back from the database if this host lacks it.
        :class:`NotFound` when neither this host nor the database has it."""
        relative = check_artifact_name(name)
        local = self.attachments_path(task_id) / relative
        stored = (await self.stored_artifacts(task_id)).get(relative.as_posix())
        if stored is None:
            if await asyncio.to_thread(_regular_size, local) is not None:
                return local
            raise NotFound(f"task {task_id} has no file {name!r}")
        await self._localise(task_id, stored)
        return local

    async def local_artifacts(self, task_id: int, recorded: Sequence[str | os.PathLike[str]]
                              ) -> list[Path]:
        """Each recorded artifact path of the task as a path on this host.

        A path below some host's ``attachments/<task_id>/`` naming a file (or a folder of
        files) the database keeps becomes this host's copy, written back if needed; any other
        path — a single-host board, a file declared outside the workspace — is returned as
        recorded (delivery's own checks then judge it)."""
        paths = [Path(p) for p in recorded]
        stored = await self.stored_artifacts(task_id) if paths else {}
        if not stored:
            return paths
        out: list[Path] = []
        for path in paths:
            name = _stored_name(path, task_id, stored)
            if name is None:
                out.append(path)
                continue
            for entry in _under(name, stored):
                await self._localise(task_id, entry)
            out.append(self.attachments_path(task_id) / PurePosixPath(name))
        return out

    async def localise_for_worker(self, task_id: int) -> None:
        """Before a worker starts on this host: write back the files its context names — the
        task's attached inputs and its parents' artifacts — when they were made elsewhere."""
        if not self.storage.shared:
            return

        def load(tx: Tx) -> list[Task]:
            task = store.load_task(tx, task_id, with_links=True)
            return [task, *(store.load_task(tx, p) for p in task.parents)]

        task, *parents = await self.db.read(load)
        inputs = task.metadata.get("inputs")
        if isinstance(inputs, list):
            await self.local_artifacts(task.id, [str(p) for p in inputs if isinstance(p, str)])
        for parent in parents:
            if parent.artifacts:
                await self.local_artifacts(parent.id, parent.artifacts)

    async def _localise(self, task_id: int, stored: StoredFile) -> None:
        """Make this host's ``attachments/<id>/<name>`` hold the stored file."""
        local = self.attachments_path(task_id) / PurePosixPath(stored.name)
        if await asyncio.to_thread(_regular_size, local) == stored.size:
            return
        folder = self.attachments_dir

        def run(tx: Tx) -> None:
            _write_back(tx, folder, task_id, stored)

        await self.db.read(run)


def _stored_name(path: Path, task_id: int, stored: dict[str, StoredFile]) -> str | None:
    """The stored name (or folder of stored names) ``path`` records, judged by its parts after
    an ``attachments/<task_id>/`` pair: the home above it is the recording host's."""
    parts = PurePath(os.path.normpath(path)).parts
    for i in range(len(parts) - 2):
        if parts[i] == "attachments" and parts[i + 1] == str(task_id):
            name = "/".join(parts[i + 2:])
            if _under(name, stored):
                return name
    return None


def _under(name: str, stored: dict[str, StoredFile]) -> list[StoredFile]:
    """The stored file ``name``, or every stored file in the folder ``name``."""
    if name in stored:
        return [stored[name]]
    return [f for key, f in stored.items() if key.startswith(name + "/")]


def _regular_size(path: Path) -> int | None:
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _open_folder(attachments_dir: Path, parts: Sequence[str]) -> int:
    """The folder ``attachments/<parts…>``, created 0700 where missing and reached one
    component at a time without following a link."""
    private_mkdirs(attachments_dir)
    current = open_dir_no_follow(attachments_dir)
    try:
        for part in parts:
            try:
                os.mkdir(part, DIR_MODE, dir_fd=current)
            except FileExistsError:
                pass
            nxt = open_dir_no_follow(part, dir_fd=current)
            os.close(current)
            current = nxt
            if stat.S_IMODE(os.fstat(current).st_mode) != DIR_MODE:
                os.fchmod(current, DIR_MODE)
    except BaseException:
        os.close(current)
        raise
    return current


_WRITE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                | getattr(os, "O_CLOEXEC", 0))


def _write_back(tx: Tx, attachments_dir: Path, task_id: int, stored: StoredFile) -> None:
    """Write the stored file into this host's attachments (in a read transaction: one
    snapshot of its chunks, one chunk in memory at a time)."""
    relative = check_artifact_name(stored.name)
    where = f"file {stored.name!r} of task {task_id}"
    try:
        # Written at the top of the task's folder, where a killed write is swept on open.
        top = _open_folder(attachments_dir, [str(task_id)])
        try:
            folder = _open_folder(attachments_dir, [str(task_id), *relative.parts[:-1]])
        except BaseException:
            os.close(top)
            raise
    except OSError as exc:
        raise StorageError(f"cannot write {where} on this host: {exc}") from exc
    temp = f"{staging_name()}.part"
    try:
        fd = os.open(temp, _WRITE_FLAGS, FILE_MODE, dir_fd=top)
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask took away or left
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb", closefd=False) as out:
                for chunk in range(stored.chunks):
                    data = artifact_rows.read_chunk(tx, task_id, stored.name, chunk)
                    if data is None:
                        raise StorageError(f"{where}: chunk {chunk} is missing from the "
                                           "database")
                    digest.update(data)
                    size += len(data)
                    out.write(data)
        finally:
            os.close(fd)
        if size != stored.size or digest.hexdigest() != stored.sha256:
            raise StorageError(f"{where}: the stored bytes do not match their size and "
                               "checksum")
        os.rename(temp, relative.name, src_dir_fd=top, dst_dir_fd=folder)
    except BaseException as exc:
        try:
            os.unlink(temp, dir_fd=top)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {where} on this host: "
                               f"{exc.strerror or exc}") from exc
        raise
    finally:
        os.close(folder)
        os.close(top)
