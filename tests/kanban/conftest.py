from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kanban.board import Board
from kanban.storage.backend import Storage
from kanban.testing import open_board
from tests.storage_backends import generate, storage_for


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    b = await open_board(tmp_path)
    try:
        yield b
    finally:
        await b.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    generate(metafunc, ("kanban",))


@pytest.fixture(autouse=True)
def storage_backend(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """SQLite, or (for a module that opens boards) SQLite then PostgreSQL."""
    yield from storage_for(request)
