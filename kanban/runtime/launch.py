"""The dispatcher's blocking work, as plain functions it runs on worker threads.

Starting a worker touches the disk and the process table several times (workspace, perhaps a
``git worktree add``, the prompt file, the log, ``Popen``, the new process's start time), and so
does supervising running ones (adoption reads ``/proc``). The daemon shares its event loop with
chat, so none of this may run on it: the dispatcher hands each batch to one thread hop
(``anyio.to_thread.run_sync``). Nothing here touches the database or the event loop.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from kanban.agents.profiles import Profile
from kanban.errors import SpawnError
from kanban.models import Claim, Run, Task
from kanban.runtime.breaker import run_tail
from kanban.runtime.landlock import Ruleset
from kanban.runtime.sandbox import (
    WorkerPaths,
    confine,
    missing_paths,
    worker_policy,
)
from kanban.runtime.settings import DispatchSettings
from kanban.runtime.spawn import (
    CLI_MODULE,
    SpawnRequest,
    TemplateValues,
    WorkerProcess,
    build_argv,
    is_same_process,
    start_worker,
    worker_env,
    write_private_text,
)
from kanban.runtime.workspaces import prepare_tmpdir, prepare_workspace, prompt_path
from kanban.storage.modes import private_dir

if TYPE_CHECKING:
    from kanban.board import Board

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchRequest:
    """Everything needed to start one claimed task's worker, read beforehand on the loop."""

    board: Board  # only its paths are used here
    task: Task
    profile: Profile
    claim: Claim
    context: str  # the worker context document (Board.context)
    template: list[str]
    base_env: Mapping[str, str]
    settings: DispatchSettings


def argv_template(profile: Profile, settings: DispatchSettings) -> list[str]:
    """The profile's ``command``, or the built-in worker for a profile without one."""
    if profile.command is not None:
        return list(profile.command)
    # This very interpreter: the worker must run the code that spawned it, and it skips a
    # PATH lookup on the way to its first model request.
    return [sys.executable, "-m", CLI_MODULE, "worker", "run", "--board", "{board}",
            "--task", "{task_id}", "--prompt-file", "{prompt_file}"]


def launch(request: LaunchRequest) -> tuple[list[str], WorkerProcess]:
    """Prepare the workspace, write the prompt, start the worker; (argv, process).
    Raises WorkspaceError, SpawnError or OSError."""
    board, task, profile, claim = request.board, request.task, request.profile, request.claim
    settings = request.settings
    workspace = prepare_workspace(board, task, worktree_repo=settings.worktree_repo)
    prompt = prompt_path(board, task.id)
    write_private_text(prompt, request.context)
    values = TemplateValues(task.id, board.slug, str(workspace), str(prompt),
                            task.model_override or profile.model or "")
    argv = build_argv(request.template, values, model_override=task.model_override,
                      has_worker_skill=profile.has_skill("kanban-worker"))
    if settings.worker_api is None:
        raise SpawnError("no worker API is served for this dispatcher; a worker would have no "
                         "way to report (start it from `gateway run` or `kanban dispatch`)")
    env = worker_env(request.base_env, profile_env=profile.env,
                     profile_env_from=profile.env_from, profile_home=profile.home,
                     profile_name=profile.name, board=board.slug, api=settings.worker_api,
                     task_id=task.id, run_id=claim.run_id, lease=claim.lease,
                     workspace=workspace, model=values.model, prompt_file=prompt)
    if profile.api_key_env and profile.api_key_env in request.base_env:
        # The one secret a worker gets: its own profile's endpoint key.
        env[profile.api_key_env] = request.base_env[profile.api_key_env]
    tmpdir = prepare_tmpdir(board, task.id)
    env["TMPDIR"] = str(tmpdir)
    ruleset = sandbox_for(request, workspace, tmpdir, prompt, env.get("HOME"))
    try:
        proc = start_worker(SpawnRequest(argv, env, workspace, board.log_path(task.id),
                                         settings.log_max_bytes, settings.log_backups,
                                         settings.platform, sandbox=ruleset))
    finally:
        if ruleset is not None:
            ruleset.close()
    return argv, proc


def sandbox_for(request: LaunchRequest, workspace: Path, tmpdir: Path, prompt: Path,
                home: str | None) -> Ruleset | None:
    """The Landlock ruleset of this worker (see :mod:`kanban.runtime.sandbox`); None when it
    runs unconfined. Raises SpawnError when the sandbox is required and cannot be had."""
    level, board, profile = request.settings.sandbox, request.board, request.profile
    if level == "off":
        return None
    task = request.task
    inputs = [board.attachments_path(i) for i in (task.id, *task.parents)]
    private_dir(inputs[0])  # a rule needs the folder (a parent's may not exist: not granted)
    for path in missing_paths([*profile.read_paths, *profile.write_paths]):
        log.warning("profile %s: %s does not exist; not granted to its worker",
                    profile.name, path)
    paths = WorkerPaths(workspace=workspace, tmpdir=tmpdir, profile_home=profile.home,
                        inputs=inputs, prompt_file=prompt, read_paths=profile.read_paths,
                        write_paths=profile.write_paths, write_home=profile.write_home)
    return confine(level, worker_policy(paths, network=profile.network,
                                        user_home=Path(home) if home else None))


def probe_adoptable(runs: Sequence[tuple[Run, Path]], tail_bytes: int
                    ) -> list[tuple[bool, str]]:
    """For each (run, its log): is its recorded worker still that process, and, when it is not,
    the tail of what it wrote during this run (its only last words: no exit status is known)."""
    out: list[tuple[bool, str]] = []
    for run, log in runs:
        alive = is_same_process(run.worker_pid, run.worker_started_at)
        out.append((alive, "" if alive else run_tail(log, since=run.claimed_at,
                                                      max_bytes=tail_bytes)))
    return out


def claimer_gone(claimed_by: str | None, me: str) -> bool:
    """True when a run was claimed by a dispatcher process (``dispatcher@host:pid``) other than
    this one that no longer runs. Manual claims (a person's name) are never "gone"."""
    if not claimed_by or not claimed_by.startswith("dispatcher@") or claimed_by == me:
        return False
    _, _, pid_text = claimed_by.rpartition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return not psutil.pid_exists(pid)


__all__ = ["LaunchRequest", "argv_template", "claimer_gone", "launch",
           "probe_adoptable", "sandbox_for"]
