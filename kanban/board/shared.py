"""What every part of the :class:`~kanban.board.Board` facade shares: its database, options,
folders and change signal, and the opener.

The facade's methods live in one mixin per noun (tasks, links, runs, triage, events,
subscriptions, outbox); each derives from :class:`BoardCore`, so none has to stub another's
methods and nothing imports the facade.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from kanban.backoff import Backoff
from kanban.board.attachments import clean_stale_staging
from kanban.board.staging import DEFAULT_MAX_ARTIFACTS, DEFAULT_MAX_COMPLETION_BYTES
from kanban.storage.backend import SQLITE, Storage, Store, default_storage
from kanban.storage.modes import PRIVATE_DIR_MODE, tighten
from kanban.storage.tx import Tx
from kanban.timeutil import now

DEFAULT_FAILURE_LIMIT = 2
DEFAULT_CLAIM_TTL = 900.0
PROTOCOL_VIOLATION_LIMIT = 2
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_CAP = 300.0
DEFAULT_BACKOFF_JITTER = 0.1
DEFAULT_MAX_ARTIFACT_BYTES = 50 * 1024 * 1024  # as delivery.max_attachment_bytes

B = TypeVar("B", bound="BoardCore")


@dataclass(frozen=True)
class BoardOptions:
    """Per-board kernel settings.

    Retry back-off: after the n-th consecutive crash/timeout/spawn failure (that did not trip
    the breaker), or the n-th consecutive requeue (exit 75), the task is not claimable for
    ``min(backoff_cap_seconds, backoff_base_seconds * 2**(n-1))`` seconds, shortened by up to
    ``backoff_jitter`` (a fraction) so tasks that failed together do not retry together.
    Defaults: base 1 s, cap 300 s, jitter 0.1.

    ``max_artifact_bytes``: on a board several hosts serve, the largest artifact file
    ``complete`` keeps in the database (a larger one is refused there, with its size).

    ``max_artifacts_per_completion`` and ``max_completion_bytes``: what one ``complete`` may
    stage (files, a declared folder counting each of its files; and their bytes together). Over
    either, the completion is refused with one line and nothing is staged.
    """

    failure_limit: int = DEFAULT_FAILURE_LIMIT
    claim_ttl_seconds: float = DEFAULT_CLAIM_TTL
    protocol_violation_limit: int = PROTOCOL_VIOLATION_LIMIT
    backoff_base_seconds: float = DEFAULT_BACKOFF_BASE
    backoff_cap_seconds: float = DEFAULT_BACKOFF_CAP
    backoff_jitter: float = DEFAULT_BACKOFF_JITTER
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    max_artifacts_per_completion: int = DEFAULT_MAX_ARTIFACTS
    max_completion_bytes: int = DEFAULT_MAX_COMPLETION_BYTES


@dataclass(frozen=True)
class BoardPaths:
    """The folders beside a board's database file (``workspaces/``, ``logs/``, …)."""

    root: Path

    @property
    def workspaces_dir(self) -> Path:
        return self.root / "workspaces"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def attachments_dir(self) -> Path:
        return self.root / "attachments"

    def log_path(self, task_id: int) -> Path:
        return self.logs_dir / f"{task_id}.log"

    def attachments_path(self, task_id: int) -> Path:
        return self.attachments_dir / str(task_id)

    def scratch_path(self, task_id: int) -> Path:
        return self.workspaces_dir / str(task_id)

    def workspace_path(self, task_id: int, kind: str, path: str | None) -> Path | None:
        """Where a task's worker runs; None for a worktree whose path the dispatcher chooses."""
        if kind == "dir" and path:
            return Path(path)
        if kind == "worktree":
            return Path(path) if path else None
        return self.scratch_path(task_id)


