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
"""

from __future__ import annotations

import asyncio
import errno
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
from typing import Any

from kanban.errors import Conflict, InvalidInput
from kanban.fsutil import (
    UnsafeFile,
    copy_at,
    inside,
    open_dir_no_follow,
    open_parent_beneath,
    open_regular_no_follow,
)

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
# A staging folder untouched this long belongs to a complete that died; a live one is younger
# (its folder's mtime moves with every staged file), so opening a board never races it.
STALE_STAGING_SECONDS = 600.0


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _done: bool = False

    def publish(self) -> None:
        """Move staged files into place (fast renames); called inside the transaction."""
        with self._lock:
            if self._done:
                raise Conflict("the artifacts were discarded before the completion ran; retry")
            for staged, final in self.moves:
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.is_dir() and not final.is_symlink():
                    shutil.rmtree(final)
                os.replace(staged, final)
            self.renamed.clear()
            self._finish()

    def discard(self) -> None:
        """Drop what was staged; files that were renamed out of the workspace go back."""
        with self._lock:
            if self._done:
                return
            for staged, source in self.renamed:
                if not os.path.lexists(source):
                    try:
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


def _move_or_copy(parent_fd: int, name: str, staged: Path) -> bool:
    """Stage the entry ``name`` of the directory ``parent_fd``; True when it was renamed (so a
    discard can put it back)."""
    info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFile(f"{name}: is a symbolic link")
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        staged.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(name, staged, src_dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            # Judge what actually moved (the entry may have been swapped before the rename).
            try:
                os.close(open_regular_no_follow(staged))
            except OSError:
                os.rename(staged, name, dst_dir_fd=parent_fd)
                raise
            return True
    copy_at(parent_fd, name, staged)
    return False


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
    declared: list[str], *, scratch: Path, attachments: Path
) -> StagedArtifacts:
    """Stage every declared artifact that lives inside ``scratch`` under ``attachments``;
    return the paths the task should record.

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
            if staged:
                result.renamed.append((result.moves[-1][0], lexical))
            result.paths.append(str(result.moves[-1][1]))
    except BaseException:
        result.discard()
        raise
    finally:
        if scratch_fd is not None:
            os.close(scratch_fd)
    return result


def _stage_one(result: StagedArtifacts, scratch_fd: int, relative: PurePath,
               attachments: Path) -> bool:
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
                track: Callable[[asyncio.Future[Any]], None] | None = None) -> StagedArtifacts:
    """:func:`stage_artifacts` on a worker thread. A caller cancelled meanwhile does not stop the
    thread; whatever it staged is discarded (renamed files go back) once it finishes.
    ``track`` receives the thread's future so the board can wait for it on close."""
    future = asyncio.ensure_future(asyncio.to_thread(
        stage_artifacts, declared, scratch=scratch, attachments=attachments))
    if track is not None:
        track(future)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_discard_when_done)
        raise


def _discard_when_done(future: asyncio.Future[StagedArtifacts]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().discard()


def clean_stale_staging(attachments_dir: Path, *, older_than: float = STALE_STAGING_SECONDS
                        ) -> int:
    """Remove ``attachments/*/.staging-*`` left by a ``complete`` that was killed mid-copy.

    Called when a board is opened. Only folders untouched for ``older_than`` seconds go, so a
    ``complete`` staging in another process at that moment keeps its files.
    """
    cutoff = time.time() - older_than
    removed = 0
    try:
        task_dirs = list(attachments_dir.iterdir())
    except OSError:
        return 0
    for task_dir in task_dirs:
        if task_dir.is_symlink() or not task_dir.is_dir():
            continue
        try:
            entries = list(task_dir.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(STAGING_PREFIX) or not inside(entry, attachments_dir):
                continue
            try:
                if entry.lstat().st_mtime > cutoff:
                    continue
            except OSError:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d stale artifact staging folder(s)", removed)
    return removed
