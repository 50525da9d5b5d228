"""``max_spawn`` is a live cap across dispatchers: the claim transaction counts running tasks, so
several dispatchers on one board (each its own database connection) never overshoot it."""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from kanban.agents.profiles import Profiles
from kanban.board import Board, BoardOptions
from kanban.errors import CapReached, InvalidInput, NotClaimable
from kanban.home import Boards
from kanban.runtime.dispatcher import Dispatcher, DispatchSettings
from tests.kanban.workers.harness import AGENT_PATHS, DEADLINE, agent, serve_api, wait_until

CAP = 8
TASKS = 30


async def test_claim_refuses_at_max_running_inside_the_transaction(tmp_path: Path) -> None:
    async with Board.open(tmp_path / "kanban.db") as board:
        ids = [(await board.create_task(f"t{i}")).task.id for i in range(3)]
        await board.claim(ids[0], max_running=2)
        await board.claim(ids[1])  # a manual claim counts as running too
        with pytest.raises(CapReached, match=r"max_spawn reached \(2 of 2 running\)") as refused:
            await board.claim(ids[2], max_running=2)
        assert isinstance(refused.value, NotClaimable)
        assert (await board.get_task(ids[2])).status == "ready"
        assert [e.kind for e in await board.events(task_id=ids[2])] == ["created"]
        await board.claim(ids[2], max_running=3)
        assert await board.count_running() == 3
        with pytest.raises(InvalidInput, match="max_running"):
            await board.claim(ids[2], max_running=-1)


async def test_three_dispatchers_never_run_more_than_max_spawn(tmp_path: Path) -> None:
    home = tmp_path / "home"
    records = tmp_path / "records"
    records.mkdir()
    homes = [Boards(home, BoardOptions()) for _ in range(3)]
    observer = Boards(home, BoardOptions())
    dispatchers: list[Dispatcher] = []
    stop = asyncio.Event()
    api = AsyncExitStack()
    try:
        board = await observer.open("default")
        socket = await serve_api(api, home, observer)
        profiles = Profiles(home)
        profiles.create("w", command=agent("sleep", "0.4", "complete"), read_paths=AGENT_PATHS,
                        write_paths=[str(records)], env={"AGENT_RECORD_DIR": str(records)})
        ids = [(await board.create_task(f"t{i}", assignee="w")).task.id for i in range(TASKS)]
        for boards in homes:
            # Each dispatcher has its own Boards, hence its own connection to the file; the
            # host cap is lifted so only max_spawn can hold them back.
            settings = DispatchSettings(max_spawn=CAP, max_spawn_host=3 * CAP,
                                        tmux_cleanup=False, poll_seconds=0.02,
                                        worker_api=socket)
            dispatchers.append(Dispatcher(boards, Profiles(home), settings,
                                          base_env=dict(os.environ), slugs=["default"]))
        runners = [asyncio.create_task(d.run(stop), name=f"dispatcher-{i}")
                   for i, d in enumerate(dispatchers)]
        samples: list[int] = []

        async def all_done() -> bool:
            samples.append(await board.count_running())
            done = [t for t in await board.list_tasks() if t.status == "done"]
            return len(done) == TASKS

        await wait_until(all_done, within=DEADLINE * 3, what="every task done")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runners), DEADLINE)
        # The sampled count never passed the cap ...
        assert max(samples) <= CAP, samples
        # ... and the event log, in commit order, shows it exactly: every claim and every end.
        running: set[int] = set()
        peak = 0
        for event in await board.events(limit=10_000):
            if event.kind == "claimed":
                running.add(event.task_id)
                peak = max(peak, len(running))
            elif event.kind == "completed":
                running.discard(event.task_id)
            else:
                assert event.kind in ("created", "spawned"), event
        assert CAP - 2 <= peak <= CAP  # reached (so the test can fail), never passed
        assert sorted(t.id for t in await board.list_tasks(status="done")) == ids
    finally:
        stop.set()
        for dispatcher in dispatchers:
            await dispatcher.aclose(terminate=True)
        await api.aclose()
        for boards in [*homes, observer]:
            await boards.close()
