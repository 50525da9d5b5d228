"""Private files: the home and everything below it belong to one user.

Boards hold task bodies, worker output and artifacts; profiles may hold secrets. Folders are made
0700 and files 0600 whatever the process umask (a mode is set after creation, since ``mkdir`` and
``open`` only ever narrow it by the umask), and existing ones are tightened when they are opened:
a home made by an older version, or copied with loose modes, does not stay readable by others.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def tighten(path: Path, mode: int) -> None:
    """Set ``path``'s permission bits to ``mode`` when they differ; a missing path, a symbolic
    link (never followed) or one we may not change (another owner) is left as it is."""
    try:
        info = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode) or stat.S_IMODE(info.st_mode) == mode:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning("cannot make %s private (mode %o): %s", path, mode, exc.strerror or exc)


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700; an existing folder is tightened."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    tighten(path, PRIVATE_DIR_MODE)


def private_dirs(*paths: Path) -> None:
    """:func:`private_dir` for each path, outermost first (a parent made on the way by
    ``mkdir(parents=True)`` would otherwise keep the umask's mode)."""
    for path in paths:
        private_dir(path)


def private_files(*paths: Path) -> None:
    for path in paths:
        tighten(path, PRIVATE_FILE_MODE)
