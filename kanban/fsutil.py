"""File-system helpers shared by the kernel: containment checks and the one artifact copy.

Workers are untrusted: a file they declare may be a symlink or a hard link to a secret, or be
swapped for one between a check and a copy. :func:`copy_no_follow` therefore opens each file once
without following links, checks that open handle (a regular file with one link), and copies from
it; directories are walked without following links, and links inside them are skipped.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves strictly inside ``root`` (never ``root`` itself)."""
    try:
        resolved, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved != base and resolved.is_relative_to(base)


class UnsafeFile(OSError):
    """A declared file that must not be copied (a link, a hard link, a device, …)."""


@dataclass
class CopyReport:
    copied: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: why", basenames only


def open_regular_no_follow(path: Path) -> int:
    """Open ``path`` for reading without following a final symlink; refuse anything but a
    regular file with exactly one link. Returns the descriptor (the caller closes it)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeFile(f"{path.name}: is a symbolic link") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{path.name}: not a regular file")
        if info.st_nlink > 1:
            raise UnsafeFile(f"{path.name}: has {info.st_nlink} hard links")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy_file(source: Path, target: Path) -> None:
    fd = open_regular_no_follow(source)
    with os.fdopen(fd, "rb") as src:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        out_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        with os.fdopen(out_fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        os.replace(tmp, target)


def copy_no_follow(source: Path, target: Path) -> CopyReport:
    """Copy a file or a directory tree to ``target`` without following any link.

    A link at the top raises :class:`UnsafeFile`; links, hard-linked files and special files
    inside a directory are skipped and named in the report.
    """
    report = CopyReport()
    info = os.lstat(source)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFile(f"{source.name}: is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        _copy_file(source, target)
        report.copied.append(target)
        return report
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        here = Path(dirpath)
        rel = here.relative_to(source)
        for name in list(dirnames):
            if os.path.islink(here / name):
                dirnames.remove(name)
                report.skipped.append(f"{name}: is a symbolic link")
        (target / rel).mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        for name in filenames:
            try:
                _copy_file(here / name, target / rel / name)
            except UnsafeFile as exc:
                report.skipped.append(str(exc))
                continue
            report.copied.append(target / rel / name)
    return report
