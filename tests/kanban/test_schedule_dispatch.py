"""Schedules in the dispatch loop: a cycle makes the due occurrences (on the leader only), the
loop sleeps no longer than the next due time, and two dispatchers on one PostgreSQL board make
each occurrence once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.home import Boards
from kanban.runtime.dispatcher import Dispatcher, DispatchSettings
from kanban.runtime.scheduler import Scheduler
from kanban.runtime.wakeups import LoopHooks
from kanban.storage.backend import Storage
from kanban.storage.leader import Leadership
from kanban.testing import FakeClock
from tests.kanban.test_leader import FAST, contenders, leaders, until
from tests.storage_backends import pg_dsn

START = 1_796_770_800.0  # a fixed moment; the schedules below are hourly, in UTC
INTERVAL = 3600.0


@asynccontextmanager
async def dispatcher(home: Path, storage: Storage | None = None) -> AsyncIterator[
        tuple[Dispatcher, Board]]:
    boards = Boards(home, storage=storage)
    try:
        board = await boards.open("default")
        yield Dispatcher(boards, Profiles(home), DispatchSettings(interval_seconds=INTERVAL),
                         base_env={}), board
    finally:
        await boards.close()


async def test_a_cycle_makes_the_due_occurrence_and_reports_it(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (disp, board):
        clock = board.clock = FakeClock(START)
        schedule = await board.create_schedule("chart", every="hourly", timezone="UTC")
        report = await disp.run_cycle(board)
        assert report.scheduled == []
        clock.now = (schedule.next_run_at or 0) + 1
        report = await disp.run_cycle(board)
        [made] = report.scheduled
        assert made["schedule_id"] == schedule.id and made["task_id"] is not None
        assert "scheduled=1" in report.summary()
        # No assignee and no default one: it waits in ready for a person.
        assert (await board.get_task(made["task_id"])).status == "ready"
        assert (await disp.run_cycle(board)).scheduled == []


async def test_off_the_leader_a_cycle_makes_nothing(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (disp, board):
        clock = board.clock = FakeClock(START)
        disp.scheduler = Scheduler(leader=lambda: False)
        await board.create_schedule("chart", every="hourly", timezone="UTC")
        clock.now += 2 * INTERVAL
        assert (await disp.run_cycle(board)).scheduled == []
        assert await board.list_tasks() == []


async def test_the_loop_sleeps_no_longer_than_the_next_occurrence(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (disp, board):
        hooks = LoopHooks(boards=lambda: [board])
        assert await disp._wait_seconds([board], hooks) == pytest.approx(INTERVAL, abs=1)
        # Real time here: the loop's sleep is measured against the host's clock.
        await board.create_schedule("chart", every="every minute", timezone="UTC")
        assert await disp._wait_seconds([board], hooks) <= 60.0
        disp.scheduler = Scheduler(leader=lambda: False)  # a standby never wakes for it
        assert await disp._wait_seconds([board], hooks) == pytest.approx(INTERVAL, abs=1)


async def test_the_loop_makes_an_occurrence_when_it_falls_due(tmp_path: Path) -> None:
    """The real loop, no tick to help: a one-off task due in a moment is picked up when its
    time comes, not at the hour-long interval."""
    async with dispatcher(tmp_path) as (disp, board):
        stop = anyio.Event()
        schedule = await board.create_schedule("chart", every="every minute", timezone="UTC")
        # Move the next occurrence to just ahead, as if it were a second before the minute.
        due = await board.current_time() + 0.3

        def soon(tx: object) -> None:
            tx.execute("UPDATE schedules SET next_run_at = ? WHERE id = ?",  # type: ignore[attr-defined]
                       (due, schedule.id))

        await board.db.write(soon)  # type: ignore[arg-type]
        async with anyio.create_task_group() as group:
            group.start_soon(disp.run, stop, LoopHooks(boards=lambda: [board],
                                                       changes=board.changes))

            async def made() -> bool:
                return bool(await board.list_tasks())

            with anyio.fail_after(10):
                while not await made():
                    await board.changes.wait(board.changes.version, 0.5)
            stop.set()
        [task] = await board.list_tasks()
        assert task.schedule_id == schedule.id


@pytest.mark.postgres_only
async def test_two_dispatchers_on_postgresql_make_each_occurrence_once(tmp_path: Path) -> None:
    storage = Storage.postgres(pg_dsn(), namespace="s" + secrets.token_hex(5), pool_size=3)
    from kanban.storage.pg import drop_namespace

    try:
        async with dispatcher(tmp_path / "a", storage) as (one, board_one), \
                dispatcher(tmp_path / "b", storage) as (two, board_two):
            clock = FakeClock(START)
            board_one.clock = board_two.clock = clock
            schedule = await board_one.create_schedule("chart", every="hourly",
                                                       catch_up="all", overlap=True,
                                                       timezone="UTC")
            a = Leadership(storage, "gateway", **FAST)
            b = Leadership(storage, "gateway", **FAST)
            one.scheduler = Scheduler(leader=lambda: a.held)
            two.scheduler = Scheduler(leader=lambda: b.held)
            async with contenders(a, b) as people:
                await until(lambda: len(leaders(people)) == 1
                            and all(p.leadership.state != "starting" for p in people),
                            "one leader")
                clock.now = (schedule.next_run_at or 0) + 2 * INTERVAL + 5  # three are due
                reports = [await one.run_cycle(board_one), await two.run_cycle(board_two)]
                made = [r.scheduled for r in reports]
                leader_index = 0 if a.held else 1
                assert len(made[leader_index]) == 3 and made[1 - leader_index] == []

            # Both believing they lead (a lost term not noticed yet): still once each.
            one.scheduler = two.scheduler = Scheduler()
            clock.now += 2 * INTERVAL
            both = await asyncio.gather(one.run_cycle(board_one), two.run_cycle(board_two))
            assert sum(len(r.scheduled) for r in both) == 2
            tasks = await board_two.list_tasks()
            assert len(tasks) == 5
            assert len({t.id for t in tasks}) == 5
    finally:
        drop_namespace(pg_dsn(), storage.namespace)
