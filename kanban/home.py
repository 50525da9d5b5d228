"""The boards of a home: ``<home>/boards/<slug>/kanban.db``, one :class:`Board` per file — or,
with PostgreSQL storage, one schema per board in the shared database, each host keeping a local
``<home>/boards/<slug>/`` folder for workspaces, logs and staged files.

``default`` always exists. Removing a board archives it (rename under ``boards/_archived/``, or
on PostgreSQL a rename of its schema) or deletes it; either way the schema cache entry is
dropped first.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import shutil
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from kanban.board import Board, BoardOptions
from kanban.errors import BoardNotFound, Conflict, InvalidInput, StorageError
from kanban.storage.backend import Storage, default_storage
from kanban.storage.db import forget_schema
from kanban.storage.modes import PRIVATE_FILE_MODE, private_dirs, private_files
from kanban.timeutil import now
from kanban.validation import check_slug

log = logging.getLogger(__name__)

DEFAULT_BOARD = "default"
DB_NAME = "kanban.db"
META_NAME = "board.json"
DEFAULT_KILL_GRACE = 5.0  # seconds between TERM and KILL when a removal stops workers


@dataclass(frozen=True)
class BoardInfo:
    slug: str
    name: str
    path: Path
    created_at: float | None

    def to_dict(self) -> dict[str, object]:
        return {"slug": self.slug, "name": self.name, "path": str(self.path),
                "created_at": self.created_at}


@dataclass(frozen=True)
class WorkerRun:
    """An active run whose worker process is known (see :meth:`Boards.worker_runs`)."""

    slug: str
    task_id: int
    run_id: int
    lease: str
    profile: str | None
    pid: int
    started_at: float | None


def archive_place(root: Path, name: str) -> Path:
    """A free path for a board moved aside: ``<root>/_archived/<name>``, numbered when taken
    (the folder is made, private, if need be)."""
    archive_root = root / "_archived"
    private_dirs(archive_root)
    target, suffix = archive_root / name, 1
    while target.exists():
        target, suffix = archive_root / f"{name}-{suffix}", suffix + 1
    return target


class Boards:
    """Opens and caches the boards of one home; close it to close every board it opened."""

    def __init__(self, home: Path, options: BoardOptions | None = None,
                 storage: Storage | None = None) -> None:
        self.home = home
        self.options = options or BoardOptions()
        self.storage = storage or default_storage()
        self._open: dict[str, Board] = {}
        self._lock = asyncio.Lock()

    @property
    def root(self) -> Path:
        return self.home / "boards"

    def db_path(self, slug: str) -> Path:
        return self.root / slug / DB_NAME

    async def exists(self, slug: str) -> bool:
        if self.storage.is_postgres:
            return slug in {s for s, _n, _c in await self._catalog()}
        return self.db_path(slug).is_file()

    async def _catalog(self) -> builtins.list[tuple[str, str, float]]:
        from kanban.storage.pg import catalog_list

        assert self.storage.dsn is not None
        return await asyncio.to_thread(catalog_list, self.storage.dsn, self.storage.namespace)

    async def _open_board(self, slug: str) -> Board:
        return await Board.open(self.db_path(slug), slug=slug, options=self.options,
                                storage=self.storage)

    async def open(self, slug: str = DEFAULT_BOARD) -> Board:
        """The open board for ``slug``; ``default`` is created on first use, others must exist."""
        check_slug(slug)
        async with self._lock:
            board = self._open.get(slug)
            if board is not None and not board.db.closed:
                return board
            if not await self.exists(slug):
                if slug != DEFAULT_BOARD:
                    raise BoardNotFound(slug)
                await self._record(slug, slug)
            else:
                await asyncio.to_thread(self._private, slug)
                if not self.storage.is_postgres:
                    self._refuse_moved(slug)
            board = await self._open_board(slug)
            self._open[slug] = board
            return board

    async def create(self, slug: str, *, name: str | None = None) -> BoardInfo:
        check_slug(slug)
        if slug.startswith("_"):
            raise InvalidInput("board slugs starting with '_' are reserved")
        if await self.exists(slug):
            raise Conflict(f"board {slug!r} already exists")
        if not await self._record(slug, name or slug):
            raise Conflict(f"board {slug!r} already exists")
        board = await self._open_board(slug)
        async with self._lock:
            self._open[slug] = board
        return self.info(slug)

    async def list(self) -> builtins.list[BoardInfo]:
        if self.storage.is_postgres:
            found = {slug: BoardInfo(slug, name, self.root / slug, created)
                     for slug, name, created in await self._catalog()}
            found.setdefault(DEFAULT_BOARD, BoardInfo(DEFAULT_BOARD, DEFAULT_BOARD,
                                                      self.root / DEFAULT_BOARD, None))
            return [found[s] for s in sorted(found)]
        return await asyncio.to_thread(self._list_files)

    def _list_files(self) -> builtins.list[BoardInfo]:
        slugs = set()
        if self.root.is_dir():
            slugs = {p.name for p in self.root.iterdir()
                     if p.is_dir() and not p.name.startswith("_") and (p / DB_NAME).is_file()}
        slugs.add(DEFAULT_BOARD)
        return [self.info(s) for s in sorted(slugs)]

    def info(self, slug: str) -> BoardInfo:
        meta: dict[str, object] = {}
        meta_path = self.root / slug / META_NAME
        try:
            loaded = json.loads(meta_path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                meta = loaded
        except (OSError, ValueError):
            pass
        created = meta.get("created_at")
        return BoardInfo(
            slug=slug,
            name=str(meta.get("name") or slug),
            path=self.root / slug,
            created_at=float(created) if isinstance(created, int | float) else None,
        )

    async def stop_runs(self, slug: str, *, kill_grace: float = DEFAULT_KILL_GRACE,
                        by: str | None = None) -> builtins.list[int]:
        """Stop the workers of the board's active runs on this host (TERM, ``kill_grace``
        seconds, KILL — only a process whose start time matches the recorded one) and release
        every active run, manual claims and other hosts' runs included (their leases go
        stale). Returns the ids of the tasks whose runs were released."""
        board = await self.open(slug)
        active = await board.active_runs()
        if not active:
            return []
        # The runtime imports this module; import its process helpers only when needed.
        import anyio

        from kanban.runtime.spawn import WorkerProcess, is_same_process

        host = socket.gethostname()

        async def stop(pid: int, started: float | None) -> None:
            if not await anyio.to_thread.run_sync(is_same_process, pid, started):
                return  # gone already, or the pid now belongs to somebody else
            proc = WorkerProcess(pid, started)
            proc.watch(lambda _p: None)  # wait on its pidfd, not on process-table probes
            try:
                await proc.terminate(kill_grace)
            finally:
                proc.close()

        async with anyio.create_task_group() as group:
            for run, _task in active:
                if run.worker_pid is not None and run.host == host:
                    group.start_soon(stop, run.worker_pid, run.worker_started_at,
                                     name=f"stop-worker-{run.task_id}")
        released = []
        for run, task in active:
            if await board.release(run.id, reason=f"board {slug!r} is being removed", by=by):
                released.append(task.id)
        return released

    async def worker_runs(self, pids: Collection[int], host: str) -> builtins.list[WorkerRun]:
        """The active runs, on every board of the home, whose recorded worker on ``host`` has
        one of ``pids`` (a process asking who it is). On PostgreSQL one connection reads every
        board; no board is opened."""
        wanted = sorted(set(pids))
        if not wanted:
            return []
        if self.storage.is_postgres:
            from kanban.storage.pg import catalog_worker_runs

            assert self.storage.dsn is not None
            rows = await asyncio.to_thread(catalog_worker_runs, self.storage.dsn,
                                           self.storage.namespace, wanted, host)
            return [WorkerRun(*row) for row in rows]
        found: builtins.list[WorkerRun] = []
        for info in await self.list():
            board = await self.open(info.slug)
            for run, task in await board.active_runs():
                if run.worker_pid in wanted and run.host == host:
                    found.append(WorkerRun(info.slug, task.id, run.id, run.lease, run.profile,
                                           run.worker_pid, run.worker_started_at))
        return found

    async def remove(self, slug: str, *, delete: bool = False, force: bool = False,
                     kill_grace: float = DEFAULT_KILL_GRACE) -> Path | None:
        """Archive (rename under ``boards/_archived/``) or delete a board; returns the archive
        path. ``default`` cannot be removed.

        A board with active runs is refused (a :class:`Conflict` naming the tasks): its workers
        would go on writing to an archived file and recreate the folder. ``force`` first stops
        them and releases the runs (:meth:`stop_runs`)."""
        check_slug(slug)
        if slug == DEFAULT_BOARD:
            raise InvalidInput("the default board cannot be removed")
        if not await self.exists(slug):
            raise BoardNotFound(slug)
        if force:
            await self.stop_runs(slug, kill_grace=kill_grace)
        else:
            active = await (await self.open(slug)).active_runs()
            if active:
                ids = [task.id for _run, task in active]
                named = ", ".join(map(str, ids[:5])) + (f" and {len(ids) - 5} more"
                                                         if len(ids) > 5 else "")
                raise Conflict(
                    f"board {slug!r} has {len(ids)} active run(s) (task {named}); let them "
                    "finish, or use --force to stop their workers and release the runs")
        board_dir = self.root / slug
        # Drop the schema cache BEFORE the filesystem changes, so a racing open of this slug
        # sets up a fresh file instead of trusting a stale "schema ready" entry.
        forget_schema(self.db_path(slug))
        async with self._lock:
            board = self._open.pop(slug, None)
        if board is not None:
            await board.close()
        if self.storage.is_postgres:
            return await self._remove_schema(slug, delete=delete)
        if delete:
            shutil.rmtree(board_dir)
            return None
        target = archive_place(self.root, f"{slug}-{int(now())}")
        board_dir.rename(target)
        return target

    async def close_one(self, slug: str) -> None:
        """Close ``slug``'s board if this object opened it (before its files are replaced)."""
        async with self._lock:
            board = self._open.pop(slug, None)
        if board is not None:
            await board.close()

    async def close(self) -> None:
        async with self._lock:
            boards = list(self._open.values())
            self._open.clear()
        for board in boards:
            await board.close()

    def _private(self, slug: str) -> None:
        """The home, ``boards/`` and the board's folder 0700, its ``board.json`` 0600 (made so,
        or tightened when an older version left them open)."""
        private_dirs(self.home, self.root, self.root / slug)
        private_files(self.root / slug / META_NAME)

    def _refuse_moved(self, slug: str) -> None:
        """A board moved to PostgreSQL (``boards migrate``) keeps its old file until the user
        removes it; writing there would split the board in two."""
        meta_path = self.root / slug / META_NAME
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(meta, dict) and meta.get("storage") == "postgresql":
            raise StorageError(
                f"board {slug!r} was moved to PostgreSQL; its SQLite file is kept only as a "
                "backup. Set storage.backend: postgresql (and the DSN variable) to use it")

    async def _record(self, slug: str, name: str) -> bool:
        """Make the board known: its ``board.json`` (and, on PostgreSQL, its catalog row and
        schema). False when another process recorded it first."""
        await asyncio.to_thread(self._write_meta, slug, name)
        if not self.storage.is_postgres:
            return True
        from kanban.storage.pg import catalog_add

        assert self.storage.dsn is not None
        return await asyncio.to_thread(catalog_add, self.storage.dsn, slug, name,
                                       self.storage.namespace)

    async def _remove_schema(self, slug: str, *, delete: bool) -> Path | None:
        """PostgreSQL: drop or rename the board's schema; this host's local folder goes to
        ``_archived`` (or is deleted) as on SQLite."""
        from kanban.storage.pg import catalog_remove

        assert self.storage.dsn is not None
        suffix = f"{slug}_{int(now())}"
        await asyncio.to_thread(catalog_remove, self.storage.dsn, slug, delete=delete,
                                suffix=suffix, namespace=self.storage.namespace)
        board_dir = self.root / slug
        if not board_dir.exists():
            return None if delete else Path(f"rbx_{suffix}")
        if delete:
            await asyncio.to_thread(shutil.rmtree, board_dir)
            return None
        archive_root = self.root / "_archived"
        private_dirs(archive_root)
        target = archive_root / f"{slug}-{int(now())}"
        board_dir.rename(target)
        return target

    def _write_meta(self, slug: str, name: str) -> None:
        self._private(slug)
        meta_path = self.root / slug / META_NAME
        if not meta_path.exists():
            fd = os.open(meta_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"slug": slug, "name": name, "created_at": now()}))
            private_files(meta_path)
