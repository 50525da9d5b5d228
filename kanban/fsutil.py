"""File-system helpers shared by the kernel: containment checks and the one artifact copy.

Workers are untrusted: a file they declare may be a symlink or a hard link to a secret, or be
swapped for one between a check and a copy. Files are therefore opened once without following
links, checked on that open handle (a regular file with one link) and copied from it; paths below
a trusted root are walked one directory descriptor at a time (:func:`open_parent_beneath`), so a
link in a parent folder is refused too; trees are walked with ``os.fwalk``, which never descends
through a link, and links inside them are skipped.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from kanban.errors import UnsafeFile

FILE_MODE = 0o600
DIR_MODE = 0o700


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves strictly inside ``root`` (never ``root`` itself)."""
    try:
        resolved, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved != base and resolved.is_relative_to(base)


def make_private_dirs(path: Path) -> None:
    """``mkdir -p`` where every folder it creates is 0700 whatever the umask (``Path.mkdir``
    gives ``mode`` to the last folder only)."""
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)


@dataclass
class CopyReport:
    copied: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: why", basenames only


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC


def _is_link(path: str | Path, dir_fd: int | None, exc: OSError | None = None) -> bool:
    if exc is not None and exc.errno == errno.ELOOP:  # O_NOFOLLOW's answer for a link
        return True
    try:
        return stat.S_ISLNK(os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_dir_no_follow(path: str | Path, *, dir_fd: int | None = None) -> int:
    """Open a directory without following a final symlink (:class:`UnsafeFile` if it is one)."""
    try:
        return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if _is_link(path, dir_fd, exc):
            raise UnsafeFile(f"{Path(path).name}: is a symbolic link") from exc
        raise


def open_regular_no_follow(path: str | Path, *, dir_fd: int | None = None) -> int:
    """Open ``path`` for reading without following a final symlink; refuse anything but a
    regular file with exactly one link. Returns the descriptor (the caller closes it)."""
    name = Path(path).name
    try:
        fd = os.open(path, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if _is_link(path, dir_fd, exc):
            raise UnsafeFile(f"{name}: is a symbolic link") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{name}: not a regular file")
        if info.st_nlink > 1:
            raise UnsafeFile(f"{name}: has {info.st_nlink} hard links")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_parent_beneath(root_fd: int, relative: PurePath) -> int:
    """The directory holding ``relative`` (below the directory ``root_fd``), reached one
    component at a time without following any link: a swapped-in link to elsewhere raises
    :class:`UnsafeFile` instead of being walked through. The caller closes the result."""
    current = os.dup(root_fd)
    try:
        for part in relative.parts[:-1]:
            if part in (".", "..", "/"):
                raise UnsafeFile(f"{relative.name}: its path leaves the workspace")
            nxt = open_dir_no_follow(part, dir_fd=current)
            os.close(current)
            current = nxt
    except BaseException:
        os.close(current)
        raise
    return current


def _copy_fd(fd: int, target: Path) -> None:
    """Copy the open file ``fd`` to ``target`` (mode 0600, written beside it, then renamed)."""
    make_private_dirs(target.parent)
    tmp = target.with_name(f".{target.name}.part")
    out_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, FILE_MODE)
    with os.fdopen(out_fd, "wb") as dst, os.fdopen(os.dup(fd), "rb") as src:
        shutil.copyfileobj(src, dst, 1024 * 1024)
    os.replace(tmp, target)


def _copy_file_at(name: str, dir_fd: int | None, target: Path) -> None:
    fd = open_regular_no_follow(name, dir_fd=dir_fd)
    try:
        _copy_fd(fd, target)
    finally:
        os.close(fd)


def copy_at(dir_fd: int, name: str, target: Path) -> CopyReport:
    """Copy the entry ``name`` of the directory ``dir_fd`` (a file or a tree) to ``target``
    without following any link. A link (or a hard-linked file) at the top raises
    :class:`UnsafeFile`; links, hard-linked files and special files inside a tree are skipped and
    named in the report."""
    report = CopyReport()
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFile(f"{name}: is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        _copy_file_at(name, dir_fd, target)
        report.copied.append(target)
        return report
    top = open_dir_no_follow(name, dir_fd=dir_fd)
    try:
        # fwalk hands out a descriptor per directory and never descends through a link.
        for dirpath, _dirnames, filenames, here_fd in os.fwalk(
                ".", dir_fd=top, follow_symlinks=False):
            rel = Path(os.path.normpath(dirpath))
            make_private_dirs(target / rel)
            for entry in filenames:
                try:
                    _copy_file_at(entry, here_fd, target / rel / entry)
                except UnsafeFile as exc:
                    report.skipped.append(str(exc))
                    continue
                except OSError as exc:
                    report.skipped.append(f"{entry}: {exc.strerror or exc}")
                    continue
                report.copied.append(target / rel / entry)
    finally:
        os.close(top)
    return report


def copy_no_follow(source: Path, target: Path) -> CopyReport:
    """Copy a file or a directory tree to ``target`` without following any link at or below
    ``source`` (its parent folders are trusted). See :func:`copy_at`."""
    parent = os.open(source.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        return copy_at(parent, source.name, target)
    finally:
        os.close(parent)
