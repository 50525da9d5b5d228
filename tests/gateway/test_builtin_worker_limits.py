"""The built-in worker's limits in process: profile budgets parsed strictly, and the time budget
with a clock the test moves (so no test waits for wall time)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateway.builtin_worker import Budgets, WorkerJob, load_budgets, run_worker
from gateway.builtin_worker.budgets import budgets_from_mapping
from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.errors import InvalidInput
from tests.fakes.llm_server import LLMServer
from tests.gateway.conftest import run_as_worker


def test_budgets_default_and_parse() -> None:
    assert budgets_from_mapping({"description": "ignored"}) == Budgets()
    got = budgets_from_mapping({"max_iterations": 3, "max_seconds": 1.5, "max_tokens": None,
                                "max_nudges": 0})
    assert (got.max_iterations, got.max_seconds, got.max_tokens, got.max_nudges) == (3, 1.5,
                                                                                    None, 0)
    assert got.client == "httpx"
    assert budgets_from_mapping({"client": "openai"}).client == "openai"


@pytest.mark.parametrize(("data", "message"), [
    ({"max_iterations": "ten"}, "max_iterations must be a number"),
    ({"max_iterations": 2.5}, "max_iterations must be a whole number"),
    ({"max_seconds": 0}, "max_seconds must be positive"),
    ({"max_tokens": True}, "max_tokens must be a number"),
    ({"client": "requests"}, "client must be one of httpx, openai \\(got 'requests'\\)"),
])
def test_bad_budgets_are_one_clear_line(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        budgets_from_mapping(data)


def test_a_profile_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "profile.yaml").write_text("- a\n- list\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not a mapping"):
        load_budgets(tmp_path)
    assert load_budgets(tmp_path / "nowhere") == Budgets()


class Clock:
    """Moves 100 s forward each time the worker looks after the first request went out."""

    def __init__(self, server: LLMServer) -> None:
        self.server, self.now = server, 0.0

    def __call__(self) -> float:
        if self.server.completions():
            self.now += 100.0
        return self.now


async def test_an_exhausted_time_budget_blocks_with_the_reason(
        tmp_path: Path, board: Board, llm: LLMServer) -> None:
    profiles = Profiles(tmp_path / "home")
    profiles.create("w", base_url=llm.base_url, model="m")
    file = profiles.path("w") / "profile.yaml"
    file.write_text(file.read_text(encoding="utf-8") + "max_seconds: 150\n", encoding="utf-8")
    task = (await board.create_task("slow going", assignee="w")).task
    claim = await board.claim(task.id, profile="w")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    llm.tool_call("list_files", {})
    llm.tool_call("kanban_complete", {"result": "never sent"})
    out = io.StringIO()

    async with run_as_worker(tmp_path / "home", claim) as run:
        code = await run_worker(WorkerJob(board.slug, task.id, claim.lease, workspace,
                                          profiles.load("w")), run, out, clock=Clock(llm))

    assert code == 0
    blocked = await board.get_task(task.id)
    assert blocked.status == "blocked"
    assert "budget exhausted: max_seconds = 150" in (blocked.blocked_reason or "")
    assert len(llm.completions()) == 1
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last["kind"] == "end" and last["outcome"] == "blocked" and last["why"] == "budget"


def test_worker_run_outside_a_worker_is_one_clear_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    proc = subprocess.run([sys.executable, "-m", "gateway", "--home", str(tmp_path), "worker",
                           "run"], env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: `worker run` is started by the dispatcher; RELAYBOARD_API")


# ---- file tools on things that are not files ------------------------------------------------

async def test_read_file_on_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    import asyncio
    import os

    from gateway.builtin_worker.toolkit import ToolError
    from gateway.builtin_worker.workspace_tools import WorkspaceTools

    os.mkfifo(tmp_path / "pipe")  # no writer: a blocking open would wait for ever
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    tools = WorkspaceTools(workspace=tmp_path, env={})
    for name, args in (("read_file", {"path": "pipe"}),
                       ("write_file", {"path": "pipe", "content": "x"})):
        with pytest.raises(ToolError, match=r"^pipe: not a regular file"):
            await asyncio.wait_for(tools.call(name, args, time_left=600.0), 10.0)
    read = await asyncio.wait_for(tools.call("read_file", {"path": "notes.txt"}), 10.0)
    assert read["content"] == "hello"
    (tmp_path / "sub").mkdir()
    with pytest.raises(ToolError, match=r"^sub: is a directory"):
        await asyncio.wait_for(tools.call("read_file", {"path": "sub"}), 10.0)


async def test_a_file_tool_stops_at_the_runs_deadline() -> None:
    import asyncio

    from gateway.builtin_worker.toolkit import ToolError
    from gateway.builtin_worker.workspace_tools import _by_deadline

    never = asyncio.Event()

    async def stuck() -> dict[str, object]:
        await never.wait()  # a read that never returns (a hung network file system)
        return {}

    with pytest.raises(ToolError, match="read_file: stopped at the run's time limit"):
        await asyncio.wait_for(_by_deadline("read_file", 0.1, stuck()), 10.0)
