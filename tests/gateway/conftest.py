"""Fixtures for CLI tests: the real click entry point in process, and the real ``python -m gateway``
in a subprocess where exit codes, stderr or streaming matter.

Every test gets its own home (``--home tmp_path``) and a clean environment: no ``RELAYBOARD_*``
variable leaks in from the developer's shell, so worker mode is only on when a test asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gateway.builtin_worker import Runner, runner
from gateway.cli import cli, main
from gateway.commands import Services, Worker
from gateway.config import load_config
from gateway.kernel_settings import board_options, storage
from gateway.worker_api import serving, socket_path
from kanban import Boards
from kanban.agents import Profiles
from kanban.board import Board
from kanban.models import Claim
from kanban.storage.backend import Storage
from kanban.testing import open_board
from tests.storage_backends import generate, storage_for

SUBPROCESS_TIMEOUT = 30.0
WORKER_VARS = ("RELAYBOARD_TASK_ID", "RELAYBOARD_RUN_ID", "RELAYBOARD_LEASE",
               "RELAYBOARD_BOARD", "RELAYBOARD_PROFILE", "RELAYBOARD_API")


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without any Relayboard variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    env["USER"] = "tester"
    env.update(extra or {})
    return env


class BackgroundApi:
    """The worker API of a home, served from a thread of its own: for tests that play a worker
    with the CLI (in process or as a subprocess) while the test itself stays synchronous. The
    server reads the home's config from ``environ`` (a PostgreSQL host's storage, say)."""

    def __init__(self, home: Path, environ: Mapping[str, str] | None = None) -> None:
        self.path = socket_path(home)
        self._home, self._environ = home, dict(environ or {})
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        if not self._ready.wait(SUBPROCESS_TIMEOUT):
            raise RuntimeError("the worker API did not start")

    async def _serve(self) -> None:
        config = load_config(None, self._environ, home=self._home)
        services = Services(boards=Boards(self._home, board_options(config.kanban,
                                                                    config.delivery),
                                          storage(config.storage)),
                            profiles=Profiles(self._home))
        self._stop, self._loop = asyncio.Event(), asyncio.get_running_loop()
        try:
            async with serving(services, self.path):
                self._ready.set()
                await self._stop.wait()
        finally:
            await services.aclose()

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(SUBPROCESS_TIMEOUT)


@dataclass
class Cli:
    """Runs ``relayboard --home <home> …`` in process (CliRunner) or as a subprocess."""

    home: Path
    runner: CliRunner
    api: BackgroundApi | None = None

    def worker_env(self, claim: Mapping[str, Any], task_id: int, board: str = "default",
                   profile: str | None = None,
                   environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """:func:`worker_env` with ``RELAYBOARD_API``: the home's worker API, started on first
        use and stopped by :meth:`close`."""
        if self.api is None:
            self.api = BackgroundApi(self.home, environ)
        return {**worker_env(claim, task_id, board, profile),
                "RELAYBOARD_API": str(self.api.path)}

    def close(self) -> None:
        if self.api is not None:
            self.api.close()
            self.api = None

    def invoke(self, *args: str, env: Mapping[str, str] | None = None,
               input: str | None = None) -> Result:
        # None unsets: a worker variable from the developer's shell never leaks into a test.
        base: dict[str, str | None] = {name: None for name in WORKER_VARS}
        base.update(env or {})
        return self.runner.invoke(cli, ["--home", str(self.home), *args],
                                  env=base, input=input, catch_exceptions=True)

    def ok(self, *args: str, env: Mapping[str, str] | None = None,
           input: str | None = None) -> str:
        """stdout of a command that must succeed."""
        result = self.invoke(*args, env=env, input=input)
        if result.exit_code != 0:
            detail = repr(result.exception) if result.exception else result.output
            raise AssertionError(f"{args} exited {result.exit_code}: {detail}")
        return result.stdout

    def json(self, *args: str, env: Mapping[str, str] | None = None,
             input: str | None = None) -> Any:
        """Parsed JSON of a ``--json`` command that must succeed."""
        return json.loads(self.ok(*args, "--json", env=env, input=input))

    def fail(self, *args: str, env: Mapping[str, str] | None = None,
             input: str | None = None) -> BaseException:
        """The error of a command that must fail with exit code 1 and print nothing on stdout."""
        result = self.invoke(*args, env=env, input=input)
        assert result.exit_code == 1, (args, result.exit_code, result.output)
        assert result.stdout == "", result.stdout
        assert result.exception is not None
        return result.exception

    def usage_error(self, *args: str) -> str:
        """stderr of a command that must be refused by argument parsing (exit 2)."""
        result = self.invoke(*args)
        assert result.exit_code == 2, (args, result.exit_code, result.output)
        return result.stderr

    def main(self, *args: str, env: Mapping[str, str] | None = None,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``gateway.cli.root`` (the console script's function, with its error mapping) in
        process, with isolated stdio; returns what a subprocess would report."""
        base: dict[str, str | None] = {name: None for name in WORKER_VARS}
        base.update(env or {})
        argv = ["--home", str(self.home), *args]
        code: int | str | None = 0
        with self.runner.isolation(input=input, env=base) as (out, err, _):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
        returncode = code if isinstance(code, int) else (0 if code is None else 1)
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    # ---- convenience --------------------------------------------------------------------------
    def create(self, title: str, *options: str, board: str | None = None) -> int:
        prefix = ("kanban", "--board", board) if board else ("kanban",)
        out = self.json(*prefix, "create", title, *options)
        return int(out["id"])

    def show(self, task_id: int, board: str | None = None) -> dict[str, Any]:
        prefix = ("kanban", "--board", board) if board else ("kanban",)
        data: dict[str, Any] = self.json(*prefix, "show", str(task_id))
        return data

    def claim(self, task_id: int, *options: str) -> dict[str, Any]:
        data: dict[str, Any] = self.json("kanban", "claim", str(task_id), *options)
        return data

    # ---- subprocesses -------------------------------------------------------------------------
    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gateway", "--home", str(self.home), *args]

    def sub(self, *args: str, env: Mapping[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=clean_environ(env), input=input,
                              capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
                              cwd=self.home, check=False)

    def popen(self, *args: str, env: Mapping[str, str] | None = None
              ) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), env=clean_environ(env), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=self.home)

    def sub_many(self, commands: Sequence[tuple[Sequence[str], Mapping[str, str] | None]]
                 ) -> list[subprocess.CompletedProcess[str]]:
        """Run several CLI processes (args, extra env) at once: interpreter start-up dominates,
        so this keeps the suite fast."""
        procs = [(list(args), self.popen(*args, env=env)) for args, env in commands]
        done = []
        for args, proc in procs:
            with proc:
                out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
            done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
        return done


