"""The worker-side CLI run by a real dispatcher: a profile's command is `relayboard kanban …`
itself, with RELAYBOARD_HOME pointing at the profile's home, reaching the board through the
worker API (RELAYBOARD_API)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.kanban.workers.harness import DEADLINE, dispatch_env

SCRIPT = """
import subprocess, sys
cli = [sys.executable, "-m", "gateway", "kanban"]
def run(*args):
    subprocess.run([*cli, *args], check=True)
run("comment", "starting on it")
run("heartbeat", "--note", "halfway")
open("report.txt", "w").write("the report")
run("complete", "--result", "written by the CLI", "--artifact", "report.txt")
"""


async def test_a_worker_completes_its_task_through_the_cli(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", [sys.executable, "-c", SCRIPT])
        task = await env.task("write the report")
        await env.dispatcher.run_cycle(env.board)
        done = await env.wait_status(task.id, "done", "blocked", within=DEADLINE)
        assert done.status == "done", await env.board.show_task(task.id)
        assert done.result == "written by the CLI"
        detail = await env.board.show_task(task.id)
        assert [(c.author, c.author_kind, c.body) for c in detail.comments] == [
            ("w", "worker", "starting on it")
        ]
        beats = [e for e in detail.events if e.kind == "heartbeat"]
        assert beats and beats[0].payload["note"] == "halfway"
        assert [Path(a).name for a in done.artifacts] == ["report.txt"]
        # The profile's home never grew a board of its own.
        assert not (env.profiles.path("w") / "boards").exists()


async def test_a_worker_cannot_complete_another_task(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        other = await env.task("someone else's", assignee=None)
        env.profile("w", [sys.executable, "-m", "gateway", "kanban", "complete", str(other.id)])
        task = await env.task("mine")
        await env.dispatcher.run_cycle(env.board)
        assert await env.dispatcher.wait_workers(DEADLINE)
        await env.dispatcher.run_cycle(env.board, max_new=0)
        crashed = await env.events(task.id, "crashed")
        assert crashed and "may only complete its own task" in crashed[0].payload["log_tail"]
        assert await env.status(other.id) == "ready"


def test_shell_commands_of_the_built_in_worker_do_not_get_the_endpoint_key(
    tmp_path: Path,
) -> None:
    from gateway.cli.worker import shell_environment
    from kanban.agents import Profiles

    profile = Profiles(tmp_path).create("w", api_key_env="MODEL_KEY")
    environ = {"PATH": "/usr/bin", "MODEL_KEY": "sk-1", "RELAYBOARD_TASK_ID": "3"}
    env = shell_environment(environ, profile)
    assert "MODEL_KEY" not in env
    assert env["PATH"] == "/usr/bin" and env["RELAYBOARD_TASK_ID"] == "3"
