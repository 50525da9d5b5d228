"""``relayboard worker run`` — the built-in worker the dispatcher spawns for a profile that has no
``command`` (see docs/worker.md).

This is the worker's edge: the only place it reads its environment (the ``RELAYBOARD_*`` worker
variables of :mod:`kanban.runtime.workerenv`). Everything below gets plain values
(:class:`gateway.builtin_worker.WorkerJob`) and reaches the board through the command layer as
the run's :class:`~gateway.commands.Worker`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from gateway.cli.invocation import app_of
from kanban.agents.profiles import Profile, Profiles
from kanban.errors import KanbanError

REQUIRED = ("RELAYBOARD_API", "RELAYBOARD_TASK_ID", "RELAYBOARD_LEASE", "RELAYBOARD_WORKSPACE",
            "RELAYBOARD_PROFILE", "RELAYBOARD_HOME")


def worker_profile(environ: Mapping[str, str]) -> Profile:
    """The worker's own profile: ``RELAYBOARD_HOME`` is its directory,
    ``<home>/profiles/<name>``, so the profiles root is two levels up."""
    name = environ["RELAYBOARD_PROFILE"]
    profile_home = Path(environ["RELAYBOARD_HOME"])
    profile = Profiles(profile_home.parent.parent).load(name)
    # A profile whose directory is gone loads empty: the worker then blocks the task saying so.
    if profile.home.resolve() != profile_home.resolve():
        raise KanbanError(f"RELAYBOARD_HOME is not the directory of profile {name!r}")
    return profile


def shell_environment(environ: Mapping[str, str], profile: Profile) -> dict[str, str]:
    """What ``run_shell`` commands get: the worker's own (allowlisted) environment, minus the
    endpoint's API key — the model's commands have no use for it (the worker reports through
    its own tools), and could print it."""
    env = dict(environ)
    if profile.api_key_env:
        env.pop(profile.api_key_env, None)
    return env


def skip_httpx_cli() -> None:
    """Let this process's ``import httpx`` skip httpx's own command-line tool.

    ``httpx/__init__`` imports ``httpx._main`` (the ``httpx`` CLI: rich and pygments, ~30 ms,
    a tenth of the worker's start-up budget) whenever those happen to be installed, and treats
    an ImportError as "the ``cli`` extra is not installed". A worker process never runs that
    tool, so it marks the module absent before the first request imports httpx. Only here, at
    the edge of a process that is nothing but a worker — never in library code.
    """
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


@click.group()
def worker() -> None:
    """The built-in worker (what the dispatcher runs for a profile without a command)."""


@worker.command("run")
@click.option("--board", "board", default=None, help="Board slug (default: $RELAYBOARD_BOARD).")
@click.option("--task", "task_id", type=int, default=None,
              help="Task id; must match $RELAYBOARD_TASK_ID.")
@click.option("--prompt-file", type=click.Path(dir_okay=False), default=None,
              help="The task context the dispatcher wrote (read instead of rebuilding it).")
@click.option("-m", "--model", default=None, help="Model override (the task's).")
@click.option("--skills", "skills", multiple=True, hidden=True,
              help="Accepted for command-line compatibility with agent CLIs; unused.")
@click.option("--orchestrator", is_flag=True, hidden=True,
              help="Ignored: whether the run may create tasks is recorded on the run itself.")
@click.pass_context
def run(ctx: click.Context, board: str | None, task_id: int | None, prompt_file: str | None,
        model: str | None, skills: tuple[str, ...], orchestrator: bool) -> None:
    """Work the claimed task named by the environment until it is completed or blocked.

    Exit codes: 0 the task was completed or blocked, 75 the endpoint rate-limited us (the
    dispatcher requeues without counting), 1 anything else (counted, retried with backoff).
    """
    # Imported here: `relayboard --help` and every other verb should not pay for the loop.
    from gateway.builtin_worker import WorkerJob, run_worker
    from gateway.worker_api.remote import remote_runner

    skip_httpx_cli()

    app = app_of(ctx)
    environ = app.environ
    caller = app.dispatched_worker(REQUIRED, "`worker run` is started by the dispatcher")
    if task_id is not None and task_id != caller.task_id:
        raise KanbanError(f"--task {task_id} is not this worker's task ({caller.task_id})")
    profile = worker_profile(environ)
    job = WorkerJob(
        board=board or caller.board or "default",
        task_id=caller.task_id,
        lease=caller.lease,
        workspace=Path(environ["RELAYBOARD_WORKSPACE"]),
        profile=profile,
        api_key=environ.get(profile.api_key_env) if profile.api_key_env else None,
        shell_env=shell_environment(environ, profile),
        model_override=model,
        prompt_file=Path(prompt_file) if prompt_file else None,
    )

    with remote_runner(Path(environ["RELAYBOARD_API"]), environ) as run:
        code = asyncio.run(run_worker(job, run, sys.stdout))
    sys.exit(code)
