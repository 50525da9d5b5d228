"""``kanban boards remove`` while tasks run on the board: refused, or ``--force`` stops the
workers (only processes whose start time matches) and releases the runs first."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanban import Board, Conflict
from kanban.runtime.spawn import process_start_time
from tests.gateway.conftest import Cli

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for proc in made:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def record_worker(db: Path, task_id: int, pid: int, started_at: float | None) -> None:
    """What a dispatcher does after a spawn: the run's worker pid and start time."""

    async def run() -> None:
        async with Board.open(db, slug=db.parent.name) as board:
            task = await board.get_task(task_id)
            assert task.current_run_id is not None
            await board.set_worker(task.current_run_id, pid=pid, started_at=started_at)

    asyncio.run(run())


def test_remove_is_refused_while_runs_are_active(rb: Cli) -> None:
    rb.ok("kanban", "boards", "create", "team")
    first = rb.create("manual lane", board="team")
    rb.json("kanban", "--board", "team", "claim", str(first))
    err = rb.fail("kanban", "boards", "remove", "team")
    assert isinstance(err, Conflict)
    assert str(err) == (f"board 'team' has 1 active run(s) (task {first}); let them finish, "
                        "or use --force to stop their workers and release the runs")
    assert isinstance(rb.fail("kanban", "boards", "remove", "team", "--delete"), Conflict)
    # Nothing moved: the board and its running task are still there.
    assert rb.show(first, board="team")["status"] == "running"
    assert [b["slug"] for b in rb.json("kanban", "boards", "list")] == ["default", "team"]


def test_force_stops_matching_workers_and_releases_every_run(
        rb: Cli, sleepers: list[subprocess.Popen[bytes]]) -> None:
    rb.ok("kanban", "boards", "create", "team")
    db = rb.home / "boards" / "team" / "kanban.db"
    ours, stranger, manual = (rb.create(t, board="team") for t in ("ours", "stranger", "manual"))
    for task_id in (ours, stranger, manual):
        rb.json("kanban", "--board", "team", "claim", str(task_id))
    worker = subprocess.Popen(SLEEPER, start_new_session=True)
    other = subprocess.Popen(SLEEPER, start_new_session=True)
    sleepers.extend([worker, other])
    started = process_start_time(worker.pid)
    assert started is not None
    record_worker(db, ours, worker.pid, started)
    # A pid whose start time does not match (a recycled pid) must never be signalled.
    record_worker(db, stranger, other.pid, 1.0)

    out = rb.json("kanban", "boards", "remove", "team", "--force")
    assert out["released"] == [ours, stranger, manual]
    assert worker.wait(timeout=30) is not None  # TERM reached it
    assert other.poll() is None  # the stranger lives on
    archived = rb.home / "boards" / "_archived" / out["archived_as"] / "kanban.db"

    async def read() -> None:
        async with Board.open(archived, slug="team") as board:
            for task_id in (ours, stranger, manual):
                task = await board.get_task(task_id)
                assert task.status == "ready" and task.current_run_id is None
                kinds = [e for e in await board.events(task_id=task_id) if e.kind == "released"]
                assert len(kinds) == 1 and kinds[0].payload["forced"] is True
                assert kinds[0].payload["reason"] == "board 'team' is being removed"
            assert await board.active_runs() == []

    asyncio.run(read())
    assert not (rb.home / "boards" / "team").exists()


def test_force_on_a_quiet_board_releases_nothing(rb: Cli) -> None:
    rb.ok("kanban", "boards", "create", "calm")
    rb.create("waiting", board="calm")
    out = rb.ok("kanban", "boards", "remove", "calm", "--force", "--delete")
    assert out.strip() == "Deleted board calm"
    assert not (rb.home / "boards" / "calm").exists()
