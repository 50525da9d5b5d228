"""A completion's artifacts, staged all or nothing: copied, never moved, out of the workspace.

``complete --artifact …`` makes the files a worker declares inside its scratch workspace durable
in ``attachments/<id>/`` (the workspace is removed after completion). The rule is all or
nothing, whatever happens to the process that completes:

* before the transaction, each declared file (or folder) is *copied* into a staging folder
  ``attachments/<id>/.staging-p<pid>-…`` named after the process doing it, each copy written
  to disk (``fsync``) before the next. The workspace is only ever read: a ``complete`` killed
  at this point (say ``kill -9``) leaves the worker's files where they were, and the retry
  copies them again;
* inside the transaction, once the lease has been checked (a stale worker never overwrites its
  successor's files), each staged entry is renamed to its final name and the folders are
  synced; the row that records those names commits after the last rename, so a committed
  completion has every file in place. A completion killed between the renames and the commit
  leaves some files under their final names but records none of them; its retry replaces
  them;
* a completion that fails (refused, stale lease, conflict, cancelled) removes its own staging
  folder; one whose process died is removed by the next completion of the task, or when the
  board is opened (:func:`kanban.board.attachments.clean_stale_staging`), once its owner is gone.

Limits, checked before anything is copied (from the files' sizes, without following a link)
and again while copying (a worker growing a file meanwhile gains nothing): at most
``max_count`` files per completion (a declared folder counts every file in it) and
``max_total_bytes`` bytes in all. Over either, the completion is refused with one line naming
the count or size and the limit, and nothing is staged or lost.

Paths outside the scratch workspace are kept as declared; copying them would launder arbitrary
host files into the attachments root. Nothing is read through a link: a workspace that is a link
refuses its artifacts, each file is reached from the workspace's descriptor one folder at a time
and opened without following a final link (:mod:`kanban.fsutil`); inside a declared folder,
links, hard-linked files and special files are skipped.

Every staged file is 0600 and every folder 0700, whatever the umask or the worker's modes.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from kanban.board.attachments import (
    STAGING_PREFIX,
    private_mkdirs,
    staged_on_thread,
    staging_name,
    sweep_dead_staging,
    tighten_down_to,
)
from kanban.errors import Conflict, InvalidInput, UnsafeFile
from kanban.fsutil import (
    DIR_MODE,
    FILE_MODE,
    open_dir_no_follow,
    open_parent_beneath,
    open_regular_no_follow,
)
from kanban.storage.artifact_rows import too_large

DEFAULT_MAX_ARTIFACTS = 100  # files per completion: each may become one upload to chat
DEFAULT_MAX_COMPLETION_BYTES = 512 * 1024 * 1024  # bytes copied per completion, all files
_CHUNK = 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Limits:
    """What one completion may stage. ``max_file_bytes`` (a board whose files travel through
    its database) bounds each file; None leaves single files unbounded but for the total."""

    max_count: int = DEFAULT_MAX_ARTIFACTS
    max_total_bytes: int = DEFAULT_MAX_COMPLETION_BYTES
    max_file_bytes: int | None = None


def check_count(declared: int, limits: Limits) -> None:
    """Refuse more declared artifacts than one completion may have (before any file is read)."""
    if declared > limits.max_count:
        raise InvalidInput(_count_refusal(declared, limits))


def _count_refusal(count: int, limits: Limits) -> str:
    return (f"complete refused: {count:,} artifacts (files) declared, the limit is "
            f"{limits.max_count:,} per completion (kanban.max_artifacts_per_completion); "
            "nothing was staged")


def _bytes_refusal(size: int, limits: Limits) -> str:
    return (f"complete refused: the artifacts hold {size:,} bytes, the limit is "
            f"{limits.max_total_bytes:,} per completion (kanban.max_completion_bytes); "
            "nothing was staged")


@dataclass
class StagedArtifacts:
    """Artifacts copied into a staging folder, waiting to be renamed into place.

    ``publish`` (on the database thread, inside the transaction) and ``discard`` (the caller,
    perhaps cancelled meanwhile) may race; a lock makes exactly one of them win.
    """

    paths: list[str]  # what the task will record, in the declared order
    staging: Path | None = None
    # staged entry → its final path; never one below another (a nested declaration is already
    # inside its folder's copy).
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    # Every regular file staged, as its '/'-separated path below attachments/<id>/ — what a
    # board several hosts serve keeps in its database (kanban.storage.artifact_rows).
    files: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _done: bool = False
    _published: bool = False

    def publish(self) -> None:
        """Rename the staged entries into place and sync their folders; called inside the
        transaction, so the commit that records them follows. Again after it succeeded
        (PostgreSQL re-runs a body that hit a deadlock): nothing to do."""
        with self._lock:
            if self._published:
                return
            if self._done:
                raise Conflict("the artifacts were discarded before the completion ran; retry")
            synced: set[Path] = set()
            for staged, final in self.moves:
                private_mkdirs(final.parent)
                if self.staging is not None:
                    tighten_down_to(self.staging.parent, final.parent)
                if final.is_dir() and not final.is_symlink():
                    shutil.rmtree(final)
                elif os.path.lexists(final) and staged.is_dir():
                    os.unlink(final)  # a file where the folder goes
                os.replace(staged, final)
                synced.add(final.parent)
            for folder in synced:
                _fsync_dir(folder)
            self._published = True
            self._finish()

    def discard(self) -> None:
        """Drop what was staged (the workspace was only read: nothing to give back)."""
        with self._lock:
            if not self._done:
                self._finish()

    def _finish(self) -> None:
        self._done = True
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


@dataclass
class _Entry:
    """One declared artifact inside the workspace, as measured before copying."""

    relative: PurePath
    files: list[tuple[PurePath, int]]  # regular files below the workspace, with their sizes


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # a file system that cannot sync a folder: the renames stand as they are
    finally:
        os.close(fd)


def _below(path: Path, forms: tuple[Path, ...]) -> PurePath | None:
    """``path`` relative to the first of ``forms`` it lies strictly below (judged lexically)."""
    for form in forms:
        if path != form and path.is_relative_to(form):
            return path.relative_to(form)
    return None


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


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


def _walk(top_fd: int, relative: PurePath) -> Iterator[tuple[PurePath, str, int]]:
    """(folder below the workspace, entry name, folder descriptor) for every regular file in the
    tree ``top_fd`` opens, never descending through a link."""
    for dirpath, dirs, names, here_fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
        # The kernel's own names (a staging folder, a part file) are never artifacts.
        dirs[:] = [d for d in dirs if not d.startswith(STAGING_PREFIX)]
        folder = relative / os.path.normpath(dirpath)
        for name in names:
            if name.startswith(STAGING_PREFIX):
                continue
            try:
                info = os.stat(name, dir_fd=here_fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                yield folder, name, here_fd


def _measure(scratch_fd: int, relative: PurePath) -> _Entry | None:
    """Sizes of what ``relative`` names (a file, or every file of a folder); None when it is
    missing. A link, a hard-linked file or a special file at the top is refused."""
    parent_fd = open_parent_beneath(scratch_fd, relative)
    try:
        info = os.stat(relative.name, dir_fd=parent_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            raise UnsafeFile(f"{relative.name}: is a symbolic link")
        if stat.S_ISDIR(info.st_mode):
            top = open_dir_no_follow(relative.name, dir_fd=parent_fd)
            try:
                files = []
                for folder, name, here_fd in _walk(top, relative):
                    size = os.stat(name, dir_fd=here_fd, follow_symlinks=False).st_size
                    files.append((folder / name, size))
            finally:
                os.close(top)
            return _Entry(relative, files)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{relative.name}: not a regular file")
        if info.st_nlink > 1:
            raise UnsafeFile(f"{relative.name}: has {info.st_nlink} hard links")
        return _Entry(relative, [(relative, info.st_size)])
    except FileNotFoundError:
        return None
    finally:
        os.close(parent_fd)


class _Budget:
    """What is left of a completion's limits while copying."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.count = 0
        self.total = 0

    def add_file(self, name: str, size: int) -> None:
        self.count += 1
        self.total += size
        if self.count > self.limits.max_count:
            raise InvalidInput(_count_refusal(self.count, self.limits))
        if self.total > self.limits.max_total_bytes:
            raise InvalidInput(_bytes_refusal(self.total, self.limits))
        if self.limits.max_file_bytes is not None and size > self.limits.max_file_bytes:
            raise too_large(name, size, self.limits.max_file_bytes)


