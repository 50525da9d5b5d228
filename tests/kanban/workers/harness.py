"""A temporary home with a board, profiles whose commands are real Python scripts, and a
dispatcher — plus a deadline helper, so tests wait on state, never on sleeps."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.commands import Services
from gateway.worker_api import serving, socket_path
from kanban.agents.profiles import Profile, Profiles
from kanban.board import Board, BoardOptions
from kanban.home import Boards
from kanban.models import Event, Task
from kanban.runtime.dispatcher import Dispatcher, DispatchSettings

T = TypeVar("T")

AGENT = Path(__file__).with_name("agent.py")
# What a profile running agent.py lists as `read_paths` for its sandboxed worker.
AGENT_PATHS = [str(AGENT.parent)]
DEADLINE = 40.0  # generous: the machine is shared with other test runs


def same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def agent(*args: str) -> list[str]:
    """A profile command running tests/kanban/workers/agent.py with the current interpreter."""
    return [sys.executable, str(AGENT), *args]


async def wait_until(probe: Callable[[], Awaitable[T | None]], *, within: float = DEADLINE,
                     what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Env:
    home: Path
    boards: Boards
    board: Board
    profiles: Profiles
    dispatcher: Dispatcher
    records: Path

    def profile(self, name: str, command: Sequence[str] | None, *, skills: Sequence[str] = (),
                env: Mapping[str, Any] | None = None, **fields: Any) -> Profile:
        """A profile whose sandboxed workers may run agent.py and write their records."""
        fields.setdefault("read_paths", AGENT_PATHS)
        fields.setdefault("write_paths", [str(self.records)])
        self.profiles.create(name, command=list(command) if command else None,
                             env={"AGENT_RECORD_DIR": str(self.records), **(env or {})},
                             **fields)
        for skill in skills:
            (self.profiles.path(name) / "skills" / skill).mkdir(parents=True, exist_ok=True)
        return self.profiles.load(name)

    async def task(self, title: str = "t", *, assignee: str | None = "w", **kw: Any) -> Task:
        return (await self.board.create_task(title, assignee=assignee, **kw)).task

    async def status(self, task_id: int) -> str:
        return (await self.board.get_task(task_id)).status

    async def wait_status(self, task_id: int, *statuses: str, within: float = DEADLINE) -> Task:
        async def probe() -> Task | None:
            task = await self.board.get_task(task_id)
            return task if task.status in statuses else None

        return await wait_until(probe, within=within, what=f"task {task_id} in {statuses}")

    async def events(self, task_id: int, kind: str | None = None) -> list[Event]:
        events = await self.board.events(task_id=task_id)
        return [e for e in events if kind is None or e.kind == kind]

    def record_of(self, task_id: int) -> dict[str, Any]:
        files = sorted(self.records.glob(f"{task_id}-*.json"))
        assert files, f"task {task_id}'s worker left no record"
        data: dict[str, Any] = json.loads(files[-1].read_text(encoding="utf-8"))
        return data

    async def cycle_until_exited(self) -> None:
        """Wait for every watched worker to exit, then run one cycle to reap them."""
        assert await self.dispatcher.wait_workers(DEADLINE), "workers did not exit in time"
        await self.dispatcher.run_cycle(self.board)


async def serve_api(stack: AsyncExitStack, home: Path, boards: Boards) -> Path:
    """Serve ``home``'s worker API until ``stack`` closes; its socket."""
    await stack.enter_async_context(serving(Services(boards=boards, profiles=Profiles(home)),
                                            socket_path(home)))
    return socket_path(home)


@asynccontextmanager
async def dispatch_env(tmp_path: Path, *, options: BoardOptions | None = None,
                       base_env: Mapping[str, str] | None = None,
                       **settings: Any) -> AsyncIterator[Env]:
    """A home, its default board, the worker API its workers report through, and a dispatcher
    whose workers are given ``base_env`` (default: this process's environment) to pick their
    allowlisted variables from."""
    home = tmp_path / "home"
    records = tmp_path / "records"
    records.mkdir(parents=True)
    boards = Boards(home, options or BoardOptions())
    dispatcher: Dispatcher | None = None
    try:
        board = await boards.open("default")
        profiles = Profiles(home)
        settings.setdefault("tmux_cleanup", False)
        settings.setdefault("worker_api", socket_path(home))
        dispatcher = Dispatcher(boards, profiles, DispatchSettings(**settings),
                                base_env=dict(os.environ if base_env is None else base_env),
                                slugs=["default"])
        async with serving(Services(boards=boards, profiles=profiles), socket_path(home)):
            yield Env(home, boards, board, profiles, dispatcher, records)
    finally:
        if dispatcher is not None:
            await dispatcher.aclose(terminate=True)
        await boards.close()
