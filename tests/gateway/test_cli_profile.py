"""``relayboard profile …`` through the real CLI entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from gateway.cli import cli
from kanban.errors import KanbanError
from tests.fakes.llm_server import LLMServer, threaded_llm_server


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=True)


def write_config(home: Path, server: LLMServer | None) -> None:
    aux = {}
    if server is not None:
        aux = {"profile_describer": {"base_url": server.base_url, "model": "describer",
                                     "timeout": 5, "retries": 0}}
    (home / "config.yaml").write_text(yaml.safe_dump({"auxiliary": aux}))


def test_create_list_show_json(tmp_path: Path) -> None:
    res = run(tmp_path, "profile", "create", "coder", "--description", "Writes Python.",
              "--command", "my-agent --task {task_id} 'a b'", "--model", "m1", "--json")
    assert res.exit_code == 0, res.output
    made = json.loads(res.output)
    assert made["name"] == "coder" and made["command"] == ["my-agent", "--task", "{task_id}",
                                                           "a b"]
    run(tmp_path, "profile", "create", "plain")
    listed = json.loads(run(tmp_path, "profile", "list", "--json").output)
    assert [(p["name"], p["description"], p["model"]) for p in listed] == [
        ("coder", "Writes Python.", "m1"), ("plain", "", None)]
    shown = json.loads(run(tmp_path, "profile", "show", "coder", "--json").output)
    assert shown["description_auto"] is False and shown["problem"] is None


def test_human_output_is_a_table(tmp_path: Path) -> None:
    run(tmp_path, "profile", "create", "coder", "--description", "Writes Python.")
    run(tmp_path, "profile", "create", "blank")
    out = run(tmp_path, "profile", "list").output
    assert "coder" in out and "Writes Python." in out and "(undescribed)" in out
    shown = run(tmp_path, "profile", "show", "coder").output
    assert "(built-in worker)" in shown and "Writes Python." in shown


def test_errors(tmp_path: Path) -> None:
    run(tmp_path, "profile", "create", "coder")
    dup = run(tmp_path, "profile", "create", "coder")
    assert dup.exit_code == 1 and isinstance(dup.exception, KanbanError)
    assert "already exists" in str(dup.exception)
    missing = run(tmp_path, "profile", "show", "ghost")
    assert missing.exit_code == 1 and "does not exist" in str(missing.exception)
    bad = run(tmp_path, "profile", "create", "bad name!")
    assert bad.exit_code == 1 and "invalid profile name" in str(bad.exception)


def test_corrupt_profile_is_listed_with_its_problem(tmp_path: Path) -> None:
    run(tmp_path, "profile", "create", "broken")
    (tmp_path / "profiles" / "broken" / "profile.yaml").write_text("description: [oops")
    res = run(tmp_path, "profile", "list", "--json")
    assert res.exit_code == 0
    [p] = json.loads(res.output)
    assert "unreadable profile.yaml" in p["problem"]


def test_describe_text_and_read(tmp_path: Path) -> None:
    run(tmp_path, "profile", "create", "coder")
    res = run(tmp_path, "profile", "describe", "coder", "--text", "Python and SQL.", "--json")
    assert json.loads(res.output) == [{"name": "coder", "action": "set",
                                       "description": "Python and SQL.", "auto": False,
                                       "reason": None}]
    assert run(tmp_path, "profile", "describe", "coder").output.strip() == (
        "coder: Python and SQL.")


def test_describe_auto_against_fake_server(tmp_path: Path) -> None:
    run(tmp_path, "profile", "create", "charts", "--model", "qwen")
    run(tmp_path, "profile", "create", "human", "--description", "Hand written.")
    with threaded_llm_server() as server:
        write_config(tmp_path, server)
        server.reply('{"description": "Draws charts."}')
        res = run(tmp_path, "profile", "describe", "--all", "--auto", "--json")
        assert res.exit_code == 0, res.output
        outcomes = {o["name"]: o for o in json.loads(res.output)}
        assert outcomes["charts"]["action"] == "described"
        assert outcomes["human"]["action"] == "skipped"
        assert len(server.completions()) == 1
        assert "Agent name: charts" in server.prompt()
        server.reply('{"description": "Replaced."}')
        res = run(tmp_path, "profile", "describe", "human", "--auto", "--overwrite")
        assert res.exit_code == 0 and "Replaced. (auto)" in res.output
    data = yaml.safe_load((tmp_path / "profiles" / "charts" / "profile.yaml").read_text())
    assert data == {"description": "Draws charts.", "description_auto": True, "model": "qwen"}


def test_describe_auto_unconfigured_is_one_error_line(tmp_path: Path) -> None:
    run(tmp_path, "profile", "create", "charts")
    env = {**os.environ, "RELAYBOARD_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "gateway", "profile", "describe", "charts",
                           "--auto"], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: no auxiliary client configured for profile_describer"


def test_describe_argument_checks(tmp_path: Path) -> None:
    run(tmp_path, "profile", "create", "charts")
    both = run(tmp_path, "profile", "describe", "charts", "--text", "x", "--auto")
    assert both.exit_code == 1 and "not both" in str(both.exception)
    neither = run(tmp_path, "profile", "describe")
    assert neither.exit_code == 1 and "--all" in str(neither.exception)


def test_list_marks_a_profile_whose_file_is_unreadable_and_escapes_markup(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    made = runner.invoke(cli, [*home, "profile", "create", "odd", "--description",
                               "uses [/] and [bold]markup[/bold]"])
    assert made.exit_code == 0, made.output
    broken = tmp_path / "profiles" / "broken"
    broken.mkdir(parents=True)
    (broken / "profile.yaml").write_text("description: [unclosed\n", encoding="utf-8")
    listed = runner.invoke(cli, [*home, "profile", "list"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert "[problem: unreadable profile.yaml" in listed.output
    assert "uses [/] and [bold]markup[/bold]" in listed.output
    shown = runner.invoke(cli, [*home, "profile", "show", "odd"], terminal_width=200)
    assert shown.exit_code == 0 and "[bold]markup[/bold]" in shown.output


def test_an_unreadable_profile_is_reported_as_such_never_as_the_built_in_worker(
        tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    folder = tmp_path / "profiles" / "locked"
    (folder / "profile.yaml").mkdir(parents=True)  # unreadable as a file, whoever runs this
    shown = runner.invoke(cli, [*home, "profile", "show", "locked"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.stdout
    assert "(unknown: the profile is unreadable)" in shown.stdout
    assert "built-in worker" not in shown.stdout
    listed = runner.invoke(cli, [*home, "profile", "list"], env={"COLUMNS": "200"})
    assert "[problem: unreadable profile.yaml: Is a directory]" in listed.stdout
    data = json.loads(runner.invoke(cli, [*home, "profile", "show", "locked", "--json"]).output)
    assert data["unreadable"] == "profile.yaml: Is a directory" and data["command"] is None
