"""Spawning real worker processes: argv, environment, workspace, logs, failures."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.worker_api import socket_path
from kanban.agents.profiles import Profiles
from kanban.home import Boards
from kanban.testing import past_backoff
from tests.kanban.workers.harness import (
    AGENT_PATHS,
    agent,
    dispatch_env,
    same_path,
    wait_until,
)


async def test_worker_gets_argv_placeholders_env_and_cwd(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        profile = env.profile("w", agent("complete", "done!", "--", "{task_id}", "{board}",
                                         "{workspace}", "{prompt_file}", "{model}"))
        task = await env.task("write a poem", body="about sqlite")
        report = await env.dispatcher.run_cycle(env.board)
        assert [s["task_id"] for s in report.spawned] == [task.id]
        done = await env.wait_status(task.id, "done")
        assert done.result == "done!"
        rec = env.record_of(task.id)
        workspace = env.board.workspaces_dir / str(task.id)
        prompt = env.board.root / "prompts" / f"{task.id}.md"
        assert rec["argv"][-5:] == [str(task.id), "default", str(workspace), str(prompt), ""]
        assert "-m" not in rec["argv"] and "--skills" not in rec["argv"]
        assert same_path(rec["cwd"], workspace)
        e = rec["env"]
        run_id = report.spawned[0]["run_id"]
        assert e["RELAYBOARD_HOME"] == str(profile.home)
        assert e["RELAYBOARD_PROFILE"] == "w"
        assert e["RELAYBOARD_BOARD"] == "default"
        assert e["RELAYBOARD_API"] == str(socket_path(env.home))
        # No database path or credential: the worker reaches its board only through the API.
        assert not {"RELAYBOARD_DB", "RELAYBOARD_STORAGE", "RELAYBOARD_PG_DSN",
                    "RELAYBOARD_PG_NAMESPACE"} & set(rec["all_env"])
        assert e["RELAYBOARD_TASK_ID"] == str(task.id)
        assert e["RELAYBOARD_RUN_ID"] == str(run_id)
        assert e["RELAYBOARD_WORKSPACE"] == str(workspace)
        detail = await env.board.show_task(task.id)
        assert e["RELAYBOARD_LEASE"] == detail.runs[0].lease
        assert detail.runs[0].worker_pid == rec["pid"]
        assert detail.runs[0].worker_started_at is not None
        assert [ev.kind for ev in detail.events].count("spawned") == 1


async def test_model_override_and_worker_skill_flags(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("complete"), skills=["kanban-worker"])
        env.profile("plain", agent("complete"))
        with_model = await env.task("a", model_override="big-model")
        no_skill = await env.task("b", assignee="plain", model_override="m2")
        await env.dispatcher.run_cycle(env.board)
        await env.wait_status(with_model.id, "done")
        await env.wait_status(no_skill.id, "done")
        argv = env.record_of(with_model.id)["argv"]
        assert argv[-4:] == ["-m", "big-model", "--skills", "kanban-worker"]
        argv2 = env.record_of(no_skill.id)["argv"]
        assert argv2[-2:] == ["-m", "m2"] and "--skills" not in argv2


async def test_unknown_profile_blocks_at_once_without_a_spawn(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path, default_assignee=None) as env:
        # The profile directory is deleted after the task was assigned.
        env.profile("ghost", agent("complete"))
        task = await env.task(assignee="ghost")
        shutil.rmtree(env.profiles.path("ghost"))
        report = await env.dispatcher.run_cycle(env.board)
        # Nothing to run: blocked by the dispatcher itself, no worker, no failure counted.
        assert report.spawned == [] and env.dispatcher.workers() == []
        assert [b["task_id"] for b in report.blocked] == [task.id]
        blocked = await env.board.get_task(task.id)
        assert blocked.status == "blocked" and blocked.consecutive_failures == 0
        assert (blocked.blocked_reason or "").startswith(
            "unknown profile 'ghost': no profile named 'ghost'")
        assert blocked.current_run_id is None
        events = await env.events(task.id)
        assert [e.kind for e in events] == ["created", "blocked"]
        assert events[-1].payload["by"] == "dispatcher"
        assert events[-1].payload["reason"] == blocked.blocked_reason


@pytest.mark.parametrize("breakage, reason", [
    ("yaml", "profile 'w' is unreadable: profile.yaml: not valid YAML ("),
    ("directory", "profile 'w' is unreadable: profile.yaml: Is a directory"),
    ("command", "profile 'w' is unreadable: command: cannot split command"),
])
async def test_unreadable_profile_blocks_with_what_is_wrong(tmp_path: Path, breakage: str,
                                                            reason: str) -> None:
    async with dispatch_env(tmp_path, default_assignee=None) as env:
        env.profile("w", agent("complete"))
        file = env.profiles.path("w") / "profile.yaml"
        if breakage == "yaml":
            file.write_text("command: [unclosed\n", encoding="utf-8")
        elif breakage == "directory":
            file.unlink()
            file.mkdir()
        else:
            file.write_text("command: \"sh -c 'unbalanced\"\n", encoding="utf-8")
        task = await env.task()
        report = await env.dispatcher.run_cycle(env.board)
        assert report.spawned == [] and [b["task_id"] for b in report.blocked] == [task.id]
        blocked = await env.board.get_task(task.id)
        assert blocked.status == "blocked" and blocked.consecutive_failures == 0
        assert (blocked.blocked_reason or "").startswith(reason), blocked.blocked_reason
        assert "has no" not in (blocked.blocked_reason or "")


async def test_spawn_failure_is_counted_with_event(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", ["/nonexistent/definitely-not-a-command", "{task_id}"])
        task = await env.task()
        report = await env.dispatcher.run_cycle(env.board)
        assert report.spawn_failed and report.spawn_failed[0]["task_id"] == task.id
        after = await env.board.get_task(task.id)
        assert after.status == "ready" and after.consecutive_failures == 1
        events = await env.events(task.id, "spawn_failed")
        assert len(events) == 1 and "definitely-not-a-command" in events[0].payload["error"]
        # Second failure (once the back-off has passed) trips the default breaker.
        await past_backoff(env.board, task.id)
        await env.dispatcher.run_cycle(env.board)
        assert (await env.board.get_task(task.id)).status == "blocked"
        assert await env.events(task.id, "gave_up")


async def test_output_goes_to_task_log(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", [sys.executable, "-c",
                          "import sys; print('to stdout'); print('to stderr', file=sys.stderr);"
                          " sys.exit(75)"])
        task = await env.task()
        await env.dispatcher.run_cycle(env.board)
        await env.cycle_until_exited()
        text = env.board.log_path(task.id).read_text()
        assert "to stdout" in text and "to stderr" in text


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60, check=False)


async def test_dispatch_cli_dry_run_and_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Profiles(home).create("w", command=agent("complete"), read_paths=AGENT_PATHS)
    boards = Boards(home)
    try:
        board = await boards.open("default")
        task = (await board.create_task("via cli", assignee="w")).task
        dry = await asyncio.to_thread(_cli, home, "kanban", "dispatch", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        assert [p["task_id"] for p in json.loads(dry.stdout)["planned"]] == [task.id]
        assert (await board.get_task(task.id)).status == "ready"
        once = await asyncio.to_thread(_cli, home, "kanban", "dispatch", "--max", "1", "--json")
        assert once.returncode == 0, once.stderr
        assert [s["task_id"] for s in json.loads(once.stdout)["spawned"]] == [task.id]

        async def done() -> bool:
            return (await board.get_task(task.id)).status == "done"

        await wait_until(done, what="the CLI-spawned worker to complete")
    finally:
        await boards.close()
