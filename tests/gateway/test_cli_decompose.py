"""``relayboard kanban decompose ID|--all`` through the real CLI, with the fake LLM in a thread."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from gateway.cli import cli
from kanban.errors import KanbanError
from tests.fakes.llm_server import LLMServer, threaded_llm_server


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=True)


def setup_home(home: Path, server: LLMServer | None, **kanban: Any) -> None:
    config: dict[str, Any] = {"kanban": kanban}
    if server is not None:
        config["auxiliary"] = {"kanban_decomposer": {
            "base_url": server.base_url, "model": "planner", "timeout": 5, "retries": 0}}
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    run(home, "profile", "create", "researcher", "--description", "Finds sources on the web.")
    run(home, "profile", "create", "writer", "--description", "Writes reports.")


def triage(home: Path, title: str, body: str = "") -> int:
    res = run(home, "kanban", "create", title, "--body", body, "--triage", "--json")
    assert res.exit_code == 0, res.output
    return int(json.loads(res.output)["id"])


def show(home: Path, task_id: int) -> dict[str, Any]:
    res = run(home, "kanban", "show", str(task_id), "--json")
    assert res.exit_code == 0, res.output
    data: dict[str, Any] = json.loads(res.output)
    return data


PLAN = {"fanout": True, "rationale": "two steps", "tasks": [
    {"title": "Find sources", "assignee": "researcher"},
    {"title": "Write it up", "assignee": "nobody", "parents": [0]}]}


def test_decompose_one_task_with_the_llm(tmp_path: Path) -> None:
    with threaded_llm_server() as server:
        setup_home(tmp_path, server, orchestrator_profile="writer", default_assignee="writer")
        root = triage(tmp_path, "Solar report", "research then write")
        server.reply(json.dumps(PLAN))
        res = run(tmp_path, "kanban", "decompose", str(root), "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["action"] == "decomposed" and out["decomposer"] == "llm"
        assert out["assignees"] == ["researcher", "writer"]
        assert "Title: Solar report" in server.prompt()
        assert "- researcher: Finds sources on the web." in server.prompt()
    first, second = (show(tmp_path, c) for c in out["children"])
    assert (first["status"], second["parents"]) == ("ready", [first["id"]])
    root_task = show(tmp_path, root)
    assert root_task["status"] == "todo" and root_task["assignee"] == "writer"
    assert sorted(root_task["parents"]) == sorted(out["children"])


def test_failure_is_recorded_and_reported(tmp_path: Path) -> None:
    with threaded_llm_server() as server:
        setup_home(tmp_path, server)
        root = triage(tmp_path, "Vague")
        server.reply("I cannot help with that.")
        res = run(tmp_path, "kanban", "decompose", str(root))
        assert res.exit_code == 1
        assert isinstance(res.exception, KanbanError)
        assert str(res.exception) == (
            f"task {root}: unusable LLM reply: the reply holds no JSON object")
        server.fail(500, "down")
        res = run(tmp_path, "kanban", "decompose", str(root), "--json")
        assert res.exit_code == 1 and json.loads(res.output)["action"] == "failed"
    task = show(tmp_path, root)
    assert task["status"] == "triage" and "HTTP 500" in task["decompose_error"]


def test_all_uses_offline_decomposer_without_a_client(tmp_path: Path) -> None:
    setup_home(tmp_path, None, auto_promote_children=False)
    chain = triage(tmp_path, "Chain", "1. find sources on the web\n2. write the report")
    single = triage(tmp_path, "Single", "just write something")
    res = run(tmp_path, "kanban", "decompose", "--all", "--json")
    assert res.exit_code == 0, res.output
    outcomes = json.loads(res.output)
    assert [(o["task_id"], o["action"], o["decomposer"]) for o in outcomes] == [
        (chain, "decomposed", "offline"), (single, "promoted", "offline")]
    assert outcomes[0]["assignees"] == ["researcher", "writer"]
    assert "no auxiliary client configured for kanban_decomposer" in outcomes[0]["note"]
    a, b = (show(tmp_path, c) for c in outcomes[0]["children"])
    assert (a["status"], b["status"], b["parents"]) == ("todo", "todo", [a["id"]])
    text = run(tmp_path, "kanban", "decompose", "--all").output
    assert text.strip() == "no triage tasks"


def test_human_output_and_argument_errors(tmp_path: Path) -> None:
    setup_home(tmp_path, None)
    root = triage(tmp_path, "Parallel", "- find sources\n- write reports")
    res = run(tmp_path, "kanban", "decompose", str(root))
    assert res.exit_code == 0
    assert "decomposed by the offline decomposer into 2 task(s)" in res.output
    again = run(tmp_path, "kanban", "decompose", str(root))
    assert again.exit_code == 1 and "only a triage task" in str(again.exception)
    assert run(tmp_path, "kanban", "decompose").exit_code == 2
    assert run(tmp_path, "kanban", "decompose", "1", "--all").exit_code == 2
    missing = run(tmp_path, "kanban", "decompose", "999")
    assert missing.exit_code == 1 and "not found" in str(missing.exception)
