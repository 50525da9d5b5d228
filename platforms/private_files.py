"""Private chat files: folders 0700 and files 0600 whatever the umask, like the rest of the home.

Chat history and web-chat uploads hold what people wrote and sent; nobody else on the host should
read them. ``mkdir`` and ``open`` only ever narrow a mode by the umask, so modes are set after
creation, and a tree made by an older version (0755 folders, 0644 files) is tightened when its
owner starts using it (:func:`tighten_tree`).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path
from typing import IO, Literal

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FLAGS = {
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
}


def _set(path: Path, mode: int) -> None:
    """``path``'s permission bits to ``mode``; a link is never followed, a missing path or one
    we may not change is left (with a warning) rather than failing the chat."""
    try:
        info = os.lstat(path)
        if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("cannot make %s private: %s", path, exc.strerror or exc)


def private_dirs(path: Path, *, top: Path) -> None:
    """Create ``path`` and its missing parents up to and including ``top`` (the chat folder in
    the home), each 0700; existing ones between ``top`` and ``path`` are tightened too."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    chain = [path, *path.parents]
    for folder in reversed(chain[:chain.index(top) + 1] if top in chain else [path]):
        _set(folder, DIR_MODE)


def private_fd(path: Path, mode: Literal["a", "w"]) -> int:
    """A descriptor to append to (``a``) or replace (``w``) ``path``, created 0600 (an
    existing file is made 0600 on the handle); a final symbolic link is refused."""
    fd = os.open(path, _FLAGS[mode] | _NOFOLLOW | _CLOEXEC, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_text(path: Path) -> IO[str]:
    return os.fdopen(private_fd(path, "a"), "a", encoding="utf-8")


def write_private_text(path: Path, text: str) -> None:
    with os.fdopen(private_fd(path, "w"), "w", encoding="utf-8") as fh:
        fh.write(text)


def write_private_bytes(path: Path, data: bytes) -> None:
    with os.fdopen(private_fd(path, "w"), "wb") as fh:
        fh.write(data)


def copy_private(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` (0600 from the first byte)."""
    with source.open("rb") as src, os.fdopen(private_fd(target, "w"), "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)


def tighten_tree(root: Path) -> None:
    """Make ``root`` and every folder below it 0700 and every file 0600, without following a
    link (a home made before these files were private)."""
    if not root.is_dir() or root.is_symlink():
        return
    _set(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in dirnames:
            _set(here / name, DIR_MODE)
        for name in filenames:
            _set(here / name, FILE_MODE)
