"""Moving a board of a home from its SQLite file to PostgreSQL.

:func:`migrate_board` copies ``<home>/boards/<slug>/kanban.db`` into the board's schema
(:func:`kanban.storage.copy_to_postgres.copy_board`: every table, ids kept, one transaction,
counts verified before commit) and records the move in ``board.json``. What stays on disk:

* ``kanban.db`` itself, untouched, until the user deletes it — the way back, and the proof;
* ``attachments/``, ``logs/`` and ``workspaces/`` beside it: the PostgreSQL board uses the same
  local folder on this host, so delivered files and logs keep working.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanban.errors import InvalidInput, KanbanError, NotFound
from kanban.home import DB_NAME, META_NAME, Boards
from kanban.storage.backend import Storage
from kanban.storage.copy_to_postgres import CopyReport, TableCopy, copy_board
from kanban.storage.modes import PRIVATE_FILE_MODE
from kanban.storage.tx import Tx
from kanban.validation import check_slug


@dataclass(frozen=True)
class BoardMigration:
    """What a move did: per-table figures, converted values, and what stays on disk."""

    slug: str
    target: str
    """The server, as ``PostgreSQL host:port/db`` (never the DSN)."""
    schema: str
    source: Path
    tables: list[TableCopy]
    converted: list[str] = field(default_factory=list)
    attachment_files: int = 0
    stored_files: int = 0
    """Attachment files also stored in the database, so gateways on other hosts can deliver
    them."""
    unstored: list[str] = field(default_factory=list)
    """Files left on this host only, with the reason (over ``max_artifact_bytes``, unreadable)."""
    replaced_rows: int = 0
    seconds: float = 0.0

    @property
    def verified(self) -> bool:
        return all(t.matches for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {"slug": self.slug, "target": self.target, "schema": self.schema,
                "source": str(self.source), "verified": self.verified,
                "tables": [t.to_dict() for t in self.tables], "converted": self.converted,
                "attachment_files": self.attachment_files,
                "stored_files": self.stored_files, "unstored": self.unstored,
                "replaced_rows": self.replaced_rows, "seconds": round(self.seconds, 3),
                "kept": str(self.source)}


async def migrate_board(boards: Boards, slug: str, target: Storage, *,
                        replace: bool = False) -> BoardMigration:
    """Copy the SQLite board ``slug`` of ``boards``' home into ``target`` (PostgreSQL).

    Refused: a target that is not PostgreSQL, a board with no SQLite file here, a board with
    active runs, a PostgreSQL board that already holds data (unless ``replace``), and values
    that cannot be converted safely (naming table, row and column). Nothing is written to
    PostgreSQL unless everything is.
    """
    check_slug(slug)
    if not target.is_postgres or not target.dsn:
        raise InvalidInput("a board can only be moved to PostgreSQL storage")
    db_path = boards.root / slug / DB_NAME
    meta = await asyncio.to_thread(_read_meta, boards.root / slug / META_NAME)
    if not await asyncio.to_thread(db_path.is_file):
        raise NotFound(f"board {slug!r} has no SQLite database in this home")
    from kanban.storage.pg import describe_dsn, schema_name

    name = str(meta.get("name") or slug)
    report: CopyReport = await asyncio.to_thread(
        copy_board, db_path, target.dsn, slug, name=name, namespace=target.namespace,
        replace=replace)
    where = describe_dsn(target.dsn)
    schema = schema_name(slug, target.namespace)
    await asyncio.to_thread(_record_move, boards.root / slug / META_NAME, meta, where, schema)
    files = await asyncio.to_thread(_count_files, boards.root / slug / "attachments")
    stored, unstored = await _store_attachments(boards, slug, target)
    return BoardMigration(slug=slug, target=where, schema=schema, source=db_path,
                          tables=report.tables, converted=report.converted,
                          attachment_files=files, stored_files=stored, unstored=unstored,
                          replaced_rows=report.replaced_rows, seconds=report.seconds)


async def _store_attachments(boards: Boards, slug: str, target: Storage
                             ) -> tuple[int, list[str]]:
    """Put each task's attachment files into the database (as ``complete`` does on a
    PostgreSQL board), one transaction per task. A file that cannot be stored stays on this
    host only and is named in the report; the move itself has already succeeded."""
    from kanban.board import Board

    folder = boards.root / slug / "attachments"
    per_task = await asyncio.to_thread(_attachment_files, folder)
    if not per_task:
        return 0, []
    stored = 0
    unstored: list[str] = []
    limit = boards.options.max_artifact_bytes
    board = await Board.open(boards.root / slug / DB_NAME, slug=slug, options=boards.options,
                             storage=target)
    try:
        for task_id, names in sorted(per_task.items()):
            task_dir = folder / str(task_id)
            for name in names:
                try:
                    await board.db.write(functools.partial(
                        _store, task_id=task_id, folder=task_dir, name=name, limit=limit))
                    stored += 1
                except (KanbanError, OSError) as exc:
                    unstored.append(f"{task_id}/{name}: {exc}")
    finally:
        await board.close()
    return stored, unstored


def _store(tx: Tx, *, task_id: int, folder: Path, name: str, limit: int) -> None:
    from kanban.storage.artifact_rows import store_files

    store_files(tx, task_id, folder, [name], limit=limit)


def _attachment_files(folder: Path) -> dict[int, list[str]]:
    """Regular files below ``attachments/<task id>/`` (links and staging folders left out)."""
    found: dict[int, list[str]] = {}
    if not folder.is_dir():
        return found
    for task_dir in folder.iterdir():
        if not task_dir.name.isdigit() or task_dir.is_symlink() or not task_dir.is_dir():
            continue
        names = [str(p.relative_to(task_dir).as_posix()) for p in sorted(task_dir.rglob("*"))
                 if p.is_file() and not p.is_symlink()
                 and not any(part.startswith(".staging") for part in p.parts)]
        if names:
            found[int(task_dir.name)] = names
    return found


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _record_move(path: Path, meta: dict[str, Any], target: str, schema: str) -> None:
    """``board.json`` says where the board lives now (written whole, then renamed into place)."""
    updated = {**meta, "storage": "postgresql", "migrated_at": time.time(),
               "migrated_to": target, "schema": schema}
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(updated))
    os.replace(temp, path)


def _count_files(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*") if p.is_file())
