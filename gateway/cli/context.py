"""State shared by every CLI verb: home, config, boards, output helpers, worker identity."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from gateway.config import Config, ConfigError, load_config, resolve_home
from gateway.kernel_settings import board_options
from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.boards import Boards
from kanban.errors import KanbanError

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerIdentity:
    """The §6 variables a worker process is started with (read only here, at the CLI edge)."""

    task_id: int
    run_id: int | None
    lease: str
    board: str | None
    profile: str | None
    db: Path | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerIdentity | None:
        task = environ.get("RELAYBOARD_TASK_ID")
        lease = environ.get("RELAYBOARD_LEASE")
        if not task or not lease:
            return None
        try:
            task_id = int(task)
        except ValueError:
            return None
        run = environ.get("RELAYBOARD_RUN_ID")
        return cls(task_id=task_id, run_id=int(run) if run and run.isdigit() else None,
                   lease=lease, board=environ.get("RELAYBOARD_BOARD") or None,
                   profile=environ.get("RELAYBOARD_PROFILE") or None,
                   db=Path(environ["RELAYBOARD_DB"]) if environ.get("RELAYBOARD_DB") else None)


@dataclass
class AppContext:
    home: Path
    config_file: Path | None
    environ: Mapping[str, str]
    _config: Config | None = field(default=None, repr=False)

    @classmethod
    def create(cls, home: str | None, config_file: str | None,
               environ: Mapping[str, str] | None = None) -> AppContext:
        env = dict(os.environ) if environ is None else environ
        return cls(home=resolve_home(home, env),
                   config_file=Path(config_file) if config_file else None, environ=env)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_file, self.environ, home=self.home)
        return self._config

    def boards(self) -> Boards:
        return Boards(self.home, board_options(self.config.kanban))

    def profiles(self) -> Profiles:
        return Profiles(self.home)

    @property
    def worker(self) -> WorkerIdentity | None:
        return WorkerIdentity.from_environ(self.environ)

    def board_slug(self, explicit: str | None) -> str:
        if explicit:
            return explicit
        worker = self.worker
        if worker is not None and worker.board:
            return worker.board
        return self.config.kanban.default_board


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        return await coro_fn()

    return asyncio.run(runner())


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def os_error_line(exc: OSError) -> str:
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return error_line(exc)


@contextlib.contextmanager
def fail_cleanly() -> Iterator[None]:
    try:
        yield
    except (KanbanError, ConfigError) as exc:
        click.echo(f"error: {error_line(exc)}", err=True)
        sys.exit(1)
    except OSError as exc:
        # The home or a board directory cannot be created or read (a file in the way, no
        # permission, disk full): one line, like every other error. click already handles EPIPE.
        click.echo(f"error: {os_error_line(exc)}", err=True)
        sys.exit(1)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def app_of(ctx: click.Context) -> AppContext:
    app = ctx.find_object(AppContext)
    if app is None:  # pragma: no cover - the root group always sets it
        raise click.UsageError("internal: no application context")
    return app


def board_call(ctx: click.Context, fn: Callable[[Board], Awaitable[T]]) -> T:
    """Open the selected board (``--board``, the worker's board, or the default), run ``fn``,
    close everything."""
    app = app_of(ctx)
    slug = str(ctx.meta.get("board_slug") or app.board_slug(None))

    worker = app.worker
    if worker is not None and worker.db is not None and slug == (worker.board or slug):
        # A worker's RELAYBOARD_HOME is its profile's home (so its own config applies); the
        # board it works for is named by RELAYBOARD_DB, which the dispatcher set.
        worker_db = worker.db

        async def go_worker() -> T:
            if not worker_db.is_file():
                raise KanbanError(f"RELAYBOARD_DB names a board database that does not exist "
                                  f"({worker_db.name})")
            board = await Board.open(worker_db, slug=slug,
                                     options=board_options(app.config.kanban))
            try:
                return await fn(board)
            finally:
                await board.close()

        return asyncio.run(go_worker())

    async def go() -> T:
        boards = app.boards()
        try:
            board = await boards.open(slug)
            return await fn(board)
        finally:
            await boards.close()

    return asyncio.run(go())