class ChangeSignal:
    """A version counter watchers wait on; bumped after every commit (in-process) and by
    :meth:`BoardCore.poll_external` when another process committed (``PRAGMA data_version``)."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, since: int, timeout: float | None) -> int:
        """Return once the version moved past ``since`` or the timeout elapsed."""
        if self.version != since:
            return self.version
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        return self.version


def _on_open(paths: BoardPaths) -> None:
    # The folders beside the database are private (an older version made them 0755); files
    # inside them are made 0600 by whoever writes them.
    for folder in (paths.attachments_dir, paths.logs_dir, paths.workspaces_dir):
        tighten(folder, PRIVATE_DIR_MODE)
    clean_stale_staging(paths.attachments_dir)


class Opening(Generic[B]):
    """What :meth:`BoardCore.open` returns: await it for the board, or use it as
    ``async with Board.open(path) as board:`` to have the board closed on exit."""

    def __init__(self, cls: type[B], path: Path, slug: str, options: BoardOptions,
                 storage: Storage) -> None:
        self._cls, self._path, self._slug, self._options = cls, path, slug, options
        self._storage = storage
        self._board: B | None = None

    async def _open(self) -> B:
        db = await self._storage.open(self._path, self._slug)
        board = self._cls(self._slug, db, self._options, self._storage)
        try:
            await asyncio.to_thread(_on_open, board.paths)
        except BaseException:
            await db.close()
            raise
        return board

    def __await__(self) -> Generator[Any, None, B]:
        return self._open().__await__()

    async def __aenter__(self) -> B:
        self._board = await self._open()
        return self._board

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._board is not None:
            await self._board.close()


class BoardCore:
    """Open with :meth:`open` (or through :class:`kanban.home.Boards`); close when done."""

    def __init__(self, slug: str, db: Store, options: BoardOptions,
                 storage: Storage = SQLITE) -> None:
        self.slug = slug
        self.db = db
        self.storage = storage
        self.options = options
        self.paths = BoardPaths(db.path.parent)
        self.changes = ChangeSignal()
        self._data_version: int | None = None
        # The time the back-off rules read (not_before, claims); tests drive it by hand.
        self.clock: Callable[[], float] = now
        self._backoff = Backoff(base=options.backoff_base_seconds,
                                cap=options.backoff_cap_seconds, jitter=options.backoff_jitter,
                                rng=random.Random())
        db.on_commit.append(self._committed)
        external: list[Callable[[], None]] | None = getattr(db, "on_external", None)
        if external is not None:
            external.append(self.changes.bump)  # PostgreSQL: another host committed

    @classmethod
    def open(
        cls: type[B], db_path: str | os.PathLike[str], *, slug: str = "default",
        options: BoardOptions | None = None, storage: Storage | None = None,
    ) -> Opening[B]:
        """``db_path`` is ``<board folder>/kanban.db``: the SQLite file, or on PostgreSQL the
        place of the board's local folder (workspaces, logs, staged files)."""
        return Opening(cls, Path(db_path), slug, options or BoardOptions(),
                       storage or default_storage())

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self: B) -> B:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- paths (kept on the board for callers' convenience; BoardPaths owns them) -------------
    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def workspaces_dir(self) -> Path:
        return self.paths.workspaces_dir

    @property
    def logs_dir(self) -> Path:
        return self.paths.logs_dir

    @property
    def attachments_dir(self) -> Path:
        return self.paths.attachments_dir

    def log_path(self, task_id: int) -> Path:
        return self.paths.log_path(task_id)

    def attachments_path(self, task_id: int) -> Path:
        return self.paths.attachments_path(task_id)

    def workspace_path(self, task_id: int, kind: str, path: str | None) -> Path | None:
        return self.paths.workspace_path(task_id, kind, path)

    def local_path_of(self, task_id: int, recorded: str) -> str:
        """A file path recorded for ``task_id`` (below some host's ``attachments/<id>/``) as the
        same file's path on this host; any other path as recorded."""
        marker = f"/attachments/{task_id}/"
        at = recorded.rfind(marker)
        if at < 0:
            return recorded
        return str(self.attachments_path(task_id) / recorded[at + len(marker):])

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry)."""
        return self._backoff.delay(attempt)

    async def current_time(self) -> float:
        """Now by the board's clock: the database server's on PostgreSQL (leases are judged by
        one clock whatever the hosts' say), else this host's; a test's fake clock if set."""
        return await self.db.read(lambda _tx: self.clock())

    # ---- change notification ---------------------------------------------------------------
    def _committed(self, tx: Tx) -> None:
        self.changes.bump()

    async def poll_external(self) -> bool:
        """Bump the change signal if another connection committed since the last poll."""
        version = await self.db.data_version()
        moved = self._data_version is not None and version != self._data_version
        self._data_version = version
        if moved:
            self.changes.bump()
        return moved
