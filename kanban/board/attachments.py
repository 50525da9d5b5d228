"""Attachment folders: the files given to ``create``, the kernel's staging names and their sweep.

Files given when a task is created (:func:`stage_inputs`, e.g. a CSV a chat user attached to
``/kanban create``) are copied into ``attachments/.staging-*`` before the create's transaction and
that folder is renamed to ``attachments/<id>/`` inside it, once the INSERT has given the id: a
dispatcher woken by the commit never sees the task without its files. A completion's artifacts
are staged the same way, all or nothing (:mod:`kanban.board.staging`).

Every staging folder (and every part file :mod:`kanban.board.writeback` writes back) is named after
the process that makes it (:func:`staging_name`: its pid and start time). One whose owner is
gone was left by a killed ``create`` or ``complete``: the next completion of the task, and every
opening of the board, remove it (:func:`clean_stale_staging`); one whose owner still runs is
never touched. A staging name of an older version, which names no owner, goes once it has been
untouched for :data:`STALE_STAGING_SECONDS`.

The attachments are private whatever the umask: ``attachments/<id>/`` and every folder below it
0700, every staged file 0600.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kanban.errors import Conflict, InvalidInput, UnsafeFile
from kanban.fsutil import DIR_MODE, copy_no_follow, inside
from kanban.storage.modes import tighten

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
# A staging folder of an older version (no owner in its name) untouched this long belongs to a
# process that died; a live one is younger (its mtime moves with every staged file).
STALE_STAGING_SECONDS = 600.0
MAX_INPUTS = 100  # files given to one create
# .staging-p<pid>-<start time, whole seconds>-<random>[.part]
_OWNED = re.compile(re.escape(STAGING_PREFIX) + r"p(\d+)-(\d+)-[0-9a-f]+(?:\.part)?")


@functools.cache
def _own_start() -> int:
    import psutil  # staging only: `kanban create` without files never loads it

    try:
        return int(psutil.Process(os.getpid()).create_time())
    except (psutil.Error, OSError):
        return 0


def staging_name() -> str:
    """A fresh staging name that says which process owns it (see the module docstring)."""
    return f"{STAGING_PREFIX}p{os.getpid()}-{_own_start()}-{secrets.token_hex(6)}"


def _owner_gone(name: str) -> bool | None:
    """True when the process a staging name names is gone (or its pid now belongs to another
    process), False while it runs, None for a name without an owner."""
    match = _OWNED.fullmatch(name)
    if match is None:
        return None
    pid, started = int(match.group(1)), int(match.group(2))
    if pid == os.getpid():
        return started != _own_start()
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        return abs(int(proc.create_time()) - started) > 1
    except (psutil.Error, OSError):
        return True


def private_mkdirs(path: Path) -> None:
    """Create ``path`` and its missing parents as 0700 whatever the umask (``mkdir(parents=True)``
    would give the parents the umask's mode); an existing ``path`` is tightened."""
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            pass
        tighten(folder, DIR_MODE)
    if not missing:
        tighten(path, DIR_MODE)


def tighten_down_to(root: Path, folder: Path) -> None:
    """Make every folder from ``root`` down to ``folder`` 0700."""
    if not folder.is_relative_to(root):
        return
    tighten(root, DIR_MODE)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        tighten(current, DIR_MODE)


class _Discardable(Protocol):
    def discard(self) -> None: ...


D = TypeVar("D", bound=_Discardable)


async def staged_on_thread(work: Callable[[], D],
                           track: Callable[[asyncio.Future[Any]], None] | None) -> D:
    """Run a staging copy on a worker thread that a cancelled caller cannot stop; once it
    finishes, whatever it staged for that caller is discarded."""
    future = asyncio.ensure_future(asyncio.to_thread(work))
    if track is not None:
        track(future)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_discard_when_done)
        raise


