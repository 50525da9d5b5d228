"""Cross-process stress (bounded to seconds): the parent gate under a create/link vs claim race,
and exactly-once claims among competing processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kanban.board import Board
from kanban.testing import make_task, open_board

RACER = Path(__file__).parent / "stress" / "racer.py"


def _spawn(role: str, db: Path, arg: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(RACER), role, str(db), arg],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


async def _rows(board: Board, sql: str) -> list[tuple[Any, ...]]:
    return await board.db.read(lambda tx: tx.tuples(sql))


async def _snapshot(board: Board) -> tuple[dict[str, int], list[tuple[Any, ...]]]:
    statuses = {str(s): int(n) for s, n in
                await _rows(board, "SELECT status, COUNT(*) FROM tasks GROUP BY status")}
    pending = await _rows(
        board, "SELECT id, status FROM tasks WHERE status != 'done' ORDER BY id LIMIT 20")
    return statuses, pending


async def _wait_all_done(board: Board, total: int, claimers: list[subprocess.Popen[str]], *,
                         within: float) -> None:
    """Wait on the board's state, not the clock: every task done, or fail saying what was still
    pending (and whether a claimer died) once ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        statuses, pending = await _snapshot(board)
        if statuses == {"done": total}:
            return
        exited = [(p.pid, p.returncode) for p in claimers if p.poll() is not None]
        if exited or time.monotonic() > deadline:
            errors = [p.communicate(timeout=5)[1].strip() for p in claimers
                      if p.returncode is not None]
            raise AssertionError(
                f"after {within:.0f} s: {statuses} of {total} tasks; first not done "
                f"(id, status): {pending}; claimers exited early: {exited} {errors}")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_no_child_is_claimed_while_a_parent_is_unfinished(tmp_path: Path) -> None:
    board = await open_board(tmp_path)  # creates the schema before the racers start
    db = board.db.path
    # The claimers' own bound is only a safety net (far beyond the wait below); they stop when
    # told to, once the board says every task is done.
    claimers = [_spawn("claimer", db, "110"), _spawn("claimer", db, "110")]
    try:
        creator = _spawn("creator", db, "120")
        await asyncio.to_thread(_finish, creator, 50)
        await _wait_all_done(board, 240, claimers, within=50)
    finally:
        (db.parent / "stop").write_text("")
    for proc in claimers:
        await asyncio.to_thread(_finish, proc, 10)

    try:
        done_at = {int(t): int(e) for t, e in await _rows(
            board, "SELECT task_id, id FROM task_events WHERE kind = 'completed'")}
        link_events = [(t, e, json.loads(p)["parent"]) for t, e, p in await _rows(
            board, "SELECT task_id, id, payload FROM task_events WHERE kind = 'linked'")]
        claims = await _rows(board, "SELECT task_id, id FROM task_events WHERE kind = 'claimed'")
        statuses = dict(await _rows(board, "SELECT status, COUNT(*) FROM tasks GROUP BY status"))
    finally:
        await board.close()
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
    arg = ",".join(map(str, ids))
    grabbers = [_spawn("grabber", db, arg) for _ in range(4)]
    won: list[int] = []
    try:
        for proc in grabbers:
            line = (await asyncio.to_thread(_finish, proc)).strip()
            won.extend(int(x) for x in line.split(",") if x)
        assert sorted(won) == ids
        runs = await _rows(board, "SELECT task_id, COUNT(*) FROM task_runs GROUP BY task_id")
    finally:
        await board.close()
    assert all(count == 1 for _, count in runs) and len(runs) == 40
