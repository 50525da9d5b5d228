"""Cross-process stress (bounded to seconds): the parent gate under a create/link vs claim race
(S30), and exactly-once claims among competing processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kanban.testing import make_task, open_board

RACER = Path(__file__).parent / "stress" / "racer.py"


def _spawn(role: str, db: Path, arg: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(RACER), role, str(db), arg],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


@pytest.mark.slow
async def test_no_child_is_claimed_while_a_parent_is_unfinished_S30(tmp_path: Path) -> None:
    board = await open_board(tmp_path)  # creates the schema before the racers start
    db = board.db.path
    await board.close()
    claimers = [_spawn("claimer", db, "40"), _spawn("claimer", db, "40")]
    creator = _spawn("creator", db, "120")
    _finish(creator)
    (db.parent / "stop").write_text("")
    for proc in claimers:
        _finish(proc)

    conn = sqlite3.connect(db)
    try:
        done_at = {int(t): int(e) for t, e in conn.execute(
            "SELECT task_id, id FROM task_events WHERE kind = 'completed'")}
        link_events = conn.execute(
            "SELECT task_id, id, json_extract(payload, '$.parent') FROM task_events "
            "WHERE kind = 'linked'").fetchall()
        claims = conn.execute(
            "SELECT task_id, id FROM task_events WHERE kind = 'claimed'").fetchall()
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status"))
    finally:
        conn.close()
    parents_linked: dict[int, list[tuple[int, int]]] = {}
    for child, event_id, parent in link_events:
        parents_linked.setdefault(int(child), []).append((int(parent), int(event_id)))
    violations = []
    for child, claim_event in claims:
        for parent, linked_event in parents_linked.get(int(child), []):
            # A parent linked before this claim must have completed before it too.
            if linked_event < claim_event and done_at.get(parent, 10**12) > claim_event:
                violations.append((child, parent))
    assert violations == []
    assert len(claims) == 240  # every task ran exactly once
    assert statuses == {"done": 240}


@pytest.mark.slow
async def test_each_task_is_claimed_by_exactly_one_process(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    ids = [(await make_task(board, f"t{i}")).id for i in range(40)]
    db = board.db.path
    await board.close()
    arg = ",".join(map(str, ids))
    grabbers = [_spawn("grabber", db, arg) for _ in range(4)]
    won: list[int] = []
    for proc in grabbers:
        line = _finish(proc).strip()
        won.extend(int(x) for x in line.split(",") if x)
    assert sorted(won) == ids
    conn = sqlite3.connect(db)
    try:
        runs = conn.execute("SELECT task_id, COUNT(*) FROM task_runs GROUP BY task_id").fetchall()
    finally:
        conn.close()
    assert all(count == 1 for _, count in runs) and len(runs) == 40
