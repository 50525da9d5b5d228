"""Retention benchmark: a board's size over 100,000 completed tasks, with and without
``kanban.retention``. Prints figures; asserts nothing.

Two SQLite boards get the same simulated workload, one day at a time: ``--per-day`` tasks are
created, claimed, heartbeaten once and completed, each with a worker log; one task in ten has
a chat subscription whose notification is delivered; tasks done for a week are archived (a user
tidying the board). The second board also runs the gateway's daily retention pass
(``--events-days``, ``--files-days``, ``--outbox-days``). The clock the kernel stamps rows with
is moved forward one day per simulated day, so ages are real to the retention rules.

Printed every ``--report-every`` days: database file, logs and attachments on disk, and rows in
``task_events`` and ``notify_outbox``, for both boards; at the end the time of one retention
pass and of ``gc --vacuum``.

Usage: python bench/retention.py [--tasks 100000] [--per-day 1000] [--events-days 30]
                                 [--files-days 30] [--outbox-days 30] [--report-every 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time as real_time
from pathlib import Path
from typing import Any

import kanban.timeutil
from kanban.board import Board
from kanban.retention import DAY, RetentionSettings, collect, vacuum_file
from kanban.storage.tx import Tx


class SimulatedTime:
    """``time`` as the kernel sees it: the real clock plus whole simulated days."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return real_time.time() + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(real_time, name)


CLOCK = SimulatedTime()


def size_of(path: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def db_size(board: Board) -> int:
    path = board.db.path
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal"))
               if p.exists())


async def rows(board: Board, table: str) -> int:
    def run(tx: Tx) -> int:
        return int(tx.one(f"SELECT COUNT(*) FROM {table}")[0])

    return await board.db.read(run)


async def one_day(board: Board, day: int, per_day: int, done_on: dict[int, list[int]]) -> None:
    created = await asyncio.gather(*(board.create_task(f"day {day} task {i}", body="x" * 200)
                                     for i in range(per_day)))
    ids = [c.task.id for c in created]
    await asyncio.gather(*(board.subscribe(t, platform="slack", chat="C1")
                           for t in ids[::10]))
    claims = await asyncio.gather(*(board.claim(t) for t in ids))
    await asyncio.gather(*(board.heartbeat(c.task_id, lease=c.lease, note="working on it")
                           for c in claims))
    board.logs_dir.mkdir(exist_ok=True)
    for task_id in ids:
        board.log_path(task_id).write_bytes(b"worker output line\n" * 100)
    await asyncio.gather(*(board.complete(c.task_id, lease=c.lease, result="ok",
                                          summary="did the thing") for c in claims))
    await board.queue_notifications()
    while items := await board.claim_notifications(limit=200):
        await asyncio.gather(*(board.mark_notification_sent(i.id, [{"delivered": True}])
                               for i in items))
    done_on[day] = ids
    week_ago = done_on.pop(day - 7, None)
    if week_ago:
        await board.archive(week_ago)


async def main(args: argparse.Namespace) -> None:
    kanban.timeutil.time = CLOCK  # type: ignore[assignment]
    settings = RetentionSettings(events_days=args.events_days, files_days=args.files_days,
                                 outbox_days=args.outbox_days)
    days = max(1, args.tasks // args.per_day)
    with tempfile.TemporaryDirectory() as tmp:
        plain = await Board.open(Path(tmp) / "without" / "kanban.db", slug="without")
        kept = await Board.open(Path(tmp) / "with" / "kanban.db", slug="with")
        plain_done: dict[int, list[int]] = {}
        kept_done: dict[int, list[int]] = {}
        print(f"{days} simulated days x {args.per_day} tasks; retention: events "
              f"{args.events_days} d, files {args.files_days} d, outbox {args.outbox_days} d")
        print(f"{'day':>4} {'tasks':>7} | {'db MB':>7} {'files MB':>8} {'events':>8} "
              f"{'outbox':>7} | {'db MB':>7} {'files MB':>8} {'events':>8} {'outbox':>7}")
        print(f"{'':>4} {'':>7} | {'without retention':^34} | {'with retention':^34}")
        gc_seconds: list[float] = []
        try:
            for day in range(1, days + 1):
                await one_day(plain, day, args.per_day, plain_done)
                await one_day(kept, day, args.per_day, kept_done)
                started = real_time.perf_counter()
                await collect(kept, settings)
                gc_seconds.append(real_time.perf_counter() - started)
                CLOCK.offset += DAY
                if day % args.report_every == 0 or day == days:
                    cells = []
                    for board in (plain, kept):
                        files = size_of(board.logs_dir) + size_of(board.attachments_dir)
                        cells.append(f"{db_size(board) / 1e6:7.1f} {files / 1e6:8.1f} "
                                     f"{await rows(board, 'task_events'):8d} "
                                     f"{await rows(board, 'notify_outbox'):7d}")
                    print(f"{day:4d} {day * args.per_day:7d} | {cells[0]} | {cells[1]}",
                          flush=True)
            path = kept.db.path
            before = db_size(kept)
            started = real_time.perf_counter()
            await asyncio.to_thread(vacuum_file, path)
            vacuum = real_time.perf_counter() - started
            print(f"retention pass: median {sorted(gc_seconds)[len(gc_seconds) // 2] * 1000:.0f}"
                  f" ms, max {max(gc_seconds) * 1000:.0f} ms per simulated day")
            print(f"gc --vacuum on the retained board: {before / 1e6:.1f} MB -> "
                  f"{db_size(kept) / 1e6:.1f} MB in {vacuum:.2f} s "
                  f"(without retention: {db_size(plain) / 1e6:.1f} MB)")
        finally:
            await plain.close()
            await kept.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--per-day", type=int, default=1000)
    parser.add_argument("--events-days", type=int, default=30)
    parser.add_argument("--files-days", type=int, default=30)
    parser.add_argument("--outbox-days", type=int, default=30)
    parser.add_argument("--report-every", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
