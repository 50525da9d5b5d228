from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

import platforms.discord  # noqa: F401  (imports discord.py with its audioop warning silenced)
from tests.fakes.discord_server import DiscordServer
from tests.fakes.slack_server import SlackServer
from tests.fakes.telegram_server import TelegramServer
from tests.platforms.logs import LogWaiter


@pytest.fixture(autouse=True)
def _sdk_settings(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    # PTB 22 builds RetryAfter with a deprecation warning unless it may use timedelta values
    # (the adapter handles both); with filterwarnings=error the warning would fail a 429 test.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def telegram_server() -> AsyncIterator[TelegramServer]:
    async with TelegramServer() as server:
        yield server


@pytest.fixture
async def slack_server() -> AsyncIterator[SlackServer]:
    async with SlackServer() as server:
        yield server


@pytest.fixture
async def discord_server() -> AsyncIterator[DiscordServer]:
    async with DiscordServer() as server:
        yield server


@pytest.fixture
def platform_log() -> Iterator[LogWaiter]:
    waiter = LogWaiter()
    logger = logging.getLogger("platforms")
    logger.addHandler(waiter)
    try:
        yield waiter
    finally:
        logger.removeHandler(waiter)
