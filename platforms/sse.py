"""Server-sent events to browsers: one frame format, one fan-out, one slow-client policy.

The web chat (:mod:`platforms.web`) streams with it, and so does the gateway's dashboard feed
(``gateway.dashboard.live``); it lives in ``platforms`` because the gateway may import
``platforms`` and not the reverse.

The slow-client policy: every subscriber has a bounded queue, and a publisher never waits. A
subscriber that stops reading (a stalled tab) until its queue is full is dropped: its stream
ends with an ``overflow`` event, and the browser comes back with ``Last-Event-ID`` (or its own
cursor) and catches up from its history. So one slow client neither holds the others back nor
grows a backlog without bound.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Generic, TypeVar

from starlette.responses import StreamingResponse

T = TypeVar("T")

QUEUE_SIZE = 1000  # items a subscriber may fall behind by before it is dropped
KEEPALIVE_SECONDS = 15.0  # a comment line while idle, so proxies keep the stream open
RETRY = "retry: 2000\n\n"  # the browser's reconnect delay, in milliseconds
OVERFLOW = "client too slow; reload"


class End(enum.Enum):
    """What ends a subscriber's stream: the fan-out closed, or the subscriber fell behind."""

    CLOSED = "closed"
    DROPPED = "dropped"


def frame(kind: str, data: object, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def response(frames: AsyncIterator[str]) -> StreamingResponse:
    # no-store: a stream is never cached; X-Accel-Buffering: nginx must pass each frame at once.
    return StreamingResponse(frames, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class Fanout(Generic[T]):
    """Hands each published item to every subscriber's queue."""

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[T | End]] = set()

    def subscribe(self) -> asyncio.Queue[T | End]:
        queue: asyncio.Queue[T | End] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(queue)
        return queue

    def publish(self, item: T) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self._end(queue, End.DROPPED)

    def close(self) -> None:
        """End every open stream."""
        for queue in list(self.subscribers):
            self._end(queue, End.CLOSED)

    def _end(self, queue: asyncio.Queue[T | End], end: End) -> None:
        self.subscribers.discard(queue)
        if queue.full():  # make room: the item it displaces is caught up on reconnect
            queue.get_nowait()
        queue.put_nowait(end)

    async def live(self, queue: asyncio.Queue[T | End],
                   render: Callable[[T], Iterable[str]]) -> AsyncIterator[str]:
        """The frames ``render`` makes of each item ``queue`` receives until its stream ends
        (with ``overflow`` if it was dropped for being slow); keep-alives while idle."""
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is End.DROPPED:
                    yield frame("overflow", {"reason": OVERFLOW})
                if isinstance(item, End):
                    return
                for text in render(item):
                    yield text
        finally:
            self.subscribers.discard(queue)
