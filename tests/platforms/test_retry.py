"""A Telegram poller built without the gateway's backoff retries at a steady pace."""

from __future__ import annotations

from platforms.retry import STEADY_RETRY_SECONDS
from platforms.telegram import TelegramAdapter


def test_without_a_formula_it_retries_steadily() -> None:
    adapter = TelegramAdapter("1:x", allowed_users=[])
    assert {adapter.backoff(n) for n in range(1, 6)} == {STEADY_RETRY_SECONDS}

