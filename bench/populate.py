"""Fill a board with many tasks quickly, for the benchmarks (not a kernel API).

The board is made by the kernel (``Boards.open``: schema and migrations), then its SQLite file
takes the rows directly in one transaction: tasks spread over the columns as on a board that has
run for a while (most done), chains of parent → child links, and each task's ``created`` event.
100,000 tasks take a few seconds this way; through ``create_task`` they take minutes.

Usage as a script: python bench/populate.py HOME [--tasks N] [--board SLUG]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from pathlib import Path

from kanban import Boards
from kanban.home import DB_NAME

# Per 20 tasks: most are done, as on a board in use for months; the open ones keep the columns
# the dashboard shows busy (and the dispatcher's ready queue non-empty).
MIX = ("done",) * 14 + ("archived", "ready", "ready", "todo", "blocked", "triage")
BODY = "A description of some size, as a real task carries. " * 8


async def _make_board(home: Path, slug: str) -> Path:
    boards = Boards(home)
    try:
        if slug != "default" and slug not in {b.slug for b in await boards.list()}:
            await boards.create(slug)
        await boards.open(slug)  # the schema, every migration applied
        return boards.root / slug / DB_NAME
    finally:
        await boards.close()


def populate(home: Path, tasks: int, slug: str = "default") -> Path:
    """``tasks`` tasks on ``slug`` of ``home`` (made if needed); returns the database file.
    Every fifth task is a child of the one before it (a ``todo`` child of an open parent)."""
    db = asyncio.run(_make_board(home, slug))
    now = time.time() - tasks  # one task a second, oldest first
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        start = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM tasks").fetchone()[0]) + 1
        rows, links, events = [], [], []
        for i in range(tasks):
            task_id = start + i
            status = MIX[i % len(MIX)]
            created = now + i
            parent = task_id - 1 if i % 5 and i > 0 else None
            if parent is not None and status not in ("done", "archived"):
                status = "todo" if MIX[(i - 1) % len(MIX)] not in ("done", "archived") \
                    else status
            done = created + 30 if status in ("done", "archived") else None
            rows.append((task_id, f"Task {task_id}: {status} work item", BODY, status,
                         f"agent-{i % 7}", i % 5, created, done or created, done, "bench"))
            if parent is not None:
                links.append((parent, task_id, created))
            events.append((task_id, "created", json.dumps({"status": status}), created))
        conn.executemany(
            "INSERT INTO tasks (id, title, body, status, assignee, priority, created_at, "
            "updated_at, completed_at, created_by) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        conn.executemany("INSERT INTO task_links (parent_id, child_id, created_at) "
                         "VALUES (?,?,?)", links)
        conn.executemany("INSERT INTO task_events (task_id, kind, payload, created_at) "
                         "VALUES (?,?,?,?)", events)
        conn.execute("COMMIT")
        # Fold the write-ahead log into the file, as a board in use has long done: otherwise
        # the first commits measured pay for checkpointing the whole fill.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--board", default="default")
    args = parser.parse_args()
    started = time.perf_counter()
    db = populate(args.home, args.tasks, args.board)
    print(f"{args.tasks} tasks in {db} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
