"""Scheduled and recurring tasks in the kernel, driven by the board's clock (never a real wait):
one-off start times, cron occurrences, catch-up policies, overlap, restarts, and two processes on
one board making each occurrence once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kanban.board import Board
from kanban.errors import Conflict, InvalidInput, NotClaimable, ScheduleNotFound
from kanban.models import Event
from kanban.testing import FakeClock, fake_clock, make_task, open_board

BERLIN = ZoneInfo("Europe/Berlin")
# Mon 7 Dec 2026, 23:00 in Berlin: the next "daily 09:00" is Tue 8 Dec 09:00.
MONDAY_NIGHT = datetime(2026, 12, 7, 23, 0, tzinfo=BERLIN).timestamp()
TUESDAY_9 = datetime(2026, 12, 8, 9, 0, tzinfo=BERLIN).timestamp()
DAY = 86400.0


def berlin(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, BERLIN).strftime("%a %d %H:%M")


async def schedule_events(board: Board, kind: str) -> list[Event]:
    return [e for e in await board.events(limit=10_000) if e.kind == kind]


async def finish(board: Board, task_id: int) -> None:
    claim = await board.claim(task_id)
    await board.complete(task_id, lease=claim.lease, result="chart posted")


# ---- one-off times ---------------------------------------------------------------------------

async def test_a_task_with_a_start_time_waits_for_it_then_runs_once(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        task = await make_task(board, "report", not_before=TUESDAY_9)
        assert task.status == "ready" and task.waiting_until == TUESDAY_9
        assert await board.ready_candidates() == []
        assert await board.next_wakeup() == TUESDAY_9
        with pytest.raises(NotClaimable, match="not before"):
            await board.claim(task.id)
        clock.now = TUESDAY_9 + 0.5
        assert [t.id for t in await board.ready_candidates()] == [task.id]
        await board.claim(task.id)
        with pytest.raises(NotClaimable):
            await board.claim(task.id)
    finally:
        await board.close()


async def test_the_start_time_survives_a_restart_and_a_missed_time_runs_once(
        tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    fake_clock(board, start=MONDAY_NIGHT)
    task = await make_task(board, "report", not_before=TUESDAY_9)
    await board.close()
    # Down over the start time (and a week beyond): at start it is claimable, exactly once.
    board = await open_board(tmp_path)
    try:
        fake_clock(board, start=TUESDAY_9 + 7 * DAY)
        again = await board.get_task(task.id)
        assert again.not_before == TUESDAY_9 and again.status == "ready"
        assert [t.id for t in await board.ready_candidates()] == [task.id]
        await board.claim(task.id)
        detail = await board.show_task(task.id)
        assert len(detail.runs) == 1
        assert await board.ready_candidates() == []
    finally:
        await board.close()


async def test_unblock_starts_a_waiting_task_at_once_and_assign_keeps_its_time(
        tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        fake_clock(board, start=MONDAY_NIGHT)
        task = await make_task(board, "report", not_before=TUESDAY_9)
        reassigned = await board.assign(task.id, "charts")
        assert reassigned.not_before == TUESDAY_9  # a new profile does not move the time
        [started] = await board.unblock([task.id])
        assert started.status == "ready" and started.not_before is None
        assert [e.kind for e in (await board.show_task(task.id)).events][-1] == "started_now"
        await board.claim(task.id)
    finally:
        await board.close()


async def test_a_start_time_and_parents_both_gate_the_task(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        parent = await make_task(board, "data")
        child = await make_task(board, "chart", parents=[parent.id], not_before=TUESDAY_9)
        assert child.status == "todo"
        await finish(board, parent.id)
        assert (await board.get_task(child.id)).status == "ready"
        assert await board.ready_candidates() == []  # ready, but its time has not come
        clock.now = TUESDAY_9
        assert [t.id for t in await board.ready_candidates()] == [child.id]
    finally:
        await board.close()


# ---- recurring schedules ---------------------------------------------------------------------

async def test_each_occurrence_makes_one_task_from_the_template(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        schedule = await board.create_schedule(
            "Sales chart", every="daily 09:00", timezone="Europe/Berlin", body="last 7 days",
            assignee="charts", priority=5, max_runtime_seconds=600, skills=["plots"],
            subscriptions=[{"platform": "telegram", "chat": "42", "thread": "7"}],
            created_by="ana")
        assert schedule.ref == "S1" and schedule.cron == "0 9 * * *"
        assert schedule.next_run_at == TUESDAY_9
        assert await board.fire_schedules() == []  # not due yet
        assert await board.next_schedule_at() == TUESDAY_9

        clock.now = TUESDAY_9 + 2
        [fired] = await board.fire_schedules()
        assert fired.due_at == TUESDAY_9 and fired.task_id is not None
        assert await board.fire_schedules() == []  # the same moment again: nothing new
        task = await board.get_task(fired.task_id)
        assert (task.title, task.body, task.assignee, task.priority, task.max_runtime_seconds,
                task.skills, task.status, task.schedule_id) == (
            "Sales chart", "last 7 days", "charts", 5, 600, ["plots"], "ready", schedule.id)
        [sub] = await board.subscriptions(task.id)
        assert (sub.platform, sub.chat, sub.thread) == ("telegram", "42", "7")
        after = await board.get_schedule(schedule.id)
        assert berlin(after.next_run_at or 0) == "Wed 09 09:00"
        assert after.last_task_id == task.id and after.occurrences == 1
    finally:
        await board.close()


async def test_occurrences_stay_at_local_time_across_daylight_saving(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=datetime(2027, 3, 26, 12, 0, tzinfo=BERLIN).timestamp())
        schedule = await board.create_schedule("t", every="daily 09:00", overlap=True,
                                               timezone="Europe/Berlin")
        seen = []
        for _ in range(4):  # Sat 27, Sun 28 (clocks go forward at 02:00), Mon 29, Tue 30
            clock.now = (await board.get_schedule(schedule.id)).next_run_at or 0
            [fired] = await board.fire_schedules()
            seen.append(berlin(fired.due_at))
        assert seen == ["Sat 27 09:00", "Sun 28 09:00", "Mon 29 09:00", "Tue 30 09:00"]
    finally:
        await board.close()


@pytest.mark.parametrize(("policy", "made"), [("none", 0), ("last", 1), ("all", 3)])
async def test_missed_occurrences_follow_the_catch_up_policy(
        tmp_path: Path, policy: str, made: int) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        schedule = await board.create_schedule("t", every="daily 09:00", catch_up=policy,
                                               overlap=True, timezone="Europe/Berlin")
        await board.close()
        # Down from Monday night to Thursday noon: Tue, Wed and Thu 09:00 were missed.
        board = await open_board(tmp_path)
        clock = fake_clock(board, start=TUESDAY_9 + 2 * DAY + 3 * 3600)
        fired = await board.fire_schedules()
        assert len(fired) == made
        if policy == "last":
            assert berlin(fired[0].due_at) == "Thu 10 09:00"
        if policy == "all":
            assert [berlin(f.due_at) for f in fired] == ["Tue 08 09:00", "Wed 09 09:00",
                                                        "Thu 10 09:00"]
        [missed] = await schedule_events(board, "occurrence_skipped") or [None]
        if made < 3:
            assert missed is not None and missed.payload["count"] == 3 - made
        assert (await board.get_schedule(schedule.id)).next_run_at == TUESDAY_9 + 3 * DAY
        assert await board.fire_schedules() == []
        # An occurrence picked up on time (within a minute) runs under every policy.
        clock.now = TUESDAY_9 + 3 * DAY + 20
        assert len(await board.fire_schedules()) == 1
    finally:
        await board.close()


async def test_an_occurrence_is_skipped_while_the_previous_one_runs(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        schedule = await board.create_schedule("t", every="hourly", timezone="UTC")
        clock.now = schedule.next_run_at or 0
        [first] = await board.fire_schedules()
        assert first.task_id is not None
        await board.claim(first.task_id)  # still running an hour later
        clock.advance(3600)
        [second] = await board.fire_schedules()
        assert second.task_id is None and second.skipped is not None
        assert f"task {first.task_id}" in second.skipped
        [event] = await schedule_events(board, "occurrence_skipped")
        assert event.task_id is None and event.payload["schedule_id"] == schedule.id
        task = await board.get_task(first.task_id)
        run_id = task.current_run_id
        assert run_id is not None
        lease = (await board.show_task(first.task_id)).runs[-1].lease
        await board.complete(first.task_id, lease=lease)
        clock.advance(3600)
        [third] = await board.fire_schedules()
        assert third.task_id is not None
    finally:
        await board.close()


async def test_with_overlap_occurrences_run_side_by_side(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        schedule = await board.create_schedule("t", every="every 15 minutes", overlap=True,
                                               timezone="UTC")
        made = []
        for _ in range(3):
            clock.now = (await board.get_schedule(schedule.id)).next_run_at or 0
            made.extend(f.task_id for f in await board.fire_schedules())
        assert len(made) == 3 and None not in made
        assert {t.status for t in await board.list_tasks()} == {"ready"}
    finally:
        await board.close()


async def test_pause_resume_and_remove(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        schedule = await board.create_schedule("t", every="daily 09:00", timezone="Europe/Berlin")
        paused = await board.pause_schedule(schedule.id)
        assert paused.state == "paused"
        with pytest.raises(Conflict, match="paused already"):
            await board.pause_schedule(schedule.id)
        clock.now = TUESDAY_9 + 3 * 3600
        assert await board.fire_schedules() == []
        assert await board.next_schedule_at() is None
        resumed = await board.resume_schedule(schedule.id)
        # What fell while it was paused is not caught up: the next is tomorrow's.
        assert resumed.state == "active" and resumed.next_run_at == TUESDAY_9 + DAY
        assert await board.fire_schedules() == []
        task = await board.run_schedule_now(schedule.id, by="ana")
        assert task.schedule_id == schedule.id and task.created_by == "ana"
        assert (await board.get_schedule(schedule.id)).next_run_at == TUESDAY_9 + DAY
        await board.remove_schedule(schedule.id)
        with pytest.raises(ScheduleNotFound, match="S1 not found"):
            await board.get_schedule(schedule.id)
        assert await board.list_schedules() == []
        assert (await board.get_task(task.id)).status == "ready"  # its tasks stay
    finally:
        await board.close()


@pytest.mark.parametrize(("every", "message"), [
    ("sometimes", "is not a schedule"),
    ("61 * * * *", "is not a schedule"),
    ("0 0 9 * * *", "five cron fields"),
    ("every 90 minutes", "1-59 minutes"),
])
async def test_a_bad_schedule_is_refused_in_one_line(tmp_path: Path, every: str,
                                                     message: str) -> None:
    board = await open_board(tmp_path)
    try:
        with pytest.raises(InvalidInput, match=message):
            await board.create_schedule("t", every=every, timezone="UTC")
        with pytest.raises(InvalidInput, match="unknown time zone"):
            await board.create_schedule("t", every="hourly", timezone="Mars/Olympus")
        with pytest.raises(InvalidInput, match="catch-up"):
            await board.create_schedule("t", every="hourly", timezone="UTC", catch_up="some")
        assert await board.list_schedules() == []
    finally:
        await board.close()


async def test_two_processes_make_each_occurrence_once(tmp_path: Path) -> None:
    """Two board connections (two gateways' worth) firing at the same moment, both believing
    they should: the unique (schedule, due time) key and the schedule's row lock leave one task
    per occurrence."""
    first = await open_board(tmp_path)
    second = await open_board(tmp_path)
    try:
        clock = FakeClock(MONDAY_NIGHT)
        first.clock = second.clock = clock
        schedules = [await first.create_schedule(f"s{i}", every="hourly", overlap=True,
                                                 catch_up="all", timezone="UTC")
                     for i in range(3)]
        clock.now += 5 * 3600 + 30  # five occurrences of each are due
        results = await asyncio.gather(*(b.fire_schedules() for b in (first, second, first,
                                                                      second)))
        fired = [f for batch in results for f in batch]
        assert len(fired) == 15
        assert len({(f.schedule_id, f.due_at) for f in fired}) == 15
        tasks = await first.list_tasks()
        assert len(tasks) == 15
        assert sorted({t.schedule_id for t in tasks}) == [s.id for s in schedules]
    finally:
        await first.close()
        await second.close()


async def test_a_schedule_is_caught_up_within_the_limit(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        await board.create_schedule("t", every="every minute", catch_up="all", overlap=True,
                                    timezone="UTC")
        clock.advance(30 * DAY)  # 43,200 missed minutes
        fired = await board.fire_schedules()
        assert len(fired) == 100
        [skipped] = await schedule_events(board, "occurrence_skipped")
        assert skipped.payload["more_before"] is True
    finally:
        await board.close()


async def test_a_schedule_that_cannot_be_read_is_paused_and_the_others_go_on(
        tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        clock = fake_clock(board, start=MONDAY_NIGHT)
        broken = await board.create_schedule("broken", every="hourly", timezone="UTC")
        fine = await board.create_schedule("fine", every="hourly", timezone="UTC")

        def corrupt(tx: object) -> None:
            tx.execute("UPDATE schedules SET cron = 'every blue moon' WHERE id = ?",  # type: ignore[attr-defined]
                       (broken.id,))

        await board.db.write(corrupt)  # type: ignore[arg-type]
        clock.advance(3600)
        fired = await board.fire_schedules()
        assert [f.schedule_id for f in fired] == [fine.id]
        assert (await board.get_schedule(broken.id)).state == "paused"
        [paused] = await schedule_events(board, "schedule_paused")
        assert "cannot be evaluated" in paused.payload["reason"]
        clock.advance(3600)
        assert [f.schedule_id for f in await board.fire_schedules()] == [fine.id]
    finally:
        await board.close()
