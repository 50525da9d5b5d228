"""Task workspaces: preparing them before a worker starts and cleaning up after completion.

* ``scratch`` — ``<board>/workspaces/<task>/``, created at spawn. After completion, declared
  artifacts that live inside it are copied to ``<board>/attachments/<task>/`` and the task's
  artifact list is pointed at the durable copies (one transaction); then the directory is removed,
  but only when it resolves strictly inside the board's workspaces root.
* ``dir:PATH`` — the user's directory: created if missing, never removed.
* ``worktree[:PATH]`` — a ``git worktree add`` of the task's repository (``metadata["repo"]``,
  else the dispatcher's ``worktree_repo``) at PATH (default ``<board>/workspaces/<task>``);
  removed after completion only when ``git status`` shows it clean.
* tmux — a session ``swarm-<assignee>`` whose panes are all dead is killed; live ones are kept.

Cleanup is best-effort: every failure is logged and returned, none is raised, and none ever
undoes or blocks a completion. Its file, git and tmux work runs on worker threads: the dispatcher
shares its event loop with the daemon's chat adapters.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from kanban.errors import KanbanError, WorkspaceError
from kanban.fsutil import copy_at, inside, open_dir_no_follow, open_parent_beneath
from kanban.models import Task
from kanban.storage.modes import private_dirs

if TYPE_CHECKING:
    from kanban.board import Board

log = logging.getLogger(__name__)

TMUX_SESSION_PREFIX = "swarm-"


def prompt_path(board: Board, task_id: int) -> Path:
    """Where the worker's context document is written (beside the board, not in the user's dir)."""
    return board.root / "prompts" / f"{task_id}.md"


def tmp_path(board: Board, task_id: int) -> Path:
    """The worker's private ``TMPDIR``: beside the board, so it never lands in a repository."""
    return board.root / "tmp" / str(task_id)


def prepare_tmpdir(board: Board, task_id: int) -> Path:
    """Create the worker's ``TMPDIR`` empty (a retry does not inherit its predecessor's files)."""
    path = tmp_path(board, task_id)
    _remove_tree(path)
    private_dirs(path.parent, path)
    return path


def _remove_tree(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


# ---- preparation ------------------------------------------------------------------------------

def worktree_path(board: Board, task: Task) -> Path:
    if task.workspace_path:
        return Path(task.workspace_path)
    return board.workspaces_dir / str(task.id)


def prepare_workspace(board: Board, task: Task, *, worktree_repo: Path | None = None) -> Path:
    """Create (or reuse) the task's workspace and return it. Raises :class:`WorkspaceError`."""
    try:
        if task.workspace_kind == "dir" and task.workspace_path:
            path = Path(task.workspace_path)
            path.mkdir(parents=True, exist_ok=True)
            return path
        if task.workspace_kind == "worktree":
            return _prepare_worktree(board, task, worktree_repo)
        path = board.workspaces_dir / str(task.id)
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError as exc:
        raise WorkspaceError(f"cannot prepare {task.workspace_kind} workspace: {exc}") from exc


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)


def _prepare_worktree(board: Board, task: Task, default_repo: Path | None) -> Path:
    path = worktree_path(board, task)
    if (path / ".git").exists():
        return path  # a retry: the worktree from the previous attempt is reused
    repo_value = task.metadata.get("repo")
    repo = Path(str(repo_value)) if repo_value else default_repo
    if repo is None:
        raise WorkspaceError(
            "worktree workspace needs a git repository: set the task's metadata \"repo\" or the "
            "dispatcher's worktree_repo"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    branch = f"relayboard/{board.slug}/task-{task.id}"
    exists = _git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=repo)
    args = ["worktree", "add", str(path), branch] if exists.returncode == 0 else \
        ["worktree", "add", "-b", branch, str(path)]
    done = _git(args, cwd=repo)
    if done.returncode != 0:
        raise WorkspaceError(f"git worktree add failed: {done.stderr.strip() or done.stdout}")
    return path


# ---- cleanup ----------------------------------------------------------------------------------

