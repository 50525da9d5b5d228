"""Durable artifacts: files a worker declares on completion, moved out of its scratch workspace.

A scratch workspace is removed after completion, so an artifact declared inside it would vanish
before the notifier uploads it. ``complete`` therefore stages such files into the task's
attachments directory before its transaction (the slow part, done without the write lock), moves
them into place inside the transaction once the lease has been checked (a stale worker never
overwrites its successor's files), and records the durable paths in the task's metadata and the
``completed`` event. Paths outside the scratch workspace are kept as declared; copying them would
launder arbitrary host files into the attachments root.

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
from pathlib import Path
from typing import Any

from kanban.errors import Conflict, InvalidInput
from kanban.fsutil import UnsafeFile, copy_no_follow, inside, open_regular_no_follow

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


def _move_or_copy(source: Path, staged: Path) -> bool:
    """Stage one declared path; True when it was renamed (so a discard can put it back)."""
    info = os.lstat(source)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFile(f"{source.name}: is a symbolic link")
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        staged.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source, staged)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            # Judge what actually moved (the path may have been swapped before the rename).
            try:
                os.close(open_regular_no_follow(staged))
            except OSError:
                os.rename(staged, source)
                raise
            return True
    copy_no_follow(source, staged)
    return False


def stage_artifacts(
    declared: list[str], *, scratch: Path, attachments: Path
) -> StagedArtifacts:
    """Stage every declared artifact that lives inside ``scratch`` under ``attachments``;
    return the paths the task should record."""
    scratch_root = scratch.resolve()
    result = StagedArtifacts(paths=[])
    for item in declared:
        source = Path(item)
        if not source.is_absolute():
            source = scratch / source
        # Judge the path as written (a link is refused by the copy, not resolved away).
        lexical = Path(os.path.normpath(source))
        if not inside(lexical, scratch) or not os.path.lexists(lexical):
            result.paths.append(item)
            continue
        relative = lexical.resolve().relative_to(scratch_root)
        if result.staging is None:
            result.staging = attachments / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        staged = result.staging / relative
        try:
            if _move_or_copy(lexical, staged):
                result.renamed.append((staged, lexical))
        except UnsafeFile as exc:
            result.discard()
            raise InvalidInput(f"artifact refused: {exc}") from exc
        except BaseException:
            result.discard()
            raise
        final = attachments / relative
        result.moves.append((staged, final))
        result.paths.append(str(final))
    return result


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
