"""Read models for the browser: board columns of compact cards, and a task's detail.

``GET /api/board`` is the hot read. It reads the board's cards once per *change* (the board's
change version, after asking SQLite whether another process wrote), keeps that snapshot, and cuts
each column to its first ``limit`` cards; repeated reads of an unchanged board — every open tab
refreshing after the same event — reuse it. The snapshot holds :class:`~kanban.board.cards.Card`
values (:meth:`Board.list_cards`: one query, no ``Task`` objects); only the cards shown become
JSON.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.notifier import build_policy
from kanban import Board, Card, KanbanError, Task, TaskDetail, TaskNotFound
from platforms.delivery import OpenedFile
from platforms.http_safety import raster_by_name

logger = logging.getLogger(__name__)

COLUMNS = ("triage", "todo", "ready", "running", "blocked", "done")
DEFAULT_LIMIT = 200
MAX_LIMIT = 5000
KEPT_WINDOWS = 16  # board pages kept (per board, archived flag and limit) for their version


@dataclass
class Snapshot:
    version: int
    archived: bool
    cards: list[Card]


class BoardViews:
    """Board snapshots, one per (board, archived flag), refreshed when the board changed."""

    def __init__(self) -> None:
        self._snapshots: dict[tuple[str, bool], Snapshot] = {}
        self._locks: dict[tuple[str, bool], asyncio.Lock] = {}
        self._windows: dict[tuple[str, bool, int], tuple[int, dict[str, Any]]] = {}

    async def snapshot(self, board: Board, *, archived: bool) -> Snapshot:
        key = (board.slug, archived)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # ten tabs refreshing at once cost one listing, not ten
            await board.poll_external()
            version = board.changes.version
            snap = self._snapshots.get(key)
            if snap is not None and snap.version == version:
                return snap
            snap = Snapshot(version, archived, await board.list_cards(include_archived=archived))
            self._snapshots[key] = snap
            return snap

    def forget(self, slug: str) -> None:
        for key in [k for k in self._snapshots if k[0] == slug]:
            self._snapshots.pop(key, None)
        self._windows = {k: v for k, v in self._windows.items() if k[0] != slug}

    async def window(self, board: Board, *, limit: int, archived: bool) -> dict[str, Any]:
        """The unfiltered board: each column's window read from its index, kept per version
        (a board of 100,000 tasks costs what one of 1,000 does)."""
        key = (board.slug, archived, limit)
        lock = self._locks.setdefault((board.slug, archived), asyncio.Lock())
        async with lock:
            await board.poll_external()
            version = board.changes.version
            kept = self._windows.get(key)
            if kept is not None and kept[0] == version:
                return kept[1]
            statuses = (*COLUMNS, "archived") if archived else COLUMNS
            read = await board.card_window(statuses, limit=limit)
            columns = [{"status": status, "count": read.counts[status],
                        "more": max(0, read.counts[status] - len(read.columns[status])),
                        "tasks": [card_json(c) for c in read.columns[status]]}
                       for status in statuses]
            data = {"board": board.slug, "version": version, "counts": read.counts,
                    "total": sum(read.counts.values()), "assignees": read.assignees,
                    "limit": limit, "columns": columns}
            self._windows = {k: v for k, v in self._windows.items() if k[0] != board.slug
                             or v[0] == version}
            self._windows[key] = (version, data)
            while len(self._windows) > KEPT_WINDOWS:  # many limits asked: the oldest go
                del self._windows[next(iter(self._windows))]
            return data

    async def board(self, board: Board, *, limit: int, archived: bool,
                    assignee: str | None, text: str | None) -> dict[str, Any]:
        if assignee is None and not (text and text.strip()):
            return await self.window(board, limit=limit, archived=archived)
        # A filter reads every card (the snapshot) and picks in Python.
        snap = await self.snapshot(board, archived=archived)
        statuses = (*COLUMNS, "archived") if archived else COLUMNS
        buckets: dict[str, list[Card]] = {s: [] for s in statuses}
        counts: dict[str, int] = dict.fromkeys(statuses, 0)
        assignees: set[str] = set()
        needle = text.lower().strip() if text else None
        want_id = int(needle.lstrip("#")) if needle and needle.lstrip("#").isdigit() else None
        for task in snap.cards:
            if task.assignee:
                assignees.add(task.assignee)
            bucket = buckets.get(task.status)
            if bucket is None:
                continue
            if assignee is not None and (task.assignee or "") != assignee:
                continue
            if needle is not None and task.id != want_id and needle not in task.title.lower():
                continue
            bucket.append(task)
        for status, bucket in buckets.items():
            counts[status] = len(bucket)
        for status in ("done", "archived"):
            if status in buckets:  # most recently finished first
                buckets[status].sort(key=lambda t: -(t.completed_at or t.updated_at or 0.0))
        columns = []
        for status in statuses:
            shown = buckets[status][:limit]
            columns.append({
                "status": status, "count": counts[status],
                "more": max(0, counts[status] - len(shown)),
                "tasks": [card_json(c) for c in shown],
            })
        return {
            "board": board.slug, "version": snap.version,
            "counts": counts, "total": sum(counts.values()),
            "assignees": sorted(assignees), "limit": limit, "columns": columns,
        }


def card_json(card: Card) -> dict[str, Any]:
    """A card as the page reads it (``children`` is ``[finished, total]`` or null)."""
    return {
        "id": card.id, "title": card.title, "status": card.status,
        "assignee": card.assignee, "priority": card.priority,
        "created_at": card.created_at, "updated_at": card.updated_at,
        "completed_at": card.completed_at, "failures": card.failures,
        "children": [card.children_done, card.children] if card.children else None,
        "parents": card.parents, "files": card.files,
        "reason": card.reason if card.status == "blocked" else None,
        "corrupt": card.corrupt, "starts_at": card.starts_at, "schedule_id": card.schedule_id,
    }


# ---- a task's detail ----------------------------------------------------------------------------

def artifact_list(board: Board, task: Task, extra_roots: tuple[Path, ...],
                  home: Path, local: Sequence[Path] | None = None) -> list[dict[str, Any]]:
    """The task's files that may be served, with size and kind (run on a worker thread).
    ``local``: each artifact's path on this host (:meth:`Board.local_artifacts`)."""
    out = []
    for index, raw in enumerate(task.artifacts):
        here = str(local[index]) if local is not None and index < len(local) else raw
        opened = open_servable(board, task, here, extra_roots, home)
        name = Path(raw).name or f"file-{index}"
        entry: dict[str, Any] = {"index": index, "name": name, "available": opened is not None,
                                 "size": None, "kind": kind_of(name)}
        if opened is not None:
            with opened:
                entry["size"] = opened.size
            entry["url"] = f"/api/tasks/{task.id}/artifacts/{index}/{name}"
        out.append(entry)
    return out