@dataclass
class CleanupReport:
    task_id: int
    artifacts: dict[str, str] = field(default_factory=dict)  # original path -> durable copy
    removed: str | None = None
    kept: str | None = None  # why the workspace stayed
    tmux_killed: str | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "artifacts": self.artifacts, "removed": self.removed,
                "kept": self.kept, "tmux_killed": self.tmux_killed, "errors": self.errors}


async def cleanup_completed(board: Board, task: Task, *, tmux: Tmux | None = None,
                            worktree_repo: Path | None = None) -> CleanupReport:
    """Best-effort cleanup after ``task`` completed; never raises."""
    report = CleanupReport(task.id)
    try:
        await anyio.to_thread.run_sync(_unlink, prompt_path(board, task.id))
        await anyio.to_thread.run_sync(_remove_tree, tmp_path(board, task.id))
        if task.workspace_kind == "scratch":
            await _cleanup_scratch(board, task, report)
        elif task.workspace_kind == "worktree":
            await anyio.to_thread.run_sync(_cleanup_worktree, board, task, worktree_repo, report)
        else:
            report.kept = "dir workspaces are never removed"
    except Exception as exc:  # cleanup must never block a completion
        report.errors.append(f"workspace cleanup failed: {exc}")
    if tmux is not None and task.assignee:
        try:
            name = TMUX_SESSION_PREFIX + task.assignee
            if await anyio.to_thread.run_sync(tmux.kill_if_dead, name):
                report.tmux_killed = name
        except Exception as exc:
            report.errors.append(f"tmux cleanup failed: {exc}")
    for error in report.errors:
        log.warning("task %s: %s", task.id, error,
                    extra={"board": board.slug, "task_id": task.id})
    return report


async def sweep_done(board: Board, busy: set[int], *, tmux: Tmux | None = None,
                     worktree_repo: Path | None = None) -> list[dict[str, Any]]:
    """Clean the workspaces of done tasks that a dispatcher which died left behind, except
    ``busy`` (tasks whose workers are still watched). Bounded by the folders that exist under
    the board's workspaces, never a scan of the board."""
    cleaned: list[dict[str, Any]] = []
    for task_id in await anyio.to_thread.run_sync(workspace_task_ids, board.workspaces_dir):
        if task_id in busy:
            continue
        try:
            task = await board.get_task(task_id)
        except KanbanError:
            continue
        if task.status == "done":
            cleaned.append((await cleanup_completed(board, task, tmux=tmux,
                                                    worktree_repo=worktree_repo)).to_dict())
    return cleaned


def workspace_task_ids(root: Path) -> list[int]:
    """Task ids that have a directory under a board's workspaces root."""
    if not root.is_dir():
        return []
    return sorted(int(entry.name) for entry in root.iterdir() if entry.name.isdigit())


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _cleanup_scratch(board: Board, task: Task, report: CleanupReport) -> None:
    workspace = board.workspaces_dir / str(task.id)
    if workspace.is_symlink():
        # A worker replaced its workspace with a link (to ~/.ssh, say): copy nothing through it,
        # never follow it, and remove only the link.
        await anyio.to_thread.run_sync(_unlink, workspace)
        report.errors.append("the scratch workspace was a symbolic link: nothing was copied "
                             "through it, and only the link was removed")
        report.removed = str(workspace)
        return
    copied = await anyio.to_thread.run_sync(_save_scratch, board, task, workspace, report)
    if copied is None:
        return
    if copied:
        await board.record_saved_artifacts(task.id, copied)
        report.artifacts = copied
    if any(e.startswith("artifact") for e in report.errors):
        report.kept = "an artifact could not be copied; the workspace is kept"
        return
    await anyio.to_thread.run_sync(_remove_workspace, workspace)
    report.removed = str(workspace)


def _remove_workspace(workspace: Path) -> None:
    """rmtree never follows links (and refuses one at the top): a workspace swapped for a link
    since it was checked loses only the link."""
    try:
        shutil.rmtree(workspace)
    except OSError:
        if not workspace.is_symlink():
            raise
        workspace.unlink(missing_ok=True)


