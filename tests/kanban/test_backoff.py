"""Requeues and crash retries back off (a not-before time on the task), so a worker that keeps
exiting at once cannot spin the dispatcher."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from kanban.backoff import Backoff
from kanban.board import Board
from kanban.errors import NotClaimable
from kanban.testing import fake_clock, make_task, open_board


async def test_an_exit_75_loop_over_10_seconds_no_longer_spins(tmp_path: Path) -> None:
    board = await open_board(tmp_path, backoff_base_seconds=1.0, backoff_cap_seconds=300.0)
    try:
        clock = fake_clock(board, start=1_000_000.0)
        task = await make_task(board, "rate limited")
        end = clock.now + 10
        requeues = 0
        delays = []
        # What a dispatcher does: claim whatever is claimable, else sleep until next_wakeup().
        while clock.now < end:
            if [t.id for t in await board.ready_candidates()] != [task.id]:
                wake = await board.next_wakeup()
                assert wake is not None and wake > clock.now
                clock.now = wake
                continue
            claim = await board.claim(task.id)
            await board.requeue(claim.run_id, reason="rate limited", exit_code=75)
            requeues += 1
            after = await board.get_task(task.id)
            assert after.status == "ready" and after.consecutive_requeues == requeues
            assert after.not_before is not None
            delays.append(after.not_before - clock.now)
        # 1 + 2 + 4 (jittered down by at most 10%) fits in 10 s, the next 8 s wait does not.
        assert 4 <= requeues <= 5, delays
        assert all(b > a for a, b in itertools.pairwise(delays)), delays
        assert 0.9 <= delays[0] <= 1.0
    finally:
        await board.close()


async def test_a_backing_off_task_is_refused_then_claimable(tmp_path: Path) -> None:
    board = await open_board(tmp_path, backoff_jitter=0.0)
    try:
        clock = fake_clock(board)
        task = await make_task(board, "t")
        claim = await board.claim(task.id)
        outcome = await board.record_failure(task.id, run_id=claim.run_id, kind="crashed",
                                             error="exit 1")
        assert outcome.status == "ready" and outcome.not_before == pytest.approx(clock.now + 1)
        assert await board.ready_candidates() == []
        assert await board.next_wakeup() == outcome.not_before
        with pytest.raises(NotClaimable, match=r"retry not before .* backing off"):
            await board.claim(task.id)
        event = next(e for e in await board.events(task_id=task.id) if e.kind == "crashed")
        assert event.payload["not_before"] == outcome.not_before
        clock.advance(1.001)
        assert [t.id for t in await board.ready_candidates()] == [task.id]
        assert await board.next_wakeup() is None
        claimed = await board.claim(task.id)
        assert (await board.get_task(task.id)).not_before is None
        await board.complete(task.id, lease=claimed.lease)
    finally:
        await board.close()


async def test_the_delay_doubles_up_to_the_cap(tmp_path: Path) -> None:
    board = await open_board(tmp_path, backoff_base_seconds=2.0, backoff_cap_seconds=10.0,
                             backoff_jitter=0.0)
    try:
        assert [board.backoff_delay(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
        assert board.backoff_delay(10_000) == 10.0
    finally:
        await board.close()


async def test_jitter_only_shortens(board: Board) -> None:
    delays = {board.backoff_delay(3) for _ in range(50)}
    assert all(3.6 <= d <= 4.0 for d in delays) and len(delays) > 1


async def test_unblock_and_operator_actions_clear_the_backoff(board: Board) -> None:
    fake_clock(board)
    flaky = await make_task(board, "flaky", max_retries=5)
    claim = await board.claim(flaky.id)
    await board.record_failure(flaky.id, run_id=claim.run_id, kind="crashed", error="x")
    assert (await board.get_task(flaky.id)).not_before is not None
    assigned = await board.assign(flaky.id, "other")
    assert assigned.not_before is None
    claim = await board.claim(flaky.id)
    await board.requeue(claim.run_id, reason="429")
    blocked = await board.block(flaky.id, "look at it", as_operator=True)
    assert blocked.not_before is None
    [unblocked] = await board.unblock([flaky.id])
    assert unblocked.not_before is None and unblocked.consecutive_requeues == 0
    await board.claim(flaky.id)


async def test_a_tripped_breaker_sets_no_backoff(board: Board) -> None:
    task = await make_task(board, "t", max_retries=1)
    claim = await board.claim(task.id)
    outcome = await board.record_failure(task.id, run_id=claim.run_id, kind="timed_out",
                                         error="slow")
    assert outcome.tripped and outcome.not_before is None
    assert (await board.get_task(task.id)).not_before is None


def test_the_one_formula_caps_and_only_shortens() -> None:
    schedule = Backoff(base=0.5, cap=8.0, jitter=0.25)
    for retry, ceiling in [(0, 0.5), (1, 0.5), (2, 1.0), (5, 8.0), (10_000, 8.0)]:
        assert 0.75 * ceiling <= schedule.delay(retry) <= ceiling
    # An injected RNG makes the jitter repeatable.
    first, second = (Backoff(jitter=0.5, rng=random.Random(3)) for _ in range(2))
    assert [first.delay(n) for n in range(1, 6)] == [second.delay(n) for n in range(1, 6)]
