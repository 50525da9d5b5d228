"""``Boards.worker_runs``: which active run, on any board of a home, a local process is the
recorded worker of — what the command line and the dashboard ask to know who a process is."""

from __future__ import annotations

import os
from pathlib import Path

from kanban.board.runs import HOSTNAME
from kanban.home import Boards
from kanban.runtime.spawn import process_start_time


async def test_the_run_of_a_recorded_worker_pid_is_found_on_any_board(tmp_path: Path) -> None:
    boards = Boards(tmp_path / "home")
    try:
        await boards.create("other")
        quiet = await boards.open("default")
        await quiet.create_task("not running")
        board = await boards.open("other")
        task = (await board.create_task("running here", assignee="coder")).task
        claim = await board.claim(task.id, claimed_by="dispatcher", profile="coder")
        me = os.getpid()
        await board.set_worker(claim.run_id, pid=me, started_at=process_start_time(me),
                               host=HOSTNAME)

        (found,) = await boards.worker_runs({me, 1}, HOSTNAME)
        assert (found.slug, found.task_id, found.run_id) == ("other", task.id, claim.run_id)
        assert (found.lease, found.profile, found.pid) == (claim.lease, "coder", me)
        assert found.started_at == process_start_time(me)
        # Another host's worker with the same pid, or another pid: not this process.
        assert await boards.worker_runs({me}, "another-host") == []
        assert await boards.worker_runs({me + 100_000}, HOSTNAME) == []
        assert await boards.worker_runs(set(), HOSTNAME) == []
        # A finished run is no longer anyone's.
        await board.complete(task.id, lease=claim.lease)
        assert await boards.worker_runs({me}, HOSTNAME) == []
    finally:
        await boards.close()
