"""Live updates: ONE tail of a board's event log, shared by every browser watching that board.

A :class:`BoardTail` is a single background task per board. It waits on the board's change
signal (bumped after every in-process commit) or, every ``poll_seconds``, asks SQLite whether
another process committed (``PRAGMA data_version``); then it reads the new ``task_events`` rows
once and hands them to each subscriber's queue. A browser therefore costs a queue, never a query
loop of its own. A client resuming with ``Last-Event-ID`` first gets the rows after its cursor
(one read), then joins the shared tail; ids at or below what it already got are skipped.

The fan-out to the browsers, the frames and the slow-client policy (a stalled tab is told
``overflow`` and dropped, and reconnects from its cursor) are the web chat's too:
:mod:`platforms.sse`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from kanban import Board, Event, KanbanError
from kanban.board.events import EventTail
from platforms import sse

log = logging.getLogger(__name__)

BATCH = 500

class BoardTail:
    """The shared tail of one board. Start it with :meth:`ensure_started`; stop with
    :meth:`aclose`."""

    def __init__(self, board: Board, *, poll_seconds: float = 0.5) -> None:
        self.board = board
        self.poll_seconds = poll_seconds
        self.reads = 0  # event-log reads made by the tail (tests check it is shared)
        # Each id once, late commits below the cursor included (see EventTail).
        self._tail = EventTail(board, 0)
        self._fanout: sse.Fanout[list[Event]] = sse.Fanout()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @property
    def subscribers(self) -> int:
        return len(self._fanout.subscribers)

    async def ensure_started(self) -> None:
        if self._task is None:
            self._tail.cursor = await self.board.last_event_id()
            await self._tail.prime()
            self._task = asyncio.create_task(self._run(), name=f"dashboard-tail:{self.board.slug}")
        await self._ready.wait()

    async def _run(self) -> None:
        version = self.board.changes.version
        self._ready.set()
        while True:
            try:
                moved = await self.board.changes.wait(version, self.poll_seconds)
                if moved == version:
                    await self.board.poll_external()
                version = self.board.changes.version
                await self._drain()
            except asyncio.CancelledError:
                raise
            except KanbanError as exc:  # the board closed or could not be read: retry later
                log.warning("dashboard tail of %s: %s", self.board.slug, exc)
                await asyncio.sleep(self.poll_seconds)
            except Exception:
                log.exception("dashboard tail of %s failed; retrying", self.board.slug)
                await asyncio.sleep(self.poll_seconds)

    @property
    def cursor(self) -> int:
        return self._tail.cursor

    async def _drain(self) -> None:
        while True:
            events, more = await self._tail.read(BATCH)
            self.reads += 1
            if not events:
                if not more:
                    return
                continue
            self._fanout.publish(events)
            if not more:
                return

    async def stream(self, since: int | None) -> AsyncIterator[str]:
        """Server-sent events from cursor ``since`` (None: from now on)."""
        await self.ensure_started()
        sub = self._fanout.subscribe()  # before the catch-up read: nothing falls in between
        try:
            yield sse.RETRY
            sent = self.cursor if since is None else since
            yield sse.frame("hello", {"board": self.board.slug, "cursor": sent})
            backlog_ids: set[int] = set()
            if since is not None:
                while True:  # catch up from the client's cursor with direct reads
                    backlog = await self.board.events(since=sent, limit=BATCH)
                    for event in backlog:
                        sent = event.id
                        backlog_ids.add(event.id)
                        yield _event_frame(event)
                    if len(backlog) < BATCH:
                        break
            # A late-committed event may be below the cursor (see LAG_WINDOW); the tail hands
            # each id out once, so only the catch-up's ids are skipped here.
            async for text in self._fanout.live(sub, lambda batch: (
                    _event_frame(e) for e in batch if e.id not in backlog_ids)):
                yield text
        finally:
            self._fanout.subscribers.discard(sub)  # also when it left during the catch-up

    async def aclose(self) -> None:
        self._fanout.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class LiveHub:
    """One :class:`BoardTail` per board slug."""

    def __init__(self, *, poll_seconds: float = 0.5) -> None:
        self.poll_seconds = poll_seconds
        self.tails: dict[str, BoardTail] = {}

    def tail(self, board: Board) -> BoardTail:
        tail = self.tails.get(board.slug)
        if tail is None or tail.board is not board:
            tail = self.tails[board.slug] = BoardTail(board, poll_seconds=self.poll_seconds)
        return tail

    async def aclose(self) -> None:
        tails = list(self.tails.values())
        self.tails.clear()
        for tail in tails:
            await tail.aclose()


def _event_frame(event: Event) -> str:
    return sse.frame("task", event.to_dict(), event.id)
