"""State shared by every CLI verb: home, config, the caller, and running a command.

This is the CLI's edge: the only place that turns the process environment (the ``RELAYBOARD_*``
worker variables, ``$USER``) into an explicit :class:`~gateway.commands.Caller`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gateway.cli.board_settings import BoardSettings
from gateway.cli.board_settings import load as load_board_settings
from gateway.errors import GatewayError
from gateway.host import local_zone, resolve_home
from gateway.identity import worker_from_environ
from kanban import Boards, InvalidInput, KanbanError, Storage

if TYPE_CHECKING:
    from rich.console import Console

    # The command layer is imported where it is used: `worker run` never needs it, and every
    # millisecond of a worker's start-up delays its first model request.
    from gateway.commands import Caller, Request, Result, Services, Worker

    # The config's schema (pydantic) only for the verbs that read more than the board
    # settings: the board verbs take theirs from gateway.cli.board_settings.
    from gateway.config import Config
    from kanban.agents import Profiles

T = TypeVar("T")


def caller_from_environ(environ: Mapping[str, str]) -> Caller:
    from gateway.commands import Operator

    return worker_from_environ(environ) or Operator(environ.get("USER") or "operator")


@contextlib.contextmanager
def only_errors_logged() -> Iterator[None]:
    """Keep the gateway's warnings out of a report printed meanwhile (``doctor``, ``security
    audit`` report them as lines of their own); the level is put back after, so later commands
    in the same process (tests run them in process) still log."""
    quiet = logging.getLogger("gateway")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        yield
    finally:
        quiet.setLevel(level)


@dataclass
class AppContext:
    home: Path
    config_file: Path | None
    environ: Mapping[str, str]
    _config: Config | None = field(default=None, repr=False)
    _settings: BoardSettings | None = field(default=None, repr=False)

    @classmethod
    def create(cls, home: str | None, config_file: str | None,
               environ: Mapping[str, str] | None = None) -> AppContext:
        env = dict(os.environ) if environ is None else environ
        return cls(home=resolve_home(home, env),
                   config_file=Path(config_file) if config_file else None, environ=env)

    @property
    def config(self) -> Config:
        if self._config is None:
            from gateway.config import load_config

            self._config = load_config(self.config_file, self.environ, home=self.home)
        return self._config

    @property
    def settings(self) -> BoardSettings:
        """What the board verbs read of the config, validated as :attr:`config` is (kept in
        the home's cache while the config file is unchanged; see
        :mod:`gateway.cli.board_settings`)."""
        if self._settings is None:
            self._settings = load_board_settings(self.home, self.config_file, self.environ,
                                                 lambda: self.config)
        return self._settings

    def boards(self) -> Boards:
        return Boards(self.home, self.settings.options, self.settings.storage)

    def profiles(self) -> Profiles:
        from kanban.agents import Profiles

        return Profiles(self.home)

    @property
    def worker(self) -> Worker | None:
        return worker_from_environ(self.environ)

    @property
    def caller(self) -> Caller:
        return caller_from_environ(self.environ)

    def dispatched_worker(self, required: tuple[str, ...], what: str) -> Worker:
        """The worker a command that only runs inside one serves (``worker run``, ``mcp``);
        one line naming what is missing otherwise (``what``: how that command is started)."""
        missing = [name for name in required if not self.environ.get(name)]
        if missing:
            raise KanbanError(f"{what}; {', '.join(missing)} not set")
        worker = self.worker
        if worker is None:
            raise KanbanError("RELAYBOARD_TASK_ID is not a task id")
        return worker

    def board_slug(self, explicit: str | None) -> str:
        if explicit:
            return explicit
        worker = self.worker
        if worker is not None and worker.board:
            return worker.board
        return self.settings.default_board

    def services(self) -> Services:
        from gateway.commands import Services
        from kanban.agents.profiles import Profiles

        settings = self.settings

        def decompose() -> object:
            from gateway.kernel_settings import decompose_settings

            return decompose_settings(self.config)

        return Services(boards=self.boards(), profiles=Profiles(self.home),
                        default_board=settings.default_board,
                        decompose_settings=decompose,
                        migration_target=self.migration_target,
                        workspace_roots=settings.workspace_roots,
                        retention=settings.retention_settings(),
                        home_lock=self.home_lock,
                        timezone=local_zone(settings.timezone),
                        members_may_schedule=settings.members_may_schedule)

    def home_lock(self) -> contextlib.AbstractContextManager[object]:
        """The home's gateway lock (``boards restore`` holds it)."""
        from gateway.daemon.lock import HomeLock

        return HomeLock(self.home)

    def migration_target(self, dsn_env: str | None) -> Storage:
        """Where ``boards migrate`` copies to: the DSN in the variable ``--dsn-env`` names, else
        the configured PostgreSQL storage. The DSN is never a command-line value (``ps``)."""
        namespace = self.config.storage.namespace
        if dsn_env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", dsn_env):
                raise InvalidInput(f"--dsn-env takes the NAME of an environment variable, not "
                                   f"{'a DSN' if '://' in dsn_env or '=' in dsn_env else 'that'}"
                                   " (a DSN on the command line would show in `ps`)")
            dsn = self.environ.get(dsn_env, "")
            if not dsn:
                raise InvalidInput(f"--dsn-env names {dsn_env}, which is not set; export the "
                                   "target DSN in it")
            return Storage.postgres(dsn, namespace=namespace)
        from gateway.kernel_settings import storage

        configured = storage(self.config.storage)
        if configured.is_postgres:
            return configured
        raise InvalidInput("no PostgreSQL to move to: this home's storage.backend is sqlite; "
                           "set storage.backend: postgresql (the DSN in the variable "
                           "storage.dsn_env names), or give --dsn-env VAR naming the variable "
                           "that holds the DSN")

    async def caller_for(self, request: Request | None, boards: Boards) -> Caller:
        """This process's caller for ``request`` (None: an operator-only action such as
        ``dispatch``). Reads are anyone's; before a write, a process that says it is the
        operator is checked against the worker runs of this home (:mod:`gateway.identity`)."""
        from gateway.commands import Operator
        from gateway.commands.policy import READ_VERBS
        from gateway.identity import caller_of_process

        caller = self.caller
        if not isinstance(caller, Operator) or type(request) in READ_VERBS:
            return caller
        return await caller_of_process(boards, caller)

    def require_operator(self, what: str) -> None:
        """Refuse, in one line, an operator-only command run by a worker or under the gateway."""
        from gateway.commands import NotAllowed, Operator

        async def check() -> Caller:
            boards = self.boards()
            try:
                return await self.caller_for(None, boards)
            finally:
                await boards.close()

        caller = asyncio.run(check())
        if not isinstance(caller, Operator):
            raise NotAllowed(f"only the operator may {what} (this runs as "
                             f"{caller.display})")

    def run(self, request: Request) -> Result:
        """Execute one request as this process's caller, on a fresh event loop. Inside a worker
        (its variables set) the request goes to the worker API instead: a worker holds no
        database."""
        from gateway.commands import execute

        if self.worker is not None:
            return self._run_remote(request)

        async def go() -> Result:
            services = self.services()
            try:
                return await execute(request, await self.caller_for(request, services.boards),
                                     services)
            finally:
                await services.aclose()

        return run_async(go)


    def _run_remote(self, request: Request) -> Result:
        from gateway.worker_api.remote import run_remote

        api = self.environ.get("RELAYBOARD_API")
        if not api:
            raise KanbanError("inside a worker the board is reached through the worker API, and "
                              "RELAYBOARD_API is not set (start workers from `gateway run` or "
                              "`kanban dispatch`)")
        return run_remote(Path(api), self.environ, request)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def emit_json_list(items: list[Any]) -> None:
    """A JSON array, one compact item per line (``[``, an item a line, ``]``), UTF-8 text
    unescaped, keys in their order. orjson writes it, ten times faster than the standard
    encoder on 5,000 tasks; a value orjson refuses (an integer beyond 64 bits, say) sends the
    whole list through the standard encoder instead: the same document, with a space after
    each ``,`` and ``:``."""
    if not items:
        click.echo("[]")
        return
    import orjson

    try:
        body = b",\n".join(orjson.dumps(item, default=str) for item in items)
    except (TypeError, orjson.JSONEncodeError):
        dumps = json.JSONEncoder(ensure_ascii=False, default=str).encode
        click.echo("[\n" + ",\n".join(dumps(item) for item in items) + "\n]")
        return
    click.echo(b"[\n" + body + b"\n]")


