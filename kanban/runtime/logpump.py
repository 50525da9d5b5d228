"""The log relay started beside every worker: ``python -I logpump.py LOG MAX_BYTES BACKUPS``.

A worker's stdout and stderr are a pipe whose reading end only this process holds. It appends
what it reads to ``LOG`` and rotates (``LOG`` → ``LOG.1`` → … → ``LOG.BACKUPS``) *before* a write
would take the file past ``MAX_BYTES``, so the log never exceeds the cap, however fast the worker
writes; the disk holds at most ``MAX_BYTES × (BACKUPS + 1)``. Rotation renames instead of copying:
nobody else holds the file open.

It is a separate process, not a thread of the gateway, because workers outlive gateway restarts:
the relay lives exactly as long as someone holds the pipe's writing end (the worker and its
children), in its own session, so neither a gateway crash nor a Ctrl-C at its terminal stops it.
It never stops reading: if the log cannot be written (disk full, folder removed) the output is
dropped rather than left to fill the pipe and stall the worker.

Stdlib only and run by path with ``-I``: it starts fast and imports nothing from the caller's
environment.
"""

from __future__ import annotations

import os
import sys

CHUNK = 65536
FILE_MODE = 0o600


def rotate(path: str, backups: int) -> None:
    """Shift ``path`` → ``path.1`` → … → ``path.backups``; with no backups, drop it."""
    if backups <= 0:
        os.unlink(path)
        return
    for index in range(backups - 1, 0, -1):
        older = f"{path}.{index}"
        if os.path.exists(older):
            os.replace(older, f"{path}.{index + 1}")
    os.replace(path, f"{path}.1")


class CappedLog:
    """An append-only file that rotates before it would exceed ``max_bytes``."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max(1, max_bytes)
        self.backups = max(0, backups)
        self.fd: int | None = None
        self.size = 0

    def _open(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            self.size = os.fstat(self.fd).st_size
        return self.fd

    def _rotate(self) -> None:
        self.close()
        rotate(self.path, self.backups)

    def write(self, data: bytes) -> None:
        while data:
            fd = self._open()
            room = self.max_bytes - self.size
            if room <= 0:
                self._rotate()
                continue
            written = os.write(fd, data[:room])
            self.size += written
            data = data[written:]

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def pump(source: int, log: CappedLog) -> None:
    """Copy ``source`` into ``log`` until end of file."""
    broken = False
    while True:
        try:
            data = os.read(source, CHUNK)
        except InterruptedError:
            continue
        if not data:
            break
        if broken:
            continue
        try:
            log.write(data)
        except OSError as exc:
            broken = True  # keep draining: a stalled pipe would block the worker
            print(f"logpump: cannot write {log.path}: {exc}; dropping output", file=sys.stderr)
    log.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: logpump.py LOG MAX_BYTES BACKUPS", file=sys.stderr)
        return 2
    path, max_bytes, backups = argv[0], int(argv[1]), int(argv[2])
    pump(sys.stdin.fileno(), CappedLog(path, max_bytes, backups))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
