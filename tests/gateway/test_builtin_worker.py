"""The built-in worker (`relayboard worker run`) as a real subprocess spawned by the real
Dispatcher, against the fake OpenAI-compatible server scripting tool calls."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kanban.board import Board
from tests.fakes.llm_server import LLMServer
from tests.kanban.workers.harness import DEADLINE, Env, dispatch_env

KEY_VAR = "RB_TEST_WORKER_KEY"
KEY = "sk-worker-test"
# The profile's `client`: the lean httpx client (the default) and the openai SDK.
CLIENTS = ["httpx", "openai"]


def builtin_profile(env: Env, server: LLMServer, name: str = "w", **limits: Any) -> None:
    """A profile with an endpoint and no command; ``limits`` go into its profile.yaml."""
    env.profiles.create(name, base_url=server.base_url, model="fake-model", api_key_env=KEY_VAR)
    if limits:
        file = env.profiles.path(name) / "profile.yaml"
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        data.update(limits)
        file.write_text(yaml.safe_dump(data), encoding="utf-8")
    env.dispatcher.base_env[KEY_VAR] = KEY


def tool_results(server: LLMServer, index: int = -1) -> list[dict[str, Any]]:
    """The tool results the worker sent back in one request, parsed."""
    messages = server.completions()[index].params["messages"]
    return [json.loads(m["content"]) for m in messages if m["role"] == "tool"]


def transcript(board: Board, task_id: int) -> list[dict[str, Any]]:
    lines = board.log_path(task_id).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def run_to_end(env: Env, task_id: int, *statuses: str) -> Any:
    await env.dispatcher.run_cycle(env.board)
    task = await env.wait_status(task_id, *statuses, within=DEADLINE)
    assert await env.dispatcher.wait_workers(DEADLINE)
    await env.dispatcher.run_cycle(env.board, max_new=0)  # reap
    return task


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_csv_made_with_run_shell_is_completed_as_an_artifact(
        tmp_path: Path, llm: LLMServer, client: str) -> None:
    async with dispatch_env(tmp_path) as env:
        builtin_profile(env, llm, heartbeat_seconds=0, client=client)
        task = await env.task("tabulate", body="write report.csv")
        llm.tool_call("run_shell", {
            "command": f"printf 'city,n\\nOslo,3\\n' > report.csv; echo key=${{{KEY_VAR}:-unset}}"})
        llm.tool_call("kanban_complete", {"summary": "one table", "result": "see csv",
                                                 "artifacts": ["report.csv"]})
        done = await run_to_end(env, task.id, "done", "blocked")

        assert done.status == "done", done.blocked_reason
        assert done.result == "see csv" and done.summary == "one table"
        saved = env.board.attachments_path(task.id) / "report.csv"
        assert [Path(a) for a in done.artifacts] == [saved]
        assert saved.read_text(encoding="utf-8") == "city,n\nOslo,3\n"
        first, _second = llm.completions()
        # the profile's key (and only through its api_key_env) reached the endpoint...
        assert first.params["_authorization"] == f"Bearer {KEY}"
        assert first.params["model"] == "fake-model"
        names = {t["function"]["name"] for t in first.params["tools"]}
        assert {"kanban_complete", "kanban_block", "run_shell", "read_file"} <= names
        assert "kanban_create" not in names  # not the orchestrator
        assert "tabulate" in first.params["messages"][1]["content"]  # the task context
        # ...but never the commands the model runs
        [shell] = tool_results(llm, 1)
        assert shell["exit_code"] == 0 and shell["output"].strip() == "key=unset"
        kinds = [line["kind"] for line in transcript(env.board, task.id)]
        assert kinds[0] == "start" and kinds[-1] == "end"
        assert kinds.count("request") == 2 and "tool_result" in kinds
        end = transcript(env.board, task.id)[-1]
        assert end["outcome"] == "done" and end["tokens"] == 4
        beats = await env.events(task.id, "heartbeat")
        assert beats and "built-in worker" in beats[0].payload["note"]
        assert (await env.board.get_task(task.id)).consecutive_failures == 0


async def test_a_model_that_stops_is_nudged_then_blocked_with_its_last_message(
        tmp_path: Path, llm: LLMServer) -> None:
    async with dispatch_env(tmp_path) as env:
        builtin_profile(env, llm, max_nudges=2)
        task = await env.task("think")
        llm.reply("Let me think.")
        llm.reply("Still thinking.")
        llm.reply("I need the customer's VAT number to go on.")
        blocked = await run_to_end(env, task.id, "blocked", "done")

        assert blocked.status == "blocked"
        assert blocked.blocked_reason == "I need the customer's VAT number to go on."
        requests = llm.completions()
        assert len(requests) == 3
        nudges = [m for m in requests[2].params["messages"]
                  if m["role"] == "user" and "kanban_complete" in m["content"]]
        assert len(nudges) == 2
        assert (await env.board.get_task(task.id)).consecutive_failures == 0


async def test_paths_out_of_the_workspace_are_refused_and_the_task_goes_on(
        tmp_path: Path, llm: LLMServer) -> None:
    async with dispatch_env(tmp_path) as env:
        builtin_profile(env, llm)
        task = await env.task("peek")
        workspace = env.board.workspaces_dir / str(task.id)
        secret = (workspace / "../../config.yaml").resolve()
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("token: hunter2\n", encoding="utf-8")
        llm.tool_calls([
            ("read_file", {"path": "../../config.yaml"}),
            ("run_shell", {"command": f"ln -s {secret} inner.yaml && mkdir d && "
                                      f"ln -s {secret.parent} d/up"}),
        ])
        llm.tool_calls([
            ("read_file", {"path": "inner.yaml"}),
            ("read_file", {"path": "d/up/config.yaml"}),
            ("write_file", {"path": "inner.yaml", "content": "overwritten"}),
            ("list_files", {"path": "d/up"}),
            ("read_file", "{not json"),
            ("write_file", {"path": "notes/ok.txt", "content": "fine"}),
            ("list_files", {"recursive": True}),
        ])
        llm.tool_call("kanban_complete", {"result": "gave up peeking"})
        done = await run_to_end(env, task.id, "done", "blocked")

        assert done.status == "done", done.blocked_reason
        first = tool_results(llm, 1)
        assert "outside the task's workspace" in first[0]["error"]
        assert first[1]["exit_code"] == 0
        second = tool_results(llm, 2)[2:]
        assert [("error" in r) for r in second] == [True] * 5 + [False, False]
        assert all("outside the task's workspace" in r["error"] for r in second[:4])
        assert "not valid JSON" in second[4]["error"]
        listed = {e["path"]: e["type"] for e in second[6]["entries"]}
        assert listed["inner.yaml"] == "link" and listed["notes/ok.txt"] == "file"
        assert secret.read_text(encoding="utf-8") == "token: hunter2\n"
        assert all("hunter2" not in json.dumps(r.params) for r in llm.completions())


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_rate_limited_endpoint_requeues_without_a_counted_failure(
        tmp_path: Path, llm: LLMServer, client: str) -> None:
    async with dispatch_env(tmp_path) as env:
        builtin_profile(env, llm, request_retries=0, client=client)
        task = await env.task("busy endpoint")
        llm.rate_limit()
        await env.dispatcher.run_cycle(env.board)
        assert await env.dispatcher.wait_workers(DEADLINE)
        report = await env.dispatcher.run_cycle(env.board, max_new=0)

        assert report.requeued == [task.id] and not report.crashed
        after = await env.board.get_task(task.id)
        assert after.status == "ready" and after.consecutive_failures == 0
        assert len(llm.completions()) == 1
        assert transcript(env.board, task.id)[-1]["outcome"] == "retry_later"


async def test_an_exhausted_iteration_budget_blocks_with_the_reason(
        tmp_path: Path, llm: LLMServer) -> None:
    async with dispatch_env(tmp_path) as env:
        builtin_profile(env, llm, max_iterations=2)
        task = await env.task("endless")
        llm.tool_call("list_files", {})
        llm.tool_call("list_files", {})
        blocked = await run_to_end(env, task.id, "blocked", "done")

        assert blocked.status == "blocked"
        assert "budget exhausted: max_iterations = 2" in (blocked.blocked_reason or "")
        assert len(llm.completions()) == 2


async def test_an_exhausted_token_budget_blocks_with_the_reason(
        tmp_path: Path, llm: LLMServer) -> None:
    async with dispatch_env(tmp_path) as env:
        builtin_profile(env, llm, max_tokens=100)
        task = await env.task("wordy")
        llm.tool_call("list_files", {}, tokens=60)
        llm.tool_call("list_files", {}, tokens=60)
        llm.tool_call("kanban_complete", {"result": "too late"})
        blocked = await run_to_end(env, task.id, "blocked", "done")

        assert blocked.status == "blocked"
        assert "max_tokens = 100" in (blocked.blocked_reason or "")
        assert "120 tokens" in (blocked.blocked_reason or "")
        assert len(llm.completions()) == 2


async def test_a_profile_without_an_endpoint_is_blocked_at_once(
        tmp_path: Path, llm: LLMServer) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profiles.create("w", description="no endpoint yet")
        task = await env.task("anything")
        blocked = await run_to_end(env, task.id, "blocked", "done")

        reason = blocked.blocked_reason or ""
        assert "base_url and model" in reason and "profile.yaml" in reason
        assert llm.completions() == []
        assert blocked.consecutive_failures == 0


async def test_the_orchestrator_profile_may_create_tasks_for_profiles_that_exist(
        tmp_path: Path, llm: LLMServer) -> None:
    """kanban_create is the `create` verb: an assignee that is no profile is refused, as the
    CLI and chat refuse it, instead of a task that would wait for ever."""
    async with dispatch_env(tmp_path, orchestrator_profile="boss") as env:
        builtin_profile(env, llm, name="boss")
        env.profiles.create("helper")
        task = await env.task("plan", assignee="boss")
        llm.tool_call("kanban_create", {"title": "follow-up", "assignee": "helpr"})
        llm.tool_call("kanban_create", {"title": "follow-up", "assignee": "helper",
                                        "parents": [task.id]})
        llm.tool_call("kanban_complete", {"result": "planned"})
        done = await run_to_end(env, task.id, "done", "blocked")

        assert done.status == "done", done.blocked_reason
        [refused] = tool_results(llm, 1)
        assert refused == {"error": "no profile 'helpr' — did you mean 'helper'?"}
        _refused, created = tool_results(llm, 2)
        child = await env.board.get_task(created["id"])
        assert child.title == "follow-up" and child.parents == [task.id]
        assert (child.assignee, child.created_by) == ("helper", "boss")
        assert child.status == "ready"  # its parent is done
        assert [t.title for t in await env.board.list_tasks()] == ["plan", "follow-up"]
        names = {t["function"]["name"] for t in llm.completions()[0].params["tools"]}
        assert "kanban_create" in names


@pytest.mark.parametrize("orchestrator", [False, True])
async def test_run_shell_creates_tasks_only_with_the_runs_right(
        tmp_path: Path, llm: LLMServer, orchestrator: bool) -> None:
    """The model's shell commands are the worker: `relayboard kanban create` from run_shell
    creates a task only when the dispatcher gave the run that right (the orchestrator profile);
    kanban_create is offered the same way. With the worker's variables unset, the command
    reaches no board at all: the sandbox keeps the database out of reach, whatever the run's
    rights."""
    settings = {"orchestrator_profile": "w"} if orchestrator else {}
    async with dispatch_env(tmp_path, **settings) as env:
        builtin_profile(env, llm)
        task = await env.task("plan")
        llm.tool_call("run_shell", {
            "command": "relayboard kanban create from-shell; echo rc=$?; "
                       "env -u RELAYBOARD_TASK_ID -u RELAYBOARD_LEASE -u RELAYBOARD_API "
                       f"relayboard --home {env.home} kanban create unset-vars; echo rc=$?"})
        llm.tool_call("kanban_complete", {"result": "planned"})
        done = await run_to_end(env, task.id, "done", "blocked")

        assert done.status == "done", done.blocked_reason
        names = {t["function"]["name"] for t in llm.completions()[0].params["tools"]}
        assert ("kanban_create" in names) is orchestrator
        [shell] = tool_results(llm, 1)
        titles = {t.title for t in await env.board.list_tasks()}
        # Opening it (SQLite) or making it (the board lives on PostgreSQL) is refused alike.
        unreachable = re.findall(r"error: cannot (?:open|create) board 'default' database",
                                 shell["output"])
        assert len(unreachable) == 1, shell
        if orchestrator:
            assert shell["output"].count("rc=0") == 1, shell
            assert titles == {"plan", "from-shell"}
        else:
            assert shell["output"].count("rc=1") == 2, shell
            assert shell["output"].count("a worker may not create tasks") == 1, shell
            assert titles == {"plan"}
