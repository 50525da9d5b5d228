"""Awaiting log lines in tests, without sleeping."""

from __future__ import annotations

import asyncio
import logging


class LogWaiter(logging.Handler):
    """Lets a test await a log line (adapters log some decisions and nothing else shows them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self._changed.set()

    def count(self, fragment: str) -> int:
        return sum(fragment in m for m in self.messages)

    async def wait_for(self, fragment: str, count: int = 1, limit: float = 5.0) -> None:
        async def waiter() -> None:
            while self.count(fragment) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(waiter(), limit)