def console() -> Console:
    from rich.console import Console

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
    except (KanbanError, GatewayError) as exc:
        click.echo(f"error: {error_line(exc)}", err=True)
        sys.exit(getattr(exc, "exit_code", 1))
    except OSError as exc:
        # The home or a board directory cannot be created or read (a file in the way, no
        # permission, disk full): one line, like every other error. click already handles EPIPE.
        click.echo(f"error: {os_error_line(exc)}", err=True)
        sys.exit(1)


class UsageLine(click.ClickException):
    """A usage error shown as the CLI's one ``error: …`` line (exit 2, click's usage code)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# click < 8.2 has no NoArgsIsHelpError; an unmatched placeholder keeps the except clauses valid.
NoArgsIsHelp: type[BaseException] = getattr(click.exceptions, "NoArgsIsHelpError",
                                            type("_NeverRaised", (Exception,), {}))


def usage_line(exc: click.UsageError, where: str) -> UsageLine:
    """Click's multi-line usage message (usage, hint, error) as one line naming the help."""
    if exc.ctx is not None:
        where = exc.ctx.command_path
    message = " ".join(exc.format_message().split())
    return UsageLine(f"{message} (see `{where} --help`)")


class OneLineUsageGroup(click.Group):
    """A group whose bad arguments and options, its own or any subcommand's, are one
    ``error:`` line with exit code 2, like every kernel error, not click's usage block."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelp:
            raise
        except click.UsageError as exc:
            raise usage_line(exc, info_name or self.name or "relayboard") from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelp:
            raise
        except click.UsageError as exc:
            raise usage_line(exc, ctx.command_path) from exc


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def app_of(ctx: click.Context) -> AppContext:
    app = ctx.find_object(AppContext)
    if app is None:  # pragma: no cover - the root group always sets it
        raise click.UsageError("internal: no application context")
    return app


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """``fn()`` on a fresh event loop. Its value is handed back beside the loop's main task,
    not as the task's result: when ``asyncio.run`` ends, Python 3.11 restores the SIGINT handler
    and formats the repr of the old one, a partial holding the main task, whose repr holds the
    repr of its result, in full. For ``list --json`` on 5,000 tasks that was 5,000 task reprs
    built and thrown away."""
    box: list[T] = []

    async def runner() -> None:
        box.append(await fn())

    asyncio.run(runner())
    return box[0]
