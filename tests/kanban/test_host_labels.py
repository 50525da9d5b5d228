"""Host labels: a task created with ``host_label`` is spawned only by a dispatcher that lists
that label (``kanban.host_labels``); an unlabelled task by any dispatcher."""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from kanban.agents.profiles import Profiles
from kanban.board import Board, BoardOptions
from kanban.errors import InvalidInput
from kanban.home import Boards
from kanban.runtime.dispatcher import Dispatcher, DispatchSettings
from kanban.testing import make_task, open_board
from tests.kanban.workers.harness import AGENT_PATHS, DEADLINE, agent, serve_api, wait_until


async def test_candidates_are_the_tasks_this_host_may_run(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        gpu = await make_task(board, "train", host_label="gpu", priority=3)
        laptop = await make_task(board, "edit", host_label="laptop-1", priority=2)
        anywhere = await make_task(board, "summarise", priority=1)
        assert (gpu.host_label, anywhere.host_label) == ("gpu", None)
        assert (await board.get_task(laptop.id)).host_label == "laptop-1"

        async def ids(labels: tuple[str, ...] | None) -> list[int]:
            return [t.id for t in await board.ready_candidates(host_labels=labels)]

        assert await ids(None) == [gpu.id, laptop.id, anywhere.id]  # no filter (operators)
        assert await ids(()) == [anywhere.id]  # a dispatcher without labels
        assert await ids(("gpu",)) == [gpu.id, anywhere.id]
        assert await ids(("gpu", "laptop-1", "gpu")) == [gpu.id, laptop.id, anywhere.id]
        with pytest.raises(InvalidInput, match="invalid host label name 'two words'"):
            await make_task(board, "x", host_label="two words")
    finally:
        await board.close()


async def test_two_dispatchers_each_spawn_only_their_hosts_tasks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    observer = Boards(home, BoardOptions())
    hosts = {"gpu": Boards(home, BoardOptions()), "cpu": Boards(home, BoardOptions())}
    api = AsyncExitStack()
    try:
        board: Board = await observer.open("default")
        socket = await serve_api(api, home, observer)
        Profiles(home).create("w", command=agent("complete"), read_paths=AGENT_PATHS)
        # Priorities fix the order: each dispatcher takes its own two, then one unlabelled.
        made = {}
        for name, label, priority in (("g1", "gpu", 9), ("c1", "cpu", 8), ("g2", "gpu", 7),
                                      ("c2", "cpu", 6), ("any1", None, 5), ("any2", None, 4)):
            made[name] = (await board.create_task(name, assignee="w", host_label=label,
                                                  priority=priority)).task.id
        dispatchers = {
            label: Dispatcher(boards, Profiles(home), DispatchSettings(
                max_spawn=10, max_spawn_host=10, tmux_cleanup=False, host_labels=(label,),
                worker_api=socket),
                base_env=dict(os.environ), slugs=["default"])
            for label, boards in hosts.items()}
        spawned: dict[str, set[int]] = {}
        for label in ("gpu", "cpu"):
            mine = await hosts[label].open("default")
            report = await dispatchers[label].run_once(mine, max_new=3)
            spawned[label] = {int(s["task_id"]) for s in report.spawned}
        assert spawned == {"gpu": {made["g1"], made["g2"], made["any1"]},
                           "cpu": {made["c1"], made["c2"], made["any2"]}}

        async def all_done() -> bool:
            return all(t.status == "done" for t in await board.list_tasks())

        await wait_until(all_done, within=DEADLINE, what="every task done")
        for dispatcher in dispatchers.values():
            assert await asyncio.wait_for(dispatcher.wait_workers(DEADLINE), DEADLINE + 5)
    finally:
        await api.aclose()
        for boards in (*hosts.values(), observer):
            await boards.close()
