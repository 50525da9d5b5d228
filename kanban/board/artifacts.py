"""Durable artifacts: files a worker declares on completion, moved out of its scratch workspace.

A scratch workspace is removed after completion, so an artifact declared inside it would vanish
before the notifier uploads it. ``complete`` therefore stages such files into the task's
attachments directory before its transaction (the slow part, done without the write lock), moves
them into place inside the transaction once the lease has been checked (a stale worker never
overwrites its successor's files), and records the durable paths in the task's metadata and the
``completed`` event. Paths outside the scratch workspace are kept as declared; copying them would
launder arbitrary host files into the attachments root. Nothing is read through a link: a
workspace that is a link refuses its artifacts, and each file is reached from the workspace's
descriptor one folder at a time (:mod:`kanban.fsutil`).

Staging renames a regular, single-link file when the workspace and the attachments share a
filesystem (instant, whatever the size) and copies otherwise; the renamed file is checked after
the move, on a path only the kernel writes. A staging directory left by a killed ``complete`` is
removed the next time the board is opened (:func:`clean_stale_staging`).

Files given when a task is created (:func:`stage_inputs`, e.g. a CSV a chat user attached to
``/kanban create``) are copied the same way into ``attachments/.staging-*`` before the create's
transaction and that folder is renamed to ``attachments/<id>/`` inside it, once the INSERT has
given the id: a dispatcher woken by the commit never sees the task without its files.

On a board several hosts serve (PostgreSQL) the staged files' bytes also go into the database,
in the completion's transaction (:mod:`kanban.storage.blobs`), so a gateway on another host can
deliver them; a file over the board's ``max_artifact_bytes`` is refused at staging, before
anything is completed. Files declared outside the scratch workspace are not stored: they stay
on the worker's host, like the workspace itself.

The attachments are private whatever the umask: ``attachments/<id>/`` and every folder below it
0700, every staged file 0600 — a file renamed out of a worker's workspace would otherwise keep
the mode the worker gave it.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, TypeVar

from kanban.errors import Conflict, InvalidInput
from kanban.fsutil import (
    DIR_MODE,
    FILE_MODE,
    UnsafeFile,
    copy_at,
    copy_no_follow,
    inside,
    open_dir_no_follow,
    open_parent_beneath,
    open_regular_no_follow,
)
from kanban.storage.blobs import too_large
from kanban.storage.private import tighten

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
# A staging folder untouched this long belongs to a complete that died; a live one is younger
# (its folder's mtime moves with every staged file), so opening a board never races it.
STALE_STAGING_SECONDS = 600.0
MAX_INPUTS = 100  # files given to one create


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


@dataclass
class StagedArtifacts:
    """Artifacts staged under the attachments directory, waiting to be moved into place.

    ``publish`` (on the database thread, inside the transaction) and ``discard`` (the caller,
    perhaps cancelled meanwhile) may race; a lock makes exactly one of them win.
    """

    paths: list[str]  # what the task will record, in the declared order
    staging: Path | None = None
    moves: list[tuple[Path, Path]] = field(default_factory=list)  # staged file → final path
    renamed: list[tuple[Path, Path]] = field(default_factory=list)  # staged file → its source
    modes: dict[Path, int] = field(default_factory=dict)  # a renamed file's mode before 0600
    # Every regular file staged, as its '/'-separated path below attachments/<id>/ — what a
    # board several hosts serve keeps in its database (kanban.storage.blobs).
    files: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _done: bool = False
    _published: bool = False

    def publish(self) -> None:
        """Move staged files into place (fast renames); called inside the transaction. Again
        after it succeeded (PostgreSQL re-runs a body that hit a deadlock): nothing to do."""
        with self._lock:
            if self._published:
                return
            if self._done:
                raise Conflict("the artifacts were discarded before the completion ran; retry")
            for staged, final in self.moves:
                private_mkdirs(final.parent)
                if self.staging is not None:
                    # A copy may have made attachments/<id>/ on its way, with the umask's mode.
                    _tighten_down_to(self.staging.parent, final.parent)
                if final.is_dir() and not final.is_symlink():
                    shutil.rmtree(final)
                os.replace(staged, final)
            self.renamed.clear()
            self._published = True
            self._finish()

    def discard(self) -> None:
        """Drop what was staged; files that were renamed out of the workspace go back."""
        with self._lock:
            if self._done:
                return
            for staged, source in self.renamed:
                if not os.path.lexists(source):
                    try:
                        _set_mode(staged, self.modes.get(staged, FILE_MODE))
                        os.rename(staged, source)
                    except OSError as exc:
                        log.warning("could not return staged artifact %s: %s", source.name, exc)
            self.renamed.clear()
            self._finish()

    def _finish(self) -> None:
        self._done = True
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def _tighten_down_to(root: Path, folder: Path) -> None:
    """Make every folder from ``root`` down to ``folder`` 0700."""
    if not folder.is_relative_to(root):
        return
    tighten(root, DIR_MODE)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        tighten(current, DIR_MODE)


def _set_mode(path: Path, mode: int) -> int:
    """Set a regular file's mode through a handle opened without following links; return the
    mode it had."""
    fd = open_regular_no_follow(path)
    try:
        before = stat.S_IMODE(os.fstat(fd).st_mode)
        if before != mode:
            os.fchmod(fd, mode)
        return before
    finally:
        os.close(fd)


def _move_or_copy(parent_fd: int, name: str, staged: Path) -> int | None:
    """Stage the entry ``name`` of the directory ``parent_fd``. When it was renamed (so a discard
    can put it back) returns the mode the worker gave it; the staged file is 0600 either way."""
    info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFile(f"{name}: is a symbolic link")
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        private_mkdirs(staged.parent)
        try:
            os.rename(name, staged, src_dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            # Judge what actually moved (the entry may have been swapped before the rename),
            # and take the worker's mode off it on that same handle.
            try:
                return _set_mode(staged, FILE_MODE)
            except OSError:
                os.rename(staged, name, dst_dir_fd=parent_fd)
                raise
    copy_at(parent_fd, name, staged)
    return None


def _below(path: Path, forms: tuple[Path, ...]) -> PurePath | None:
    """``path`` relative to the first of ``forms`` it lies strictly below (judged lexically)."""
    for form in forms:
        if path != form and path.is_relative_to(form):
            return path.relative_to(form)
    return None


def _open_scratch(scratch: Path) -> int | None:
    """The scratch workspace's descriptor; None when there is none. A workspace that is a link
    (a worker replaced it, say with a link to ``~/.ssh``) refuses every artifact in it."""
    try:
        return open_dir_no_follow(scratch)
    except UnsafeFile as exc:
        raise InvalidInput("artifacts refused: the task's workspace is a symbolic link, not a "
                           "folder; nothing was copied") from exc
    except FileNotFoundError:
        return None
    except NotADirectoryError as exc:
        raise InvalidInput("artifacts refused: the task's workspace is not a folder") from exc


def stage_artifacts(
    declared: list[str], *, scratch: Path, attachments: Path, max_bytes: int | None = None
) -> StagedArtifacts:
    """Stage every declared artifact that lives inside ``scratch`` under ``attachments``;
    return the paths the task should record. With ``max_bytes`` (a board whose files travel
    through its database) a staged file larger than that is refused with one line, and
    everything staged goes back: the worker hears why before anything is completed.

    Inside is judged lexically (against the workspace's path as the board knows it, and with its
    parent folder resolved, as a worker's ``getcwd()`` spells it); then the file is reached from
    the workspace's own descriptor without following any link, so neither a linked workspace nor
    a linked folder inside it can launder a file from elsewhere into the attachments."""
    scratch = Path(os.path.abspath(scratch))
    forms = (scratch, _resolve(scratch.parent) / scratch.name)
    result = StagedArtifacts(paths=[])
    scratch_fd: int | None = None
    opened = False
    try:
        for item in declared:
            source = Path(item)
            if not source.is_absolute():
                source = scratch / source
            lexical = Path(os.path.normpath(source))
            relative = _below(lexical, forms)
            if relative is not None and not opened:
                opened, scratch_fd = True, _open_scratch(scratch)
            if relative is None or scratch_fd is None:
                result.paths.append(item)  # outside the workspace: kept as declared
                continue
            try:
                staged = _stage_one(result, scratch_fd, relative, attachments)
            except FileNotFoundError:
                result.paths.append(item)  # missing: the notifier names it
                continue
            except UnsafeFile as exc:
                raise InvalidInput(f"artifact refused: {exc}") from exc
            if staged is not None:
                result.renamed.append((result.moves[-1][0], lexical))
                result.modes[result.moves[-1][0]] = staged
            result.paths.append(str(result.moves[-1][1]))
            _measure(result, relative, max_bytes)
    except BaseException:
        result.discard()
        raise
    finally:
        if scratch_fd is not None:
            os.close(scratch_fd)
    return result


def _measure(result: StagedArtifacts, relative: PurePath, max_bytes: int | None) -> None:
    """Note the regular files the last staged entry holds (a file, or a copied tree) and
    refuse one over ``max_bytes``."""
    staged = result.moves[-1][0]
    found: list[tuple[str, int]] = []
    info = os.stat(staged, follow_symlinks=False)
    if stat.S_ISREG(info.st_mode):
        found.append((relative.as_posix(), info.st_size))
    elif stat.S_ISDIR(info.st_mode):
        # A tree the kernel just copied (links were skipped), walked without following any.
        for dirpath, _dirs, names, dir_fd in os.fwalk(staged, follow_symlinks=False):
            below = Path(dirpath).relative_to(staged)
            for entry in names:
                entry_info = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(entry_info.st_mode):
                    found.append(((relative / below / entry).as_posix(), entry_info.st_size))
    for name, size in sorted(found):
        if any(part.startswith(STAGING_PREFIX) for part in name.split("/")):
            continue  # the kernel's own name: swept as a leftover, never stored
        if max_bytes is not None and size > max_bytes:
            raise too_large(name, size, max_bytes)
        if name not in result.files:
            result.files.append(name)


def _stage_one(result: StagedArtifacts, scratch_fd: int, relative: PurePath,
               attachments: Path) -> int | None:
    if result.staging is None:
        result.staging = attachments / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
    staged = result.staging / relative
    parent_fd = open_parent_beneath(scratch_fd, relative)
    try:
        renamed = _move_or_copy(parent_fd, relative.name, staged)
    finally:
        os.close(parent_fd)
    result.moves.append((staged, attachments / relative))
    return renamed


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


async def stage(declared: list[str], *, scratch: Path, attachments: Path,
                track: Callable[[asyncio.Future[Any]], None] | None = None,
                max_bytes: int | None = None) -> StagedArtifacts:
    """:func:`stage_artifacts` on a worker thread. A caller cancelled meanwhile does not stop the
    thread; whatever it staged is discarded (renamed files go back) once it finishes.
    ``track`` receives the thread's future so the board can wait for it on close."""
    return await _staged_on_thread(functools.partial(
        stage_artifacts, declared, scratch=scratch, attachments=attachments,
        max_bytes=max_bytes), track)


S = TypeVar("S", "StagedArtifacts", "StagedInputs")


async def _staged_on_thread(work: Callable[[], S],
                            track: Callable[[asyncio.Future[Any]], None] | None) -> S:
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


def _discard_when_done(future: asyncio.Future[StagedArtifacts] | asyncio.Future[StagedInputs]
                       ) -> None:
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
                    _remove(folder)
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
                _remove(self.published)
                self.published = None


def _remove(path: Path) -> None:
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
                result.staging = attachments / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
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
    return await _staged_on_thread(functools.partial(
        stage_inputs, sources, attachments=attachments), track)


def clean_stale_staging(attachments_dir: Path, *, older_than: float = STALE_STAGING_SECONDS
                        ) -> int:
    """Remove ``attachments/*/.staging-*`` left by a ``complete`` killed mid-copy, and
    ``attachments/.staging-*`` left by a ``create`` killed mid-copy.

    Called when a board is opened. Only folders untouched for ``older_than`` seconds go, so a
    ``complete`` or ``create`` staging in another process at that moment keeps its files.
    """
    cutoff = time.time() - older_than
    try:
        top = list(attachments_dir.iterdir())
    except OSError:
        return 0
    candidates: list[Path] = []
    for task_dir in top:
        if task_dir.name.startswith(STAGING_PREFIX):
            candidates.append(task_dir)
            continue
        if task_dir.is_symlink() or not task_dir.is_dir():
            continue
        try:
            candidates += [e for e in task_dir.iterdir() if e.name.startswith(STAGING_PREFIX)]
        except OSError:
            continue
    removed = 0
    for entry in candidates:
        if not inside(entry, attachments_dir):
            continue
        try:
            if entry.lstat().st_mtime > cutoff:
                continue
        except OSError:
            continue
        _remove(entry)
        removed += 1
    if removed:
        log.info("removed %d stale attachment staging folder(s)", removed)
    return removed
