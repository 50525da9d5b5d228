from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.testing import open_board


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    b = await open_board(tmp_path)
    try:
        yield b
    finally:
        await b.close()