def _save_scratch(board: Board, task: Task, workspace: Path,
                  report: CleanupReport) -> dict[str, str] | None:
    """Copy the scratch dir's artifacts; None when there is nothing to remove."""
    if not workspace.is_dir():
        return None
    if not inside(workspace, board.workspaces_dir):
        report.kept = "scratch workspace resolves outside the board's workspaces root"
        return None
    return _copy_artifacts(board, task, workspace, report)


def _copy_artifacts(board: Board, task: Task, workspace: Path,
                    report: CleanupReport) -> dict[str, str]:
    """Copy the artifacts that live in the scratch dir; paths elsewhere are left as declared
    (copying them would launder arbitrary host files into the attachments root). Each is reached
    from the workspace's own descriptor without following any link."""
    copied: dict[str, str] = {}
    target_root = board.attachments_path(task.id)
    try:
        root_fd = open_dir_no_follow(workspace)
    except OSError as exc:
        report.errors.append(f"artifacts not copied: the workspace cannot be opened ({exc})")
        return copied
    try:
        for declared in task.artifacts:
            source = Path(declared)
            if not source.is_absolute():
                source = workspace / source
            lexical = Path(os.path.normpath(source))
            if lexical == workspace or not lexical.is_relative_to(workspace):
                continue
            relative = lexical.relative_to(workspace)
            target = target_root / relative
            try:
                parent_fd = open_parent_beneath(root_fd, relative)
                try:
                    copy_at(parent_fd, relative.name, target)
                finally:
                    os.close(parent_fd)
            except FileNotFoundError:
                # Nothing to lose by removing the workspace: report it, don't keep the directory.
                report.errors.append(f"declared artifact {declared!r} does not exist")
                continue
            except OSError as exc:
                report.errors.append(f"artifact {declared!r} not copied: {exc}")
                continue
            copied[declared] = str(target)
    finally:
        os.close(root_fd)
    return copied


def _cleanup_worktree(board: Board, task: Task, default_repo: Path | None,
                      report: CleanupReport) -> None:
    path = worktree_path(board, task)
    if not (path / ".git").exists():
        return
    status = _git(["status", "--porcelain"], cwd=path)
    if status.returncode != 0:
        report.errors.append(f"git status failed in worktree: {status.stderr.strip()}")
        return
    if status.stdout.strip():
        report.kept = "worktree has uncommitted changes"
        return
    done = _git(["worktree", "remove", str(path)], cwd=path)
    if done.returncode != 0:
        report.errors.append(f"git worktree remove failed: {done.stderr.strip()}")
        return
    report.removed = str(path)


# ---- tmux -------------------------------------------------------------------------------------

class Tmux:
    """A tmux server: the default one, or a private socket (``tmux -L NAME``) in tests."""

    def __init__(self, socket_name: str | None = None, *, executable: str = "tmux") -> None:
        self.socket_name = socket_name
        self.executable = executable

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self.executable]
        if self.socket_name:
            argv += ["-L", self.socket_name]
        return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=10,
                              check=False)

    def available(self) -> bool:
        return shutil.which(self.executable) is not None

    def pane_dead_flags(self, session: str) -> list[str] | None:
        """``#{pane_dead}`` of every pane in the session, or None when there is no session."""
        if not self.available():
            return None
        done = self.run("list-panes", "-s", "-t", f"={session}", "-F", "#{pane_dead}")
        if done.returncode != 0:
            return None
        return [line.strip() for line in done.stdout.splitlines() if line.strip()]

    def kill_if_dead(self, session: str) -> bool:
        """Kill ``session`` when every one of its panes is dead; live sessions are untouched."""
        flags = self.pane_dead_flags(session)
        if not flags or any(flag != "1" for flag in flags):
            return False
        done = self.run("kill-session", "-t", f"={session}")
        if done.returncode != 0:
            raise OSError(f"tmux kill-session {session}: {done.stderr.strip()}")
        return True
