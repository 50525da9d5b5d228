"""The Events API check on its own, with a clock the test sets: the five-minute window to the
second, a replay, a retry of the same event, and the answers while not running or full."""

from __future__ import annotations

import json

from platforms.slack_events import SlackEvents
from tests.fakes.slack_server import SIGNING_SECRET, sign

NOW = 1_700_000_000


def headers(body: bytes, stamp: int) -> dict[str, str]:
    return {"x-slack-request-timestamp": str(stamp), "x-slack-signature": sign(body, stamp)}


def event(event_id: str) -> bytes:
    return json.dumps({"type": "event_callback", "event_id": event_id,
                       "event": {"type": "message", "text": "hi"}}).encode()


def test_the_window_is_five_minutes_either_way() -> None:
    events = SlackEvents(SIGNING_SECRET, clock=lambda: float(NOW))
    events.running = True
    for offset, status in ((-300, 200), (300, 200), (-301, 401), (301, 401)):
        body = event(f"Ev{offset}")
        assert events.take(headers(body, NOW + offset), body).status == status, offset
    assert events.queue.qsize() == 2


def test_a_replay_is_refused_and_a_retry_is_taken_once() -> None:
    events = SlackEvents(SIGNING_SECRET, clock=lambda: float(NOW))
    events.running = True
    body = event("Ev1")
    assert events.take(headers(body, NOW), body).status == 200
    replay = events.take(headers(body, NOW), body)
    assert (replay.status, replay.body) == (401, b"replayed")
    assert events.take(headers(body, NOW - 5), body).status == 200  # Slack's retry
    assert events.queue.qsize() == 1


def test_not_running_or_full_answers_503_so_slack_retries() -> None:
    events = SlackEvents(SIGNING_SECRET, clock=lambda: float(NOW))
    body = event("Ev1")
    assert events.take(headers(body, NOW), body).status == 503
    events.running = True
    assert events.take(headers(body, NOW - 1), body).status == 200  # not marked seen before
    while not events.queue.full():
        events.queue.put_nowait({})
    full = event("Ev2")
    assert events.take(headers(full, NOW), full).status == 503
    events.queue.get_nowait()
    assert events.take(headers(full, NOW - 1), full).status == 200
