"""Retention: what a board may forget, and the one pass that forgets it (``kanban gc``).

Nothing here is on a hot path: the gateway runs :func:`collect` once a day per board, and
``relayboard kanban gc`` runs it by hand. Each part is off when its number of days is 0:

* **events** older than ``events_days`` are deleted, except a task's ``created`` event, its
  latest event, an event a notification still has to deliver (an outbox row not yet sent, or
  a subscription whose cursor has not passed it), and events of no task (a deleted task's
  trace). The newest event of the board is always someone's latest, so ids are never reused;
* **files** of tasks archived more than ``files_days`` ago: their ``attachments/<id>/``,
  ``logs/<id>.log`` and a leftover scratch ``workspaces/<id>/``, and on PostgreSQL the copies
  of their artifacts kept in the database. The rows of the tasks stay;
* **delivered notifications**: outbox rows sent more than ``outbox_days`` ago (undelivered
  and failed ones stay: they are what an operator looks into);
* **stale staging folders** left by killed processes (the same sweep as opening a board).

Deletes go in batches of :attr:`RetentionSettings.batch` rows, each its own short write
transaction, so a gateway writing meanwhile waits for milliseconds, not for the whole pass.
SQLite keeps freed pages in the file for new rows; ``vacuum`` then rewrites the file to give
them back to the disk (PostgreSQL's autovacuum does that on its own).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kanban.board import Board
from kanban.board.attachments import find_stale_staging, remove_path
from kanban.storage.tx import Tx

log = logging.getLogger(__name__)

DAY = 86400.0
BUSY_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class RetentionSettings:
    """Days each kind of record is kept; 0 keeps it forever (``kanban.retention``)."""

    events_days: int = 0
    files_days: int = 0
    outbox_days: int = 30
    batch: int = 2000


@dataclass
class GcReport:
    """What one pass freed on one board (or, with ``dry_run``, would free)."""

    board: str
    dry_run: bool
    events: int = 0
    outbox: int = 0
    tasks_with_files: int = 0
    files: int = 0
    file_bytes: int = 0
    artifact_rows: int = 0
    staging: int = 0
    db_bytes: int | None = None  # SQLite: live data freed (its pages are reused by new rows)
    file_size_before: int | None = None  # SQLite with vacuum: the file before and after
    file_size_after: int | None = None
    skipped: list[str] = field(default_factory=list)  # parts that are off (0 days)

    @property
    def rows(self) -> int:
        return self.events + self.outbox + self.artifact_rows

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": self.rows}


# ---- the SQL (both backends) -------------------------------------------------------------------

# An event that may go: old, of a task, not its `created`, not its latest, not owed to anyone.
_EVENT_GOES = (
    "e.created_at < ? AND e.task_id IS NOT NULL AND e.kind != 'created' "
    "AND EXISTS (SELECT 1 FROM task_events n WHERE n.task_id = e.task_id AND n.id > e.id) "
    "AND e.id NOT IN (SELECT o.event_id FROM notify_outbox o WHERE o.state != 'sent') "
    "AND NOT EXISTS (SELECT 1 FROM notify_subs s WHERE s.task_id = e.task_id "
    "AND s.disabled_at IS NULL AND s.last_event_id < e.id)"
)
_OUTBOX_GOES = "state = 'sent' AND delivered_at < ?"
# Tasks archived before the cutoff: by their `archived` event, else (compacted) their update.
_ARCHIVED_BEFORE = (
    "SELECT t.id FROM tasks t WHERE t.status = 'archived' AND COALESCE((SELECT MAX(a.created_at) "
    "FROM task_events a WHERE a.task_id = t.id AND a.kind = 'archived'), t.updated_at) < ?"
)


def _count(tx: Tx, sql: str, params: tuple[Any, ...]) -> int:
    row = tx.one(sql, params)
    return int(row[0]) if row and row[0] is not None else 0


def _delete_events(tx: Tx, after: int, cutoff: float, batch: int) -> tuple[int, int | None]:
    """One batch, in id order from ``after``: (rows deleted, last id looked at or None)."""
    rows = tx.all(f"SELECT e.id FROM task_events e WHERE e.id > ? AND {_EVENT_GOES} "
                  "ORDER BY e.id LIMIT ?", (after, cutoff, batch))
    if not rows:
        return 0, None
    last = int(rows[-1][0])
    cur = tx.execute(f"DELETE FROM task_events WHERE id IN (SELECT e.id FROM task_events e "
                     f"WHERE e.id > ? AND e.id <= ? AND {_EVENT_GOES})", (after, last, cutoff))
    return max(cur.rowcount, 0), last


def _delete_outbox(tx: Tx, cutoff: float, batch: int) -> int:
    cur = tx.execute(f"DELETE FROM notify_outbox WHERE id IN (SELECT id FROM notify_outbox "
                     f"WHERE {_OUTBOX_GOES} ORDER BY id LIMIT ?)", (cutoff, batch))
    return max(cur.rowcount, 0)


def _delete_artifact_rows(tx: Tx, cutoff: float) -> int:
    cur = tx.execute(f"DELETE FROM artifact_files WHERE task_id IN ({_ARCHIVED_BEFORE})",
                     (cutoff,))
    return max(cur.rowcount, 0)


def _live_bytes(tx: Tx) -> int | None:
    if tx.backend != "sqlite":
        return None
    pages = _count(tx, "PRAGMA page_count", ())
    free = _count(tx, "PRAGMA freelist_count", ())
    size = _count(tx, "PRAGMA page_size", ())
    return (pages - free) * size


# ---- one pass ----------------------------------------------------------------------------------

async def collect(board: Board, settings: RetentionSettings, *, dry_run: bool = False,
                  vacuum: bool = False) -> GcReport:
    """Apply ``settings`` to ``board`` once (see the module docstring)."""
    report = GcReport(board=board.slug, dry_run=dry_run)
    now = await board.current_time()
    before = await board.db.read(_live_bytes)
    if settings.outbox_days > 0:
        report.outbox = await _outbox(board, now - settings.outbox_days * DAY, settings,
                                      dry_run)
    else:
        report.skipped.append("outbox")
    if settings.events_days > 0:
        report.events = await _events(board, now - settings.events_days * DAY, settings,
                                      dry_run)
    else:
        report.skipped.append("events")
    if settings.files_days > 0:
        await _files(board, now - settings.files_days * DAY, report, dry_run)
    else:
        report.skipped.append("files")
    stale = await asyncio.to_thread(find_stale_staging, board.attachments_dir)
    report.staging = len(stale)
    if not dry_run:
        for entry in stale:
            await asyncio.to_thread(remove_path, entry)
        after = await board.db.read(_live_bytes)
        if before is not None and after is not None:
            report.db_bytes = max(before - after, 0)
        if vacuum and board.db.backend == "sqlite":
            path = board.db.path
            report.file_size_before = _file_size(path)
            await asyncio.to_thread(vacuum_file, path)
            report.file_size_after = _file_size(path)
    if not dry_run and (report.rows or report.files or report.staging):
        log.info("retention on board %s: %d event(s), %d delivered notification(s), "
                 "%d file(s) (%d bytes) of %d archived task(s), %d staging folder(s)",
                 board.slug, report.events, report.outbox, report.files, report.file_bytes,
                 report.tasks_with_files, report.staging)
    return report


async def _outbox(board: Board, cutoff: float, settings: RetentionSettings,
                  dry_run: bool) -> int:
    if dry_run:
        return await board.db.read(lambda tx: _count(
            tx, f"SELECT COUNT(*) FROM notify_outbox WHERE {_OUTBOX_GOES}", (cutoff,)))
    total = 0
    while True:
        done = await board.db.write(lambda tx: _delete_outbox(tx, cutoff, settings.batch),
                                    exclusive=False)
        total += done
        if done < settings.batch:
            return total


async def _events(board: Board, cutoff: float, settings: RetentionSettings,
                  dry_run: bool) -> int:
    if dry_run:
        return await board.db.read(lambda tx: _count(
            tx, f"SELECT COUNT(*) FROM task_events e WHERE {_EVENT_GOES}", (cutoff,)))
    total, after = 0, 0
    while True:
        done, last = await board.db.write(
            functools.partial(_delete_events, after=after, cutoff=cutoff,
                              batch=settings.batch))
        total += done
        if last is None:
            return total
        after = last


async def _files(board: Board, cutoff: float, report: GcReport, dry_run: bool) -> None:
    ids = await board.db.read(lambda tx: {int(r[0]) for r in tx.all(_ARCHIVED_BEFORE,
                                                                        (cutoff,))})
    if not ids:
        return
    if dry_run:
        report.artifact_rows = await board.db.read(lambda tx: _count(
            tx, f"SELECT COUNT(*) FROM artifact_files WHERE task_id IN ({_ARCHIVED_BEFORE})",
            (cutoff,)))
    else:
        report.artifact_rows = await board.db.write(lambda tx: _delete_artifact_rows(
            tx, cutoff))
    found = await asyncio.to_thread(_task_paths, board, ids)
    tasks: set[int] = set()
    for task_id, path in found:
        files, size = await asyncio.to_thread(_measure, path)
        if not dry_run:
            await asyncio.to_thread(remove_path, path)
        tasks.add(task_id)
        report.files += files
        report.file_bytes += size
    report.tasks_with_files = len(tasks)


def _task_paths(board: Board, ids: set[int]) -> list[tuple[int, Path]]:
    """The attachment folders, logs and scratch workspaces of tasks ``ids`` that exist: one
    listing per folder, not one look-up per task."""
    found: list[tuple[int, Path]] = []
    for folder, suffix in ((board.attachments_dir, ""), (board.logs_dir, ".log"),
                           (board.workspaces_dir, "")):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            stem = name.removesuffix(suffix) if suffix else name
            if suffix and stem == name:
                continue
            if stem.isdigit() and int(stem) in ids:
                found.append((int(stem), folder / name))
    return found


def _measure(path: Path) -> tuple[int, int]:
    """(files, bytes) at ``path``, links not followed."""
    try:
        if path.is_symlink() or not path.is_dir():
            return 1, path.lstat().st_size
    except OSError:
        return 0, 0
    files = size = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            files += 1
    return files, size


def _file_size(path: Path) -> int | None:
    try:
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal"))
                   if p.exists())
    except OSError:
        return None


def vacuum_file(path: Path) -> None:
    """``VACUUM`` a SQLite board on a connection of its own (it cannot run in a transaction),
    then fold the WAL back into the file."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()

