"""Template injection: values substituted into a profile's ``command`` never change the command.

Every attack here is performed for real — the expanded command runs in a real shell, or a real
dispatcher spawns the worker — and the canary file the attack would create must never appear.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from kanban.agents.profiles import Profiles
from kanban.errors import InvalidInput, SpawnError
from kanban.runtime.spawn import log_tail
from kanban.runtime.template import TemplateValues, code_words, expand_template
from kanban.runtime.workerenv import script_dir
from tests.kanban.workers.harness import dispatch_env

ATTACK = "x;touch {canary}"


def _values(workspace: str = "/w", model: str = "m1", prompt: str = "/p.md") -> TemplateValues:
    return TemplateValues(7, "ops", workspace, prompt, model)


def _nasty(canary: Path) -> list[str]:
    c = str(canary)
    return [f"/w/$(touch {c})", f"/w/`touch {c}`", f"/w/;touch {c};", f"/w/'; touch {c}; '",
            f'/w/"; touch {c}; "', f'/w/\\"; touch {c} #', f"/w/&& touch {c}", "/w/a b  c",
            "/w/$HOME", "/w/*", "/w/$'\\x41'", "/w/\\", "/w/{model}", f"/w/|touch {c}|"]


CONTEXTS = [  # (script, what it prints for value v)
    ("printf '%s\\n' {workspace}", "{}"),
    ("printf '%s\\n' \"{workspace}\"", "{}"),
    ("printf '%s\\n' '{workspace}'", "{}"),
    ("printf '%s\\n' \"pre-{workspace}-post\"", "pre-{}-post"),
    ("printf '%s\\n' \"$(printf '%s' {workspace})\"", "{}"),
    ("printf '%s\\n' \"$(printf '%s' \"{workspace}\")\"", "{}"),
    ("x={workspace}; printf '%s\\n' \"$x\"", "{}"),
    ("(printf '%s\\n' {workspace})", "{}"),
    ("printf '%s\\n' {workspace} # {workspace}", "{}"),
    ("printf '%s\\n' `printf '%s' {workspace}`", "{}"),
    ("# it's \"{workspace}\"\nprintf '%s\\n' {workspace}", "{}"),
]
# Made only of the characters a value embedded in a script may hold.
PLAIN_VALUES = ["/w", "/srv/a-b_c.d", "/w/llama3.1:8b+x"]


@pytest.mark.parametrize("script,expected", CONTEXTS)
def test_values_inside_a_shell_script_are_refused_unless_plain(
        tmp_path: Path, script: str, expected: str) -> None:
    canary = tmp_path / "pwned"
    for value in _nasty(canary):
        with pytest.raises(SpawnError, match=r"\{workspace\} is inside a larger word .*"
                                             r"use \"\$RELAYBOARD_WORKSPACE\""):
            expand_template(["sh", "-c", script], _values(workspace=value))
    for value in PLAIN_VALUES:
        argv = expand_template(["sh", "-c", script], _values(workspace=value))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False,
                              cwd=tmp_path)
        assert done.returncode == 0, (argv, done.stderr)
        assert done.stdout == expected.format(value) + "\n", argv
    assert not canary.exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for $'...' quoting")
def test_ansi_c_quoted_context_in_bash(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    template = ["bash", "-c", "printf '%s\\n' $'{workspace}'"]
    for value in _nasty(canary):
        with pytest.raises(SpawnError, match="RELAYBOARD_WORKSPACE"):
            expand_template(template, _values(workspace=value))
    for value in PLAIN_VALUES:
        argv = expand_template(template, _values(workspace=value))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.stdout == value + "\n", argv
    assert not canary.exists()


def test_whole_words_carry_any_value_as_one_argument(tmp_path: Path) -> None:
    """A whole word (or --flag=value) of a program that takes it as data is never re-parsed:
    the nastiest values go through unchanged, as one argument, and run nothing."""
    canary = tmp_path / "pwned"
    for value in _nasty(canary):
        argv = expand_template(
            ["sh", "-c", 'printf "%s|%s\\n" "$1" "$2"', "sh", "{workspace}", "--at={workspace}"],
            _values(workspace=value))
        assert argv[4:] == [value, f"--at={value}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False,
                              cwd=tmp_path)
        assert done.stdout == f"{value}|--at={value}\n", argv
    assert not canary.exists()


def test_plain_values_and_non_shell_words_are_left_exactly_as_written() -> None:
    values = _values(workspace="/srv/w 1", model="openai/gpt-4o")
    assert expand_template(["sh", "-c", "echo {task_id} {model} {board}"], values) == [
        "sh", "-c", "echo 7 openai/gpt-4o ops"]
    # Not a shell script: one argv word each, nothing re-parses them.
    assert expand_template(["agent", "--cwd", "{workspace}", "{model}"], values) == [
        "agent", "--cwd", "/srv/w 1", "openai/gpt-4o"]
    assert expand_template(["agent", "--cwd={workspace}"], values) == ["agent", "--cwd=/srv/w 1"]
    assert expand_template(["sh", "run.sh", "{workspace}"], values)[2] == "/srv/w 1"
    # A value is substituted once: a "{model}" inside a path is not expanded again.
    assert expand_template(["a", "{workspace}"], _values(workspace="/w/{model}"))[1] == \
        "/w/{model}"


def test_code_words_are_found_from_the_template_alone() -> None:
    assert code_words(["sh", "-c", "s"]) == {2}
    assert code_words(["/bin/bash", "-lc", "s", "arg0", "{workspace}"]) == {2}
    assert 5 in code_words(["bash", "-e", "-o", "pipefail", "-c", "s"])
    assert 6 in code_words(["bash", "-e", "-o", "pipefail", "-c", "--", "s"])
    assert 5 in code_words(["env", "-i", "A=1", "zsh", "-c", "s"])
    assert 3 in code_words(["/usr/bin/dash", "--norc", "-c", "s"])
    assert 4 in code_words(["timeout", "60", "bash", "-lc", "s"])
    assert 5 in code_words(["nice", "-n", "5", "sh", "-ec", "s"])
    assert 2 in code_words(["python3", "-Ic", "s"])
    assert 2 in code_words(["perl", "-e", "s"])
    assert {3, 4} <= code_words(["tmux", "new-session", "-d", "echo", "{workspace}"])
    assert 1 in code_words(["eval", "{workspace}"])
    assert 1 in code_words(["agent", "--eval={workspace}"])
    # Arguments, not code: a script's operand, what follows a shell's command string.
    assert code_words(["sh", "script.sh", "{workspace}"]) == frozenset()
    assert 4 not in code_words(["sh", "-c", "s", "sh", "{workspace}"])
    assert 3 not in code_words(["python3", "-c", "s", "{workspace}"])
    assert 2 not in code_words(["agent", "--cwd", "{workspace}"])
    assert code_words(["sh", "-c"]) == frozenset()


@pytest.mark.parametrize("template", [
    ["sh", "-c", "{workspace}"], ["bash", "-lc", "{workspace}"],
    ["env", "A=1", "sh", "-c", "{workspace}"],
    ["bash", "-o", "pipefail", "-c", "--", "{workspace}"],
    ["python3", "-Ic", "{workspace}"], ["perl", "-e", "{workspace}"],
    ["tmux", "new-session", "-d", "{workspace}"], ["eval", "{workspace}"],
    ["ssh", "host", "ls", "{workspace}"], ["agent", "--eval={workspace}"],
    ["env", "-S", "{workspace}"],
])
def test_a_whole_word_that_a_program_runs_as_code_needs_plain_values(template: list[str]) -> None:
    with pytest.raises(SpawnError, match=r"\{workspace\} is a word of the command template "
                                         r"that a program runs as code"):
        expand_template(template, _values(workspace="/w/x;touch /tmp/p;:"))
    assert expand_template(template, _values(workspace="/srv/w"))[-1].endswith("/srv/w")


def test_contexts_no_quoting_can_hold_are_refused() -> None:
    bad = _values(workspace="/w/$(touch x)")
    for template in (["sh", "-c", "cat <<EOF\n{workspace}\nEOF"],
                     ["sh", "-c", "echo `echo {workspace}`"],
                     ["python3", "-c", "print('{workspace}')"],
                     ["node", "-e", "console.log('{workspace}')"]):
        with pytest.raises(SpawnError, match="RELAYBOARD_WORKSPACE"):
            expand_template(template, bad)
        # ... while the everyday values still go through those same templates
        assert expand_template(template, _values(workspace="/srv/w"))


@pytest.mark.parametrize("value", ["-rf", "--exec=x", "+x"])
def test_values_that_read_as_options_are_refused(value: str) -> None:
    with pytest.raises(SpawnError, match="must start with a letter, a digit or /"):
        expand_template(["agent", "{board}"], TemplateValues(7, value, "/w", "/p.md", "m1"))


@pytest.mark.parametrize("value", ["x;touch /tmp/p", "-rf", "a b", "$(id)", "a\nb", "", "m" * 201,
                                   "gpt'4"])
def test_bad_model_names_are_refused_everywhere_they_enter(tmp_path: Path, value: str) -> None:
    profiles = Profiles(tmp_path)
    if value:
        with pytest.raises(SpawnError):
            expand_template(["a", "{model}"], _values(model=value))
        with pytest.raises(InvalidInput, match="invalid model name"):
            profiles.create("p", model=value)


async def test_model_injection_is_refused_at_create_and_set_model(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    async with dispatch_env(tmp_path) as env:
        env.profile("p", ["sh", "-c", "echo {model}; relayboard kanban complete"])
        with pytest.raises(InvalidInput, match="invalid model name"):
            await env.board.create_task("t", assignee="p", model_override=f"x;touch {canary}")
        task = await env.task(assignee="p", model_override="gpt-4o")
        with pytest.raises(InvalidInput, match="invalid model name"):
            await env.board.set_model(task.id, f"x;touch {canary}")
        assert (await env.board.get_task(task.id)).model_override == "gpt-4o"
    assert not canary.exists()


def test_model_injection_through_the_cli_gets_one_line(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    relayboard = os.path.join(script_dir(), "relayboard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    home = ["--home", str(tmp_path / "home")]
    made = subprocess.run([relayboard, *home, "profile", "create", "p", "--command",
                           "sh -c 'echo {model}'"], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    for args in (["kanban", "create", "t", "--assignee", "p", "--model", f"x;touch {canary}"],
                 ["profile", "create", "q", "--model", f"x;touch {canary}"]):
        done = subprocess.run([relayboard, *home, *args], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "invalid model name" in lines[0], done.stderr
    assert not canary.exists()


async def test_a_bad_model_from_an_old_row_or_a_hand_edited_profile_never_runs(
        tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    async with dispatch_env(tmp_path) as env:
        env.profile("p", ["sh", "-c", "echo {model} && relayboard kanban complete"])
        (env.profiles.path("p") / "profile.yaml").write_text(
            f"command: \"sh -c 'echo {{model}} && relayboard kanban complete'\"\n"
            f"model: 'x;touch {canary}'\n", encoding="utf-8")
        loaded = env.profiles.load("p")
        assert loaded.model is None and loaded.problem and "invalid model name" in loaded.problem
        old = await env.task(assignee="p")
        # A row written before model names were validated.
        with sqlite3.connect(env.board.db.path) as raw:
            raw.execute("UPDATE tasks SET model_override=? WHERE id=?",
                        (f"x;touch {canary}", old.id))
        await env.board.poll_external()
        report = await env.dispatcher.run_cycle(env.board)
        assert [f["task_id"] for f in report.spawn_failed] == [old.id]
        assert "invalid model name" in report.spawn_failed[0]["error"]
    assert not canary.exists()


NAMES = ["ws$(touch {c})", "ws;touch {c};x", "ws`touch {c}`", "ws' ; touch {c} ; '",
         'ws"; touch {c}; "', "ws && touch {c}"]
SCRIPT = ["sh", "-c", "cd {workspace} && printf %s {workspace} > seen.txt && "
                      "printf %s \"{workspace}\" > seen2.txt && "
                      "relayboard kanban complete --result ok"]


@pytest.mark.parametrize("name", NAMES)
async def test_dir_workspace_paths_cannot_inject(tmp_path: Path, name: str) -> None:
    canary = tmp_path / "pwned"
    workspace = tmp_path / "user" / name.format(c=canary)
    async with dispatch_env(tmp_path) as env:
        env.profile("p", SCRIPT)
        with pytest.raises(InvalidInput, match="a dir: workspace path may only contain") as no:
            await env.task(assignee="p", workspace=f"dir:{workspace}")
        assert "\n" not in str(no.value)
        assert await env.board.list_tasks() == []
    assert not canary.exists()


@pytest.mark.parametrize("name", NAMES)
async def test_an_old_row_with_a_hostile_dir_workspace_is_refused_at_spawn(
        tmp_path: Path, name: str) -> None:
    """A path written before dir: paths were checked still never reaches a shell: the spawn
    is refused, counted, and recorded on the task."""
    canary = tmp_path / "pwned"
    workspace = tmp_path / "user" / name.format(c=canary)
    async with dispatch_env(tmp_path) as env:
        env.profile("p", SCRIPT)
        task = await env.task(assignee="p", workspace=f"dir:{tmp_path / 'user' / 'ok'}")
        with sqlite3.connect(env.board.db.path) as raw:
            raw.execute("UPDATE tasks SET workspace_path=? WHERE id=?", (str(workspace), task.id))
        await env.board.poll_external()
        report = await env.dispatcher.run_cycle(env.board)
        assert [f["task_id"] for f in report.spawn_failed] == [task.id]
        error = report.spawn_failed[0]["error"]
        assert error.startswith("{workspace} is inside a larger word") and "\n" not in error
        assert '"$RELAYBOARD_WORKSPACE"' in error
        again = await env.board.get_task(task.id)
        assert again.last_failure_error == error and again.consecutive_failures == 1
        assert [e.payload["error"] for e in await env.events(task.id, "spawn_failed")] == [error]
    assert not canary.exists()


async def test_a_plain_dir_workspace_reaches_the_script(tmp_path: Path) -> None:
    workspace = tmp_path / "user" / "ws-1.2_x"
    async with dispatch_env(tmp_path) as env:
        env.profile("p", SCRIPT)
        task = await env.task(assignee="p", workspace=f"dir:{workspace}")
        await env.dispatcher.run_cycle(env.board)
        await env.cycle_until_exited()
        done = await env.board.get_task(task.id)
        assert done.status == "done", log_tail(env.board.log_path(task.id))
    assert (workspace / "seen.txt").read_text(encoding="utf-8") == str(workspace)
    assert (workspace / "seen2.txt").read_text(encoding="utf-8") == str(workspace)


async def test_a_home_path_with_shell_syntax_cannot_inject_through_the_prompt_file(
        tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    root = tmp_path / f"h $(touch {canary})"
    root.mkdir(parents=True)
    async with dispatch_env(root) as env:
        env.profile("p", ["sh", "-c", "cat {prompt_file} > got.md && "
                                      "relayboard kanban complete --result ok"])
        env.profile("q", ["sh", "-c", 'cat "$RELAYBOARD_PROMPT_FILE" > got.md && '
                                      "relayboard kanban complete --result ok"])
        refused = await env.task(assignee="p", body="the body")
        report = await env.dispatcher.run_cycle(env.board)
        assert [f["task_id"] for f in report.spawn_failed] == [refused.id]
        assert "RELAYBOARD_PROMPT_FILE" in report.spawn_failed[0]["error"]
        # The way the refusal points to works with the very same path.
        task = await env.task(assignee="q", body="the body")
        await env.dispatcher.run_cycle(env.board)
        await env.cycle_until_exited()
        done = await env.board.get_task(task.id)
        assert done.status == "done", log_tail(env.board.log_path(task.id))
    assert not canary.exists()


async def test_workspace_paths_with_newlines_are_refused(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        with pytest.raises(InvalidInput, match="newline"):
            await env.board.create_task("t", workspace=f"dir:{tmp_path}/a\ntouch x")
