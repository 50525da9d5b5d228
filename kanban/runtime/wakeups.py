"""What wakes the one dispatch loop (:meth:`kanban.runtime.dispatcher.Dispatcher.run`).

The loop sleeps on a single :class:`Wake` event. Each source sets it: a board's change signal
(in-process commits, and other processes' commits found by polling), a worker's exit (its pidfd,
registered by the dispatcher), and the stop event. The loop's timeout covers what no event
announces: the earliest not-before of a backed-off task (:func:`next_wakeup`) and the
safety-net interval. A host of the loop brings its own parts as :class:`LoopHooks`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio

from kanban.board import Board, ChangeSignal
from kanban.errors import KanbanError
from kanban.timeutil import now

log = logging.getLogger(__name__)

# Never sleep less than this before the next cycle, even when a back-off is already due: a
# kernel that reports a past wake-up time must not turn the loop into a busy spin.
MIN_WAIT_SECONDS = 0.01


@dataclass(frozen=True)
class LoopHooks:
    """What a host of the one loop (:meth:`Dispatcher.run`) adds to it, instead of a loop of
    its own. The defaults are the standalone dispatcher of ``relayboard kanban dispatch --loop``.

    ``boards`` — the boards of each pass (called every pass, so boards may come and go); default:
    the dispatcher's ``slugs`` (or every board), opened once. ``changes`` — the change signal to
    wake on; default: each opened board's own signal plus a poll for other processes' commits
    every ``poll_seconds``. A host that passes ``changes`` passes ``boards`` too. ``before_pass``
    — awaited at the start of every pass with its boards (the gateway kicks decompositions
    there; it must not block for long). ``interval`` — the safety-net tick, read every pass;
    default: ``settings.interval_seconds``.
    """

    boards: Callable[[], Sequence[Board]] | None = None
    changes: ChangeSignal | None = None
    before_pass: Callable[[Sequence[Board]], Awaitable[None]] | None = None
    interval: Callable[[], float] | None = None


class Wake:
    """The loop's one event, and the tasks that forward each source to it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float) -> None:
        """Until something wakes the loop, or ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            await self._event.wait()

    async def forward_changes(self, changes: ChangeSignal) -> None:
        version = changes.version
        while True:
            version = await changes.wait(version, None)
            self._event.set()

    async def poll_external(self, boards: Sequence[Board], every: float) -> None:
        """Other processes' commits, found every ``every`` seconds (they bump each board's
        change signal, which :meth:`forward_changes` passes on)."""
        while True:
            for board in boards:
                try:
                    await board.poll_external()
                except Exception as exc:  # cancellation is a BaseException and passes
                    log.warning("polling board %s failed: %s", board.slug, exc)
            await anyio.sleep(every)

    async def forward_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._event.set()


async def next_wakeup(boards: Sequence[Board]) -> float | None:
    """The earliest not-before time of a backed-off ready task on any of ``boards``."""
    earliest: float | None = None
    for board in boards:
        try:
            value = await board.next_wakeup()
        except KanbanError as exc:
            log.warning("next_wakeup failed on board %s: %s", board.slug, exc)
            continue
        if value is not None:
            earliest = value if earliest is None else min(earliest, value)
    return earliest


async def wait_seconds(boards: Sequence[Board], interval: float, *,
                       poll: float | None = None, deadlines: Iterable[float] = ()) -> float:
    """How long the loop may sleep when nothing wakes it: ``interval``, shortened to the
    earliest not-before on ``boards``, to ``poll`` (set while a worker's exit cannot be waited
    on) and to the earliest of ``deadlines`` (absolute times, e.g. a lingering worker's end of
    grace); never below :data:`MIN_WAIT_SECONDS`."""
    due = await next_wakeup(boards)
    ends = [*deadlines, *([] if due is None else [due])]
    limits = [interval, *([] if poll is None else [poll]), *(end - now() for end in ends)]
    return max(MIN_WAIT_SECONDS, min(limits))