def open_servable(board: Board, task: Task, raw: str, extra_roots: tuple[Path, ...],
                  home: Path) -> OpenedFile | None:
    """Open ``raw`` once, as the notifier would deliver it, or None.

    The same per-task policy as chat delivery: only the task's own attachments and workspace
    (plus ``delivery.allowed_roots``), never through a link, never a hard-linked file, never a
    credential location. The caller serves the bytes from the returned descriptor, so the file
    cannot be swapped between the check and the read.
    """
    policy = build_policy(board, task, relayboard_home=home, config_file=None,
                          extra_roots=extra_roots)
    opened = policy.open(Path(raw))
    return opened if isinstance(opened, OpenedFile) else None


def kind_of(name: str) -> str:
    """``image`` only for the raster formats the page shows in ``<img>`` (never SVG)."""
    if raster_by_name(name):
        return "image"
    mime, _ = mimetypes.guess_type(name)
    if mime and mime.startswith("video/"):
        return "video"
    return "file"


async def detail(board: Board, task_id: int, extra_roots: tuple[Path, ...],
                 home: Path) -> dict[str, Any]:
    shown: TaskDetail = await board.show_task(task_id, event_limit=200)
    data = shown.to_dict()
    task = shown.task
    linked: dict[int, dict[str, Any]] = {}
    for other in (*task.parents, *task.children):
        try:
            t = await board.get_task(other)
        except TaskNotFound:  # a link to a task being deleted: show the id only
            linked[other] = {"id": other, "title": None, "status": None}
            continue
        linked[other] = {"id": t.id, "title": t.title, "status": t.status}
    data["parents"] = [linked[p] for p in task.parents]
    data["children"] = [linked[c] for c in task.children]
    try:
        # Made on another host (a board on PostgreSQL): written here from the database first.
        local: list[Path] | None = await board.local_artifacts(task.id, task.artifacts)
    except KanbanError as exc:
        logger.warning("task #%s: its files could not be fetched from the database: %s",
                    task.id, exc)
        local = None
    data["artifacts"] = await asyncio.to_thread(artifact_list, board, task, extra_roots, home,
                                                local)
    data["subscriptions"] = [s.to_dict() for s in await board.subscriptions(task_id)]
    log = board.log_path(task_id)
    size = await asyncio.to_thread(_size, log)
    data["log"] = {"size": size, "url": f"/api/tasks/{task_id}/log"}
    for run in data["runs"]:
        run.pop("workspace", None)  # host paths stay on the host
    data.pop("workspace_path", None)
    return data


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def read_log(path: Path, offset: int, max_bytes: int) -> tuple[str, int, int]:
    """(text, next offset, file size) from ``offset``; a rotated (shorter) log restarts at 0."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if offset > size:
                offset = 0
            fh.seek(offset)
            chunk = fh.read(max_bytes)
    except OSError:
        return "", 0, 0
    cut = _whole_characters(chunk)
    return chunk[:cut].decode("utf-8", errors="replace"), offset + cut, size


def _whole_characters(chunk: bytes) -> int:
    """How many bytes of ``chunk`` to send so a UTF-8 character is never cut in half (the
    rest comes with the next read)."""
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            return exc.start
    return len(chunk)
