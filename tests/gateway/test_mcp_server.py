"""`relayboard mcp`: a real MCP client session (the `mcp` SDK's stdio client) against the server
running as `python -m gateway mcp` with a worker's ``RELAYBOARD_*``
environment."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from gateway.builtin_worker import KanbanTools
from gateway.commands import Services
from gateway.worker_api import serving, socket_path
from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.home import Boards
from kanban.models import Claim, Task
from tests.gateway.conftest import clean_environ

TIMEOUT = 30.0


@dataclass
class Worker:
    board: Board
    task: Task
    claim: Claim
    workspace: Path


@asynccontextmanager
async def claimed_task(tmp_path: Path, title: str = "write it",
                       may_create: bool = False) -> AsyncIterator[Worker]:
    db = tmp_path / "home" / "boards" / "default" / "kanban.db"
    db.parent.mkdir(parents=True)
    home = tmp_path / "home"
    boards = Boards(home)
    try:
        async with Board.open(db) as board, serving(
                Services(boards=boards, profiles=Profiles(home)), socket_path(home)):
            task = (await board.create_task(title, assignee="agent")).task
            claim = await board.claim(task.id, claimed_by="test", profile="agent",
                                      may_create=may_create)
            workspace = board.workspaces_dir / str(task.id)
            workspace.mkdir(parents=True)
            yield Worker(board, task, claim, workspace)
    finally:
        await boards.close()


@asynccontextmanager
async def session(worker: Worker, *args: str) -> AsyncIterator[ClientSession]:
    env = clean_environ({
        "RELAYBOARD_HOME": str(worker.board.root.parent.parent / "profiles" / "agent"),
        "RELAYBOARD_PROFILE": "agent",
        "RELAYBOARD_BOARD": "default",
        "RELAYBOARD_API": str(socket_path(worker.board.root.parent.parent)),
        "RELAYBOARD_TASK_ID": str(worker.task.id),
        "RELAYBOARD_RUN_ID": str(worker.claim.run_id),
        "RELAYBOARD_LEASE": worker.claim.lease,
        "RELAYBOARD_WORKSPACE": str(worker.workspace),
    })
    params = StdioServerParameters(command=sys.executable, args=["-m", "gateway", "mcp", *args],
                                   env=env, cwd=str(worker.workspace))
    with anyio.fail_after(TIMEOUT):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            yield client


def served(listed: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    return {t.name: (t.description, t.input_schema) for t in listed.tools}


def tool_set(worker: Worker, *, may_create: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    """The built-in worker's tool set for this run (its ``run`` is never called here)."""

    async def unused(request: Any) -> Any:
        raise AssertionError(request)

    tools = KanbanTools(unused, worker.task.id, worker.claim.lease, worker.workspace,
                        may_create=may_create)
    return {s.name: (s.description, s.schema) for s in tools.specs()}


def payload(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.content[0].text)
    return data


async def test_an_mcp_client_lists_the_tools_and_completes_with_an_artifact(
        tmp_path: Path) -> None:
    async with claimed_task(tmp_path) as worker:
        (worker.workspace / "out.txt").write_text("made over MCP", encoding="utf-8")
        async with session(worker) as client:
            listed = await client.list_tools()
            names = {t.name for t in listed.tools}
            assert names == {"kanban_show", "kanban_complete", "kanban_block",
                             "kanban_comment", "kanban_heartbeat"}
            assert served(listed) == tool_set(worker, may_create=False)

            shown = await client.call_tool("kanban_show", {})
            assert not shown.is_error and payload(shown)["title"] == "write it"
            noted = await client.call_tool("kanban_comment", {"text": "on it"})
            assert not noted.is_error
            refused = await client.call_tool("kanban_create", {"title": "more"})
            assert refused.is_error and "orchestrator" in payload(refused)["error"]
            escaped = await client.call_tool("kanban_complete",
                                             {"artifacts": ["../../kanban.db"]})
            assert escaped.is_error and "outside" in payload(escaped)["error"]
            done = await client.call_tool("kanban_complete", {
                "summary": "via MCP", "result": "the file", "artifacts": ["out.txt"]})
            assert not done.is_error, payload(done)
            assert payload(done)["status"] == "done"
            # The run is over: a late write is refused as a tool error, the session survives.
            late = await client.call_tool("kanban_heartbeat", {"note": "still here?"})
            assert late.is_error and payload(late)["error"]

        task = await worker.board.get_task(worker.task.id)
        assert task.status == "done" and task.summary == "via MCP"
        saved = worker.board.attachments_path(task.id) / "out.txt"
        assert [Path(a) for a in task.artifacts] == [saved]
        assert saved.read_text(encoding="utf-8") == "made over MCP"
        detail = await worker.board.show_task(task.id)
        assert [(c.author_kind, c.body) for c in detail.comments] == [("worker", "on it")]


async def test_the_orchestrator_flag_grants_nothing(tmp_path: Path) -> None:
    """A worker that passes --orchestrator gets no kanban_create: rights come from the run."""
    async with claimed_task(tmp_path, "plan") as worker:
        async with session(worker, "--orchestrator") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "kanban_create" not in names
            refused = await client.call_tool("kanban_create", {"title": "sneaky"})
            assert refused.is_error and "orchestrator" in payload(refused)["error"]
        assert [t.title for t in await worker.board.list_tasks()] == ["plan"]


async def test_a_run_the_dispatcher_let_create_offers_kanban_create(tmp_path: Path) -> None:
    async with claimed_task(tmp_path, "plan", may_create=True) as worker:
        async with session(worker) as client:
            listed = await client.list_tools()
            assert "kanban_create" in {t.name for t in listed.tools}
            assert served(listed) == tool_set(worker, may_create=True)
            # The create verb's own limits, as on the command line.
            huge = await client.call_tool("kanban_create", {"title": "x", "priority": 2 ** 63})
            assert huge.is_error and payload(huge)["error"] == (
                f"priority: {2 ** 63} is out of range ({-2 ** 63} to {2 ** 63 - 1})")
            made = await client.call_tool("kanban_create",
                                          {"title": "step one", "parents": [worker.task.id]})
            assert not made.is_error
            child = await worker.board.get_task(payload(made)["id"])
            assert child.title == "step one" and child.status == "todo"
            blocked = await client.call_tool("kanban_block", {"reason": "waiting on step one"})
            assert not blocked.is_error
        task = await worker.board.get_task(worker.task.id)
        assert task.status == "blocked" and task.blocked_reason == "waiting on step one"


def test_outside_a_worker_it_says_so_in_one_line(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "gateway", "--home", str(tmp_path), "mcp"],
                          env=clean_environ(), capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: `relayboard mcp` runs inside a worker started by the dispatcher; "
        "RELAYBOARD_API, RELAYBOARD_TASK_ID, RELAYBOARD_LEASE not set"]