def worker_env(claim: Mapping[str, Any], task_id: int, board: str = "default",
               profile: str | None = None) -> dict[str, str]:
    """The ``RELAYBOARD_*`` worker variables for a claim printed by ``kanban claim --json``."""
    env = {"RELAYBOARD_TASK_ID": str(task_id), "RELAYBOARD_RUN_ID": str(claim["run_id"]),
           "RELAYBOARD_LEASE": str(claim["lease"]), "RELAYBOARD_BOARD": board}
    if profile:
        env["RELAYBOARD_PROFILE"] = profile
    return env


@contextlib.asynccontextmanager
async def run_as_worker(home: Path, claim: Claim, board: str = "default",
                        profile: str = "w") -> AsyncIterator[Runner]:
    """The built-in worker's ``run`` for ``claim``: the command layer as that run's worker, on
    the boards of ``home`` (whose profiles are the roster)."""
    services = Services(boards=Boards(home), profiles=Profiles(home))
    caller = Worker(task_id=claim.task_id, run_id=claim.run_id, lease=claim.lease, board=board,
                    profile=profile)
    try:
        yield runner(caller, services)
    finally:
        await services.aclose()


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *, contains: str,
                          code: int = 1) -> str:
    """The process failed with ``code``, printed nothing on stdout and exactly one ``error:`` line
    (no traceback) on stderr; returns that line."""
    assert proc.returncode == code, (proc.args, proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert contains in lines[0], (contains, lines[0])
    assert proc.stdout == "", proc.stdout
    return lines[0]


@pytest.fixture(autouse=True)
def _no_worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*WORKER_VARS, "RELAYBOARD_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "tester")


ROSTER = ("alice", "bob")


@dataclass
class ServedDashboard:
    """A ``relayboard dashboard`` process: its address, and what it wrote to stderr once it
    stopped."""

    url: str
    proc: subprocess.Popen[str]
    stderr: str = ""


@contextlib.contextmanager
def dashboard_process(rb: Cli, within: float = 30.0) -> Iterator[ServedDashboard]:
    """``relayboard dashboard --port 0`` on ``rb``'s home, stopped with SIGINT at the end."""
    proc = subprocess.Popen(rb.argv("dashboard", "--port", "0"), env=clean_environ(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=rb.home)
    served: ServedDashboard | None = None
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], within)
        assert ready, "the dashboard printed no address"
        line = proc.stdout.readline()
        assert line.startswith("Relayboard dashboard on http://127.0.0.1:"), line
        served = ServedDashboard(line.split()[3], proc)
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=within)
        if served is not None:
            served.stderr = err


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    """The default board of a fresh home (``tmp_path/home``)."""
    b = await open_board(tmp_path / "home")
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def rb(tmp_path: Path) -> Iterator[Cli]:
    """A home with two profiles, ``alice`` and ``bob``: ``create --assignee`` and ``assign``
    refuse names that are no profile."""
    home = tmp_path / "home"
    home.mkdir()
    profiles = Profiles(home)
    for name in ROSTER:
        profiles.create(name)
    cli_ = Cli(home=home, runner=CliRunner())
    try:
        yield cli_
    finally:
        cli_.close()


# The command layer runs on both storage backends (the CLI's own tests stay on SQLite: their
# processes read storage from config, which tests/gateway/test_postgres_cli.py covers).
_BOTH_BACKENDS = ("gateway/test_commands.py", "gateway/test_builtin_worker.py",
                  "gateway/test_builtin_worker_http.py", "gateway/test_builtin_worker_limits.py",
                  "gateway/test_worker_tools.py", "gateway/test_schedule_verbs.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if any(str(metafunc.definition.fspath).endswith(name) for name in _BOTH_BACKENDS):
        generate(metafunc, ("gateway",))


@pytest.fixture(autouse=True)
def storage_backend(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """SQLite; for the command-layer suite, SQLite then PostgreSQL."""
    yield from storage_for(request)
