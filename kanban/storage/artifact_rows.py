"""Artifact bytes in the board's database: how a file a worker made on one host reaches a
gateway on another.

On a board several hosts serve (PostgreSQL), ``complete`` stores every file it staged into
``attachments/<id>/`` as rows of ``artifact_blobs`` — :data:`CHUNK_BYTES` each — with the file's
size and SHA-256 in ``artifact_files``, inside the completion's own transaction: a completion
that commits has its bytes, one that rolls back has none. Readers on other hosts write the rows
back into their own ``attachments/<id>/`` (:mod:`kanban.board.writeback`).

Chunks keep every statement and every row small (a ``bytea`` value is read and sent whole), so
a 50 MiB file never travels as one 50 MiB parameter, and a reader holds one chunk at a time.
A file's name is its path below ``attachments/<id>/`` with ``/`` separators (``out/chart.png``).

These functions run inside a transaction body (on the database thread).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kanban.errors import InvalidInput
from kanban.fsutil import open_dir_no_follow, open_parent_beneath, open_regular_no_follow
from kanban.storage.tx import Tx
from kanban.timeutil import now

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    """One artifact kept in the database."""

    name: str  # its path below attachments/<id>/, '/'-separated
    size: int
    sha256: str
    chunks: int


def too_large(name: str, size: int, limit: int, *, what: str = "artifact",
              undone: str = "Nothing was completed.") -> InvalidInput:
    return InvalidInput(
        f"{what} refused: {name} is {size:,} bytes; this board keeps files of at most "
        f"{limit:,} bytes in its database (max_artifact_bytes, set from "
        "delivery.max_attachment_bytes) so that a host other than this one can use them; "
        f"make it smaller or leave it out. {undone}")


def store_files(tx: Tx, task_id: int, folder: Path, names: list[str], *, limit: int,
                inputs: bool = False) -> list[StoredFile]:
    """Store each of ``names`` (files below ``folder``, the task's attachments) in the
    database, replacing what was stored under those names. A file over ``limit`` bytes raises
    :class:`InvalidInput` (the caller's transaction then rolls back: nothing is truncated)."""
    if not names:
        return []
    root = open_dir_no_follow(folder)
    try:
        return [_store_one(tx, task_id, root, name, limit, inputs) for name in names]
    finally:
        os.close(root)


def _store_one(tx: Tx, task_id: int, root: int, name: str, limit: int,
               inputs: bool = False) -> StoredFile:
    relative = PurePosixPath(name)
    parent = open_parent_beneath(root, relative)
    try:
        fd = open_regular_no_follow(relative.name, dir_fd=parent)
    finally:
        os.close(parent)
    # The file row first: each chunk refers to it (and a rewrite drops the old chunks with it).
    tx.execute("DELETE FROM artifact_blobs WHERE task_id = ? AND name = ?", (task_id, name))
    tx.execute("DELETE FROM artifact_files WHERE task_id = ? AND name = ?", (task_id, name))
    tx.execute("INSERT INTO artifact_files (task_id, name, size, sha256, chunks, stored_at) "
               "VALUES (?, ?, 0, '', 0, ?)", (task_id, name, now()))
    digest = hashlib.sha256()
    size = chunk = 0
    with os.fdopen(fd, "rb") as source:
        while data := source.read(CHUNK_BYTES):
            size += len(data)
            if size > limit:  # grown since it was staged and measured: still refused
                raise (too_large(name, size, limit, what="attachment",
                                 undone="The task was not created.")
                       if inputs else too_large(name, size, limit))
            digest.update(data)
            tx.execute("INSERT INTO artifact_blobs (task_id, name, chunk, data) "
                       "VALUES (?, ?, ?, ?)", (task_id, name, chunk, data))
            chunk += 1
    stored = StoredFile(name, size, digest.hexdigest(), chunk)
    tx.execute("UPDATE artifact_files SET size = ?, sha256 = ?, chunks = ? "
               "WHERE task_id = ? AND name = ?",
               (stored.size, stored.sha256, stored.chunks, task_id, name))
    return stored


def stored_files(tx: Tx, task_id: int) -> dict[str, StoredFile]:
    """Every file of the task kept in the database, by name."""
    rows = tx.all("SELECT name, size, sha256, chunks FROM artifact_files WHERE task_id = ? "
                  "ORDER BY name", (task_id,))
    return {str(r[0]): StoredFile(str(r[0]), int(r[1]), str(r[2]), int(r[3])) for r in rows}


def read_chunk(tx: Tx, task_id: int, name: str, chunk: int) -> bytes | None:
    row = tx.one("SELECT data FROM artifact_blobs WHERE task_id = ? AND name = ? AND chunk = ?",
                 (task_id, name, chunk))
    return None if row is None else bytes(row[0])