def _copy_file(fd: int, target: Path, name: str, budget: _Budget) -> None:
    """Copy the open regular file ``fd`` to ``target`` (0600, synced). The bytes read count
    against the budget as they come: a file grown since it was measured is refused."""
    make = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    out = os.open(target, make, FILE_MODE)
    try:
        os.fchmod(out, FILE_MODE)  # whatever the umask left
        size = 0
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > budget.limits.max_total_bytes - budget.total:
                raise InvalidInput(_bytes_refusal(budget.total + size, budget.limits))
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
        os.fsync(out)
    finally:
        os.close(out)
    budget.add_file(name, size)


def _copy_entry(scratch_fd: int, relative: PurePath, staging: Path, budget: _Budget,
                files: list[str]) -> None:
    """Copy the declared file or folder ``relative`` into ``staging`` (same relative path)."""
    parent_fd = open_parent_beneath(scratch_fd, relative)
    try:
        info = os.stat(relative.name, dir_fd=parent_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            fd = open_regular_no_follow(relative.name, dir_fd=parent_fd)
            try:
                _mkdirs_in(staging, relative.parent)
                _copy_file(fd, staging / relative, relative.as_posix(), budget)
            finally:
                os.close(fd)
            files.append(relative.as_posix())
            return
        top = open_dir_no_follow(relative.name, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)
    try:
        _mkdirs_in(staging, relative)
        for folder, name, here_fd in _walk(top, relative):
            try:
                fd = open_regular_no_follow(name, dir_fd=here_fd)
            except (UnsafeFile, FileNotFoundError):
                continue  # swapped for a link or removed since the walk saw it: skipped
            try:
                _mkdirs_in(staging, folder)
                _copy_file(fd, staging / folder / name, (folder / name).as_posix(), budget)
            finally:
                os.close(fd)
            files.append((folder / name).as_posix())
    finally:
        os.close(top)


def _mkdirs_in(staging: Path, relative: PurePath) -> None:
    """The folders of ``relative`` below ``staging``, each 0700 (the kernel's own tree)."""
    current = staging
    for part in relative.parts:
        current = current / part
        try:
            os.mkdir(current, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(current, DIR_MODE)


def stage_artifacts(declared: list[str], *, scratch: Path, attachments: Path,
                    limits: Limits | None = None) -> StagedArtifacts:
    """Copy every declared artifact that lives inside ``scratch`` into a staging folder under
    ``attachments`` (the task's folder); return the paths the task should record. Refused with
    one line (and nothing staged) when a file is unsafe or the completion is over ``limits``.

    Inside is judged lexically (against the workspace's path as the board knows it, and with its
    parent folder resolved, as a worker's ``getcwd()`` spells it); then the file is reached from
    the workspace's own descriptor without following any link."""
    limits = limits or Limits()
    check_count(len(declared), limits)
    scratch = Path(os.path.abspath(scratch))
    forms = (scratch, _resolve(scratch.parent) / scratch.name)
    result = StagedArtifacts(paths=[])
    scratch_fd: int | None = None
    try:
        entries: list[_Entry | None] = []
        for item in declared:
            source = Path(item)
            if not source.is_absolute():
                source = scratch / source
            relative = _below(Path(os.path.normpath(source)), forms)
            if relative is not None and scratch_fd is None:
                scratch_fd = _open_scratch(scratch)
            if relative is None or scratch_fd is None:
                entries.append(None)  # outside the workspace: kept as declared
                continue
            if any(part.startswith(STAGING_PREFIX) for part in relative.parts):
                raise InvalidInput(f"artifact refused: {relative.name}: the name is the "
                                   "kernel's own")
            try:
                entries.append(_measure(scratch_fd, relative))
            except UnsafeFile as exc:
                raise InvalidInput(f"artifact refused: {exc}") from exc
        _check_limits(entries, limits)
        tops = _outermost([e.relative for e in entries if e is not None])
        if tops and scratch_fd is not None:
            sweep_dead_staging(attachments)  # what a killed completion of this task left
            private_mkdirs(attachments)
            result.staging = attachments / staging_name()
            os.mkdir(result.staging, DIR_MODE)
            os.chmod(result.staging, DIR_MODE)
            budget = _Budget(limits)
            for relative in tops:
                try:
                    _copy_entry(scratch_fd, relative, result.staging, budget, result.files)
                except FileNotFoundError:
                    continue  # removed since it was measured: recorded as declared
                except UnsafeFile as exc:
                    raise InvalidInput(f"artifact refused: {exc}") from exc
                result.moves.append((result.staging / relative, attachments / relative))
            for folder in {result.staging, *(s.parent for s, _ in result.moves)}:
                _fsync_dir(folder)
        staged = {s.relative_to(result.staging).parts for s, _f in result.moves
                  } if result.staging is not None else set()
        for item, entry in zip(declared, entries, strict=True):
            if entry is not None and _within_any(entry.relative, staged):
                result.paths.append(str(attachments / entry.relative))
            else:
                result.paths.append(item)  # outside, or missing: the notifier names it
    except BaseException:
        result.discard()
        raise
    finally:
        if scratch_fd is not None:
            os.close(scratch_fd)
    return result


def _check_limits(entries: list[_Entry | None], limits: Limits) -> None:
    """Refuse, before anything is copied, a completion over its limits. Files are counted once
    (a file also inside a declared folder is one upload); a path outside the workspace or
    missing counts as one artifact."""
    seen: dict[PurePath, int] = {}
    others = 0
    for entry in entries:
        if entry is None:
            others += 1
            continue
        seen.update(entry.files)
    count = len(seen) + others
    if count > limits.max_count:
        raise InvalidInput(_count_refusal(count, limits))
    total = sum(seen.values())
    if total > limits.max_total_bytes:
        raise InvalidInput(_bytes_refusal(total, limits))
    if limits.max_file_bytes is not None:
        for name, size in sorted(seen.items()):
            if size > limits.max_file_bytes:
                raise too_large(name.as_posix(), size, limits.max_file_bytes)


def _within_any(relative: PurePath, tops: set[tuple[str, ...]]) -> bool:
    """Whether ``relative`` is one of ``tops`` or lies below one (by its leading parts, so
    thousands of declared files cost no more than their depth each)."""
    parts = relative.parts
    return any(parts[:n] in tops for n in range(1, len(parts) + 1))


def _outermost(relatives: list[PurePath]) -> list[PurePath]:
    """The declared paths to copy, each once and none inside another, in declared order."""
    unique = list(dict.fromkeys(relatives))
    tops = {r.parts for r in unique}
    return [r for r in unique if not _within_any(r.parent, tops)]


async def stage(declared: list[str], *, scratch: Path, attachments: Path,
                track: Callable[[asyncio.Future[Any]], None] | None = None,
                limits: Limits | None = None) -> StagedArtifacts:
    """:func:`stage_artifacts` on a worker thread. A caller cancelled meanwhile does not stop the
    thread; whatever it staged is discarded once it finishes. ``track`` receives the thread's
    future so the board can wait for it on close."""
    return await staged_on_thread(functools.partial(
        stage_artifacts, declared, scratch=scratch, attachments=attachments, limits=limits),
        track)
