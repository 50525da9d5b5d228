"""The unfiltered board view reads a window of each column, not every task.

Its answer is the one the full read gives (every card, bucketed and cut in Python); the rows it
turns into cards are bounded by the window, and each column's query walks an index (no sort of
the whole column), so a board ten times larger costs the same.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.dashboard import views
from gateway.dashboard.views import BoardViews, card_json
from kanban import Board
from kanban.board import cards
from kanban.board.cards import _OPEN_ORDER, _SELECT, FINISHED_ORDER

LIMIT = 20


async def fill(board: Board, tasks: int) -> None:
    """Tasks of every status, chains among them, finished ones at varied times."""
    parent = None
    for i in range(tasks):
        made = await board.create_task(f"task {i}", assignee=f"agent-{i % 3}" if i % 4 else None,
                                       priority=i % 3,
                                       parents=[parent] if parent and i % 5 else [])
        parent = made.task.id
    # Statuses and finish times set in the file itself: claiming and completing 600 tasks
    # one by one would make this test slow without testing anything more.
    conn = sqlite3.connect(board.paths.root / "kanban.db")
    with conn:
        conn.execute("UPDATE tasks SET status = 'done', completed_at = 1000 + (id * 7) % 500 "
                     "WHERE id % 10 < 6")
        conn.execute("UPDATE tasks SET status = 'archived', completed_at = NULL, "
                     "updated_at = 2000 + id WHERE id % 10 = 6")
        conn.execute("UPDATE tasks SET status = 'blocked' WHERE id % 10 = 7")
        conn.execute("UPDATE tasks SET status = 'triage' WHERE id % 10 = 8")
    conn.close()
    await board.poll_external()


async def full_read(board: Board, archived: bool) -> dict[str, Any]:
    """The board view as every card, bucketed and cut in Python."""
    statuses = (*views.COLUMNS, "archived") if archived else views.COLUMNS
    every = await board.list_cards(include_archived=archived)
    buckets: dict[str, list[cards.Card]] = {s: [] for s in statuses}
    for card in every:
        if card.status in buckets:
            buckets[card.status].append(card)
    for status in ("done", "archived"):
        if status in buckets:
            buckets[status].sort(key=lambda c: -(c.completed_at or c.updated_at or 0.0))
    counts = {s: len(b) for s, b in buckets.items()}
    return {"counts": counts, "total": len(every) if archived else sum(counts.values()),
            "assignees": sorted({c.assignee for c in every if c.assignee}),
            "columns": [{"status": s, "count": counts[s],
                         "more": max(0, counts[s] - min(LIMIT, counts[s])),
                         "tasks": [card_json(c) for c in buckets[s][:LIMIT]]}
                        for s in statuses]}


@pytest.mark.parametrize("archived", [False, True])
async def test_window_reads_what_the_full_read_shows(board: Board, archived: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    await fill(board, 600)
    expected = await full_read(board, archived)
    built = 0
    card = cards._card

    def counting(row: tuple[Any, ...]) -> cards.Card:
        nonlocal built
        built += 1
        return card(row)

    monkeypatch.setattr(cards, "_card", counting)
    got = await BoardViews().board(board, limit=LIMIT, archived=archived, assignee=None,
                                   text=None)
    assert {k: got[k] for k in expected} == expected
    assert sum(got["counts"].values()) > 10 * LIMIT  # the board is larger than the window
    assert built <= LIMIT * len(got["columns"])  # only the cards shown were read


def test_each_column_window_walks_an_index(tmp_path: Path) -> None:
    from kanban.storage.schema import migrate

    conn = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    migrate(conn)
    for order in (_OPEN_ORDER, FINISHED_ORDER):
        plan = " | ".join(row[3] for row in conn.execute(
            f"EXPLAIN QUERY PLAN {_SELECT} WHERE t.status = ? ORDER BY {order} LIMIT ?",
            ("done", LIMIT)))
        assert "USING INDEX idx_tasks_" in plan and "TEMP B-TREE" not in plan, plan
    conn.close()