def _discard_when_done(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().discard()


# ---- files given at creation -------------------------------------------------------------------

@dataclass
class StagedInputs:
    """Files copied into ``attachments/.staging-*`` for a task about to be created.

    ``publish`` (inside the create's transaction, once the INSERT gave the id) renames the whole
    folder to ``attachments/<id>/``; ``discard`` drops it. As with :class:`StagedArtifacts` the
    two may race (a cancelled caller) and a lock lets exactly one win.
    """

    names: list[str]  # file names inside the folder, in the given order
    staging: Path | None = None
    published: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _done: bool = False

    def paths_in(self, folder: Path) -> list[str]:
        return [str(folder / name) for name in self.names]

    def publish(self, folder: Path) -> None:
        """Rename the staged folder to ``folder`` (the new task's attachments); again for the
        same folder (a re-run transaction body), nothing to do."""
        with self._lock:
            if self._done and self.published == folder:
                return
            if self._done:
                raise Conflict("the attached files were discarded before the task was created; "
                               "retry")
            if self.staging is not None:
                if os.path.lexists(folder):
                    # AUTOINCREMENT never hands out a committed id twice, so whatever is here
                    # was left by a create whose commit failed after this same rename.
                    remove_path(folder)
                os.rename(self.staging, folder)  # on failure, discard still removes it
                self.published, self.staging = folder, None
            self._done = True

    def discard(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            if self.staging is not None:
                shutil.rmtree(self.staging, ignore_errors=True)
                self.staging = None

    def unpublish(self) -> None:
        """The create's commit failed after :meth:`publish`: no task owns the folder."""
        with self._lock:
            if self.published is not None:
                remove_path(self.published)
                self.published = None


def remove_path(path: Path) -> None:
    """Remove a file or a folder (a link itself, never what it points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _input_name(name: str, taken: set[str]) -> str:
    """A file name inside the task's folder: never hidden (``.staging-*`` and ``.*.part`` are the
    kernel's), never one already taken (``data.csv``, ``data-2.csv``, …)."""
    if name.startswith("."):
        name = "_" + name
    candidate, n = name, 2
    stem, suffix = os.path.splitext(name)
    while candidate in taken:
        candidate = f"{stem}-{n}{suffix}"
        n += 1
    taken.add(candidate)
    return candidate


def stage_inputs(sources: list[str], *, attachments: Path) -> StagedInputs:
    """Copy each of ``sources`` (regular files) into a new ``attachments/.staging-*`` folder.

    The final component of each path is never followed: a symbolic link, a file with more than
    one hard link (which could be a secret's other name), a folder or a device is refused with
    one line, and nothing is kept. Parent folders are the caller's and trusted, as in
    :func:`kanban.fsutil.copy_no_follow`. Copies are 0600 in a 0700 folder."""
    result = StagedInputs(names=[])
    taken: set[str] = set()
    try:
        for item in sources:
            source = Path(os.path.abspath(item))
            label = source.name or item
            try:
                info = os.stat(source, follow_symlinks=False)
            except FileNotFoundError:
                raise InvalidInput(f"attachment {label}: no such file") from None
            except OSError as exc:
                raise InvalidInput(f"attachment {label}: {exc.strerror or exc}") from None
            if stat.S_ISDIR(info.st_mode):
                raise InvalidInput(f"attachment refused: {label}: is a folder; attach files")
            if result.staging is None:
                result.staging = attachments / staging_name()
                private_mkdirs(result.staging)
            name = _input_name(source.name, taken)
            try:
                report = copy_no_follow(source, result.staging / name)
            except UnsafeFile as exc:
                raise InvalidInput(f"attachment refused: {exc}") from None
            except OSError as exc:
                raise InvalidInput(f"attachment {label}: {exc.strerror or exc}") from None
            if report.skipped or not report.copied:
                # Swapped for a folder after the check above: refused all the same.
                raise InvalidInput(f"attachment refused: {label}: is a folder; attach files")
            result.names.append(name)
    except BaseException:
        result.discard()
        raise
    return result


async def stage_inputs_async(sources: list[str], *, attachments: Path,
                             track: Callable[[asyncio.Future[Any]], None] | None = None
                             ) -> StagedInputs:
    """:func:`stage_inputs` on a worker thread; a caller cancelled meanwhile leaves nothing
    behind (the copy is discarded once the thread finishes)."""
    return await staged_on_thread(functools.partial(
        stage_inputs, sources, attachments=attachments), track)


def clean_stale_staging(attachments_dir: Path, *, older_than: float = STALE_STAGING_SECONDS
                        ) -> int:
    """Remove ``attachments/*/.staging-*`` left by a killed ``complete`` (or write-back), and
    ``attachments/.staging-*`` left by a killed ``create``. Called when a board is opened.

    A name with an owner goes once that process is gone; one without (an older version's) only
    once untouched for ``older_than`` seconds, so a ``complete`` or ``create`` staging in
    another process at that moment keeps its files.
    """
    stale = find_stale_staging(attachments_dir, older_than=older_than)
    for entry in stale:
        remove_path(entry)
    if stale:
        log.info("removed %d stale attachment staging folder(s)", len(stale))
    return len(stale)


def find_stale_staging(attachments_dir: Path, *, older_than: float = STALE_STAGING_SECONDS
                       ) -> list[Path]:
    """The staging entries :func:`clean_stale_staging` would remove, left where they are."""
    candidates = _staging_entries(attachments_dir)
    try:
        task_dirs = [e for e in attachments_dir.iterdir()
                     if not e.name.startswith(STAGING_PREFIX)]
    except OSError:
        task_dirs = []
    for task_dir in task_dirs:
        if not task_dir.is_symlink() and task_dir.is_dir():
            candidates += _staging_entries(task_dir)
    return [entry for entry in candidates if _stale(entry, attachments_dir, older_than)]


def sweep_dead_staging(folder: Path, *, older_than: float = STALE_STAGING_SECONDS) -> int:
    """Remove the staging entries directly in ``folder`` (a task's attachments) whose owner is
    gone: a retried ``complete`` clears what its killed predecessor left."""
    return sum(_sweep(entry, folder.parent, older_than) for entry in _staging_entries(folder))


def _staging_entries(folder: Path) -> list[Path]:
    try:
        return [e for e in folder.iterdir() if e.name.startswith(STAGING_PREFIX)]
    except OSError:
        return []


def _stale(entry: Path, root: Path, older_than: float) -> bool:
    if not inside(entry, root):
        return False
    gone = _owner_gone(entry.name)
    if gone is None:
        try:
            gone = entry.lstat().st_mtime <= time.time() - older_than
        except OSError:
            return False
    return gone


def _sweep(entry: Path, root: Path, older_than: float) -> bool:
    gone = _stale(entry, root, older_than)
    if gone:
        remove_path(entry)
    return gone
