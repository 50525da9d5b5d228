"""Secrets read from files: the ``*_file`` twin of every ``*_env`` key (Docker and Kubernetes
mount secrets as files).

A secret file is the secret itself, surrounding whitespace stripped. It is read when the config
is loaded (at start and on every reload) and refused, with one line, when it is not a regular
file, is readable by its group or by others, is empty, is not UTF-8 text, or is larger than any
secret could be. Setting both a ``*_env`` key and its ``*_file`` twin is an error: one source per
secret. See docs/security.md ("Secrets from files").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_SECRET_BYTES = 64 * 1024
# Group and others may not read it; writing is judged by the directory it lives in.
LOOSE_BITS = stat.S_IRGRP | stat.S_IROTH


class SecretFileError(ValueError):
    """A secret file that cannot be used; ``str(err)`` is one line naming the file."""


def file_key(env_key: str) -> str:
    """The ``*_file`` twin of an ``*_env`` key (``token_env`` -> ``token_file``)."""
    return env_key.removesuffix("_env") + "_file"


def read_secret_file(path: Path) -> str:
    """The secret in ``path``, stripped; :class:`SecretFileError` when it may not be used."""
    try:
        # O_NONBLOCK: a FIFO put in its place must not hang the load; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SecretFileError(f"{path} does not exist") from None
    except OSError as exc:
        raise SecretFileError(f"cannot open {path} ({exc.strerror})") from None
    info = os.fstat(fd)  # of the file opened, not of whatever the path names by now
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise SecretFileError(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as file:
        if info.st_mode & LOOSE_BITS:
            raise SecretFileError(
                f"{path} is readable by its group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); run chmod 600 {path} (in Kubernetes, "
                "mount the secret with defaultMode: 0400)")
        raw = file.read(MAX_SECRET_BYTES + 1)
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretFileError(f"{path} is larger than {MAX_SECRET_BYTES // 1024} KiB; is it "
                              "the right file?")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"{path} is not UTF-8 text") from None
    if not value:
        raise SecretFileError(f"{path} is empty")
    return value
