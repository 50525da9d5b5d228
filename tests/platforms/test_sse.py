"""The one slow-client policy of every server-sent-event stream (web chat, dashboard feed)."""

from __future__ import annotations

import asyncio

import pytest

from platforms import sse


async def collect(fanout: sse.Fanout[int], sub: asyncio.Queue[int | sse.End]) -> list[str]:
    return [text async for text in fanout.live(sub, lambda n: [sse.frame("n", n, n)])]


async def test_a_client_that_falls_behind_is_dropped_with_an_overflow_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse, "QUEUE_SIZE", 3)
    fanout: sse.Fanout[int] = sse.Fanout()
    slow, quick = fanout.subscribe(), fanout.subscribe()
    quick_got: list[str] = []
    for n in range(1, 5):  # the fourth item does not fit the slow one's queue
        fanout.publish(n)
        quick_got.append(f"{await quick.get()}")
    assert quick_got == ["1", "2", "3", "4"]  # the quick one kept going
    assert fanout.subscribers == {quick}
    frames = await asyncio.wait_for(collect(fanout, slow), 1)
    assert frames[-1] == sse.frame("overflow", {"reason": sse.OVERFLOW})
    assert frames[:-1] == [sse.frame("n", 2, 2), sse.frame("n", 3, 3)]


async def test_close_ends_every_stream_without_an_overflow() -> None:
    fanout: sse.Fanout[int] = sse.Fanout()
    sub = fanout.subscribe()
    fanout.publish(7)
    fanout.close()
    assert await asyncio.wait_for(collect(fanout, sub), 1) == [sse.frame("n", 7, 7)]
    assert not fanout.subscribers
