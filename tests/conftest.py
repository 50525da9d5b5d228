"""Test plumbing shared by every folder: a umask of 022 (what a login shell usually has, and
under which files must still come out private), and the throwaway PostgreSQL server
(tests/storage_backends.py starts it on the first PostgreSQL test), stopped and removed when the
session ends, with a summary line saying which server the PostgreSQL tests used."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.llm_server import LLMServer
from tests.storage_backends import PG_DSN_ENV, started_throwaway, stop_throwaway


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    """A real chat-completions server on 127.0.0.1 with scripted replies."""
    async with LLMServer() as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _stop_throwaway_postgres() -> Iterator[None]:
    # Starts nothing: a session that runs no PostgreSQL test never pays for a server. Session
    # teardown also runs after a failure or Ctrl-C; atexit (registered at start) is the backstop.
    yield
    stop_throwaway()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Runs after session teardown, so the server is already gone when this is printed.
    server = started_throwaway()
    if server is not None:
        terminalreporter.write_line(
            f"PostgreSQL tests ran on a throwaway server ({server.version}; no {PG_DSN_ENV}) in "
            f"{server.root}, now stopped and removed")
