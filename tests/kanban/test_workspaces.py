"""Workspaces and cleanup after completion: artifacts to attachments, scratch removal only
inside the board's root, dir kept, worktrees, dead tmux sessions (real tmux, private socket)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanban.runtime.workspaces import Tmux, cleanup_completed, inside
from tests.kanban.workers.harness import DEADLINE, agent, dispatch_env, wait_until


async def test_scratch_artifacts_are_kept_and_workspace_removed(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("artifact", "out/report.csv", "a,b\n1,2\n"))
        task = await env.task()
        await env.dispatcher.run_cycle(env.board)
        workspace = env.board.workspaces_dir / str(task.id)
        await env.wait_status(task.id, "done")
        await env.cycle_until_exited()
        durable = env.board.attachments_path(task.id) / "out" / "report.csv"
        assert durable.read_text() == "a,b\n1,2\n"
        after = await env.board.get_task(task.id)
        assert after.artifacts == [str(durable)]
        assert not workspace.exists()
        # complete() already moved it: the completed event names the durable copy, so the
        # notifier never sees a path inside the removed scratch workspace.
        [completed] = await env.events(task.id, "completed")
        assert completed.payload["artifacts"] == [str(durable)]


async def test_dir_workspace_is_never_removed(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        target = tmp_path / "user-dir"
        env.profile("w", agent("complete"))
        task = await env.task(workspace=f"dir:{target}")
        await env.dispatcher.run_cycle(env.board)
        await env.wait_status(task.id, "done")
        await env.cycle_until_exited()
        assert target.is_dir()
        assert env.record_of(task.id)["env"]["RELAYBOARD_WORKSPACE"] == str(target)


async def test_scratch_escaping_the_root_is_not_removed(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        task = await env.task(assignee=None)
        outside = tmp_path / "precious"
        outside.mkdir()
        (outside / "keep.txt").write_text("x")
        env.board.workspaces_dir.mkdir(parents=True, exist_ok=True)
        (env.board.workspaces_dir / str(task.id)).symlink_to(outside)
        done = await env.board.complete(task.id, as_operator=True)
        report = await cleanup_completed(env.board, done)
        # Only the link goes; what it pointed at is never followed.
        assert not os.path.lexists(env.board.workspaces_dir / str(task.id))
        assert (outside / "keep.txt").exists()
        assert any("symbolic link" in e for e in report.errors)
        assert not inside(env.board.workspaces_dir, env.board.workspaces_dir)


class BrokenTmux(Tmux):
    def kill_if_dead(self, session: str) -> bool:
        raise RuntimeError("tmux server exploded")


async def test_cleanup_failure_never_blocks_completion(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        task = await env.task(assignee="w")
        workspace = env.board.workspaces_dir / str(task.id)
        workspace.mkdir(parents=True)
        done = await env.board.complete(task.id, as_operator=True, artifacts=["missing.txt"])
        report = await cleanup_completed(env.board, done, tmux=BrokenTmux())
        assert (await env.board.get_task(task.id)).status == "done"
        assert report.errors == ["declared artifact 'missing.txt' does not exist",
                                 "tmux cleanup failed: tmux server exploded"]
        assert report.removed == str(workspace)  # the rest of the cleanup still happened


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_repo(path: Path) -> None:
    path.mkdir()
    _git("init", "-q", "-b", "main", cwd=path)
    _git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "0",
         cwd=path)


async def test_worktree_created_and_removed_only_when_clean(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _make_repo(repo)
    async with dispatch_env(tmp_path, worktree_repo=repo) as env:
        env.profile("clean", agent("complete"))
        env.profile("dirty", agent("artifact", "notes.txt", "uncommitted"))
        clean = await env.task("clean", assignee="clean", workspace="worktree")
        dirty = await env.task("dirty", assignee="dirty",
                               workspace=f"worktree:{tmp_path / 'wt-dirty'}")
        await env.dispatcher.run_cycle(env.board)
        await env.wait_status(clean.id, "done")
        await env.wait_status(dirty.id, "done")
        await env.cycle_until_exited()
        assert (tmp_path / "wt-dirty" / "notes.txt").exists()  # kept: not clean
        assert not (env.board.workspaces_dir / str(clean.id)).exists()  # removed: clean
        assert env.record_of(clean.id)["env"]["RELAYBOARD_WORKSPACE"] == str(
            env.board.workspaces_dir / str(clean.id))


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (CI installs it)")
    server = Tmux(f"relayboard-test-{uuid.uuid4().hex[:8]}")
    yield server
    server.run("kill-server")


def _new_session(tmux: Tmux, name: str, command: str, conf: Path) -> None:
    argv = ["tmux", "-L", str(tmux.socket_name), "-f", str(conf), "new-session", "-d", "-s", name,
            command]
    subprocess.run(argv, check=True, timeout=10, capture_output=True)


async def test_dead_tmux_session_killed_live_one_untouched(tmp_path: Path, tmux: Tmux) -> None:
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\n")
    _new_session(tmux, "swarm-w", "exit 0", conf)
    _new_session(tmux, "swarm-live", "sleep 120", conf)

    async def pane_dead() -> bool:
        return await asyncio.to_thread(tmux.pane_dead_flags, "swarm-w") == ["1"]

    await wait_until(pane_dead, within=DEADLINE, what="the tmux pane to die")
    async with dispatch_env(tmp_path, tmux_cleanup=True, tmux_socket=tmux.socket_name) as env:
        env.profile("w", agent("complete"))
        env.profile("live", agent("complete"))
        dead_owner = await env.task("a", assignee="w")
        live_owner = await env.task("b", assignee="live")
        await env.dispatcher.run_cycle(env.board)
        await env.wait_status(dead_owner.id, "done")
        await env.wait_status(live_owner.id, "done")
        await env.cycle_until_exited()
        reports = env.dispatcher.last_reports["default"].cleaned
        assert any(r["tmux_killed"] == "swarm-w" for r in reports)
    assert await asyncio.to_thread(tmux.pane_dead_flags, "swarm-w") is None
    assert await asyncio.to_thread(tmux.pane_dead_flags, "swarm-live") == ["0"]
