"""The worker's kanban tools in process: views of the verbs, bound to one run, held to the
command layer's rules for a worker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.builtin_worker import TASK_BLOCKED, TASK_DONE, KanbanTools, ToolError
from gateway.builtin_worker.kanban_tools import PERSON_ONLY, RUN_FIELDS, TOOLS
from gateway.commands.declare import declared
from gateway.commands.json_args import json_schema
from gateway.commands.verbs import CreateRequest
from kanban.agents import Profiles
from kanban.board import Board
from kanban.errors import LeaseError
from kanban.models import Claim
from tests.gateway.conftest import run_as_worker


async def claimed(board: Board, *, may_create: bool = False) -> tuple[int, Claim]:
    task = (await board.create_task("plan", assignee="w")).task
    return task.id, await board.claim(task.id, profile="w", may_create=may_create)


def test_every_host_path_of_a_worker_verb_is_bound_or_confined() -> None:
    """A field the chat parser never offers (a host path) reaches the model only confined to
    the workspace, or not at all: a new one makes this fail until it is decided which."""
    for tool in TOOLS:
        host_only = {f.name for f, spec in declared(tool.verb) if not spec.chat}
        assert host_only <= {*tool.paths, *RUN_FIELDS}, tool.name


async def test_the_tools_are_the_verbs_arguments_without_the_runs_own(
        tmp_path: Path, board: Board) -> None:
    Profiles(tmp_path / "home").create("w")
    task_id, claim = await claimed(board)
    async with run_as_worker(tmp_path / "home", claim) as run:
        tools = await KanbanTools.for_run(run, task_id, claim.lease)
        specs = {s.name: s.schema for s in tools.specs()}
        assert set(specs) == {"kanban_show", "kanban_complete", "kanban_block",
                              "kanban_comment", "kanban_heartbeat"}
        assert set(specs["kanban_complete"]["properties"]) == {
            "result", "summary", "metadata", "artifacts"}
        assert specs["kanban_block"]["required"] == ["reason"]
        assert specs["kanban_show"]["properties"]["task_id"]["default"] == task_id
        shown = await tools.call("kanban_show", {})
        assert shown.data["id"] == task_id and shown.ended is None
        with pytest.raises(ToolError, match=r"^task_id is set here and cannot be given$"):
            await tools.call("kanban_complete", {"task_id": task_id + 1})
        with pytest.raises(ToolError, match=r"^force is set here and cannot be given$"):
            await tools.call("kanban_block", {"reason": "x", "force": True})
        # The reason is one word: a leading number is the reason, not another task's id.
        blocked = await tools.call("kanban_block", {"reason": "42 tests fail"})
        assert blocked.ended == TASK_BLOCKED and blocked.data["blocked_reason"] == "42 tests fail"
        # The run is over: the lease is stale, and that is not a refusal the model may retry.
        with pytest.raises(LeaseError):
            await tools.call("kanban_heartbeat", {"note": "still here?"})


async def test_create_follows_the_runs_record_and_the_roster(tmp_path: Path,
                                                             board: Board) -> None:
    Profiles(tmp_path / "home").create("w")
    task_id, claim = await claimed(board, may_create=True)
    async with run_as_worker(tmp_path / "home", claim) as run:
        tools = await KanbanTools.for_run(run, task_id, claim.lease)
        create = next(s for s in tools.specs() if s.name == "kanban_create")
        # Derived, not written: an option added to `create` is offered here too — except a
        # person's own (a recurring schedule), which a run may never make.
        assert create.schema == json_schema(CreateRequest, chat=False, fixed=PERSON_ONLY)
        assert "every" not in create.schema["properties"]
        with pytest.raises(ToolError, match=r"^no profile 'nobody'"):
            await tools.call("kanban_create", {"title": "follow-up", "assignee": "nobody"})
        with pytest.raises(ToolError, match=r"^priority: 9223372036854775808 is out of range"):
            await tools.call("kanban_create", {"title": "follow-up", "priority": 2 ** 63})
        made = await tools.call("kanban_create", {"title": "follow-up", "assignee": "w",
                                                  "parents": [task_id]})
        child = await board.get_task(made.data["id"])
        assert (child.title, child.parents, child.created_by) == ("follow-up", [task_id], "w")
        done = await tools.call("kanban_complete", {"summary": "planned"})
        assert done.ended == TASK_DONE and done.data["status"] == "done"


async def test_create_is_refused_by_the_layer_when_the_run_may_not(tmp_path: Path,
                                                                   board: Board) -> None:
    task_id, claim = await claimed(board)
    async with run_as_worker(tmp_path / "home", claim) as run:
        # Even a tool set told it may create: the run's record is read at the call.
        tools = dataclasses.replace(
            await KanbanTools.for_run(run, task_id, claim.lease),
            may_create=True)
        with pytest.raises(ToolError, match="a worker may not create tasks"):
            await tools.call("kanban_create", {"title": "sneaky"})
    assert [t.title for t in await board.list_tasks()] == ["plan"]


async def test_declared_files_must_lie_in_the_workspace(tmp_path: Path, board: Board) -> None:
    task_id, claim = await claimed(board, may_create=True)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "secret.txt").write_text("no", encoding="utf-8")
    async with run_as_worker(tmp_path / "home", claim) as run:
        tools = KanbanTools(run, task_id, claim.lease, workspace, may_create=True)
        for name, args in (("kanban_complete", {"artifacts": ["../secret.txt"]}),
                           ("kanban_create", {"title": "t", "attachments": ["../secret.txt"]})):
            with pytest.raises(ToolError, match="outside the task's workspace"):
                await tools.call(name, args)
    assert (await board.get_task(task_id)).status == "running"
