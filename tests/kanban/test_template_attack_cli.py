"""The command-template attack, end to end through the real CLI (``python -m gateway``).

An operator's profile runs ``timeout 60 bash -lc 'echo {workspace} …'``; a task creator tries
to make that script run ``touch``, first with a ``dir:`` workspace holding shell syntax, then
with a scratch workspace under a home whose path holds it. The first is refused at create, the
second at spawn — recorded on the task and counted — and the marker file never appears.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.gateway.conftest import assert_one_error_line

TEMPLATE = ("timeout 60 bash -lc "
            "'echo {workspace} >/dev/null; relayboard kanban complete --result ok'")


def _cli(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    return subprocess.run([sys.executable, "-m", "gateway", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120, check=False, env=env,
                          cwd=cwd)


def _json(home: Path, *args: str, cwd: Path) -> Any:
    done = _cli(home, *args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _markers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith("PWNED")]


def test_a_dir_workspace_with_shell_syntax_is_refused_at_create(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = _cli(home, "profile", "create", "tw", "--command", TEMPLATE, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    spec = f"dir:{tmp_path}/w/y;touch {tmp_path}/PWNED;:"
    refused = _cli(home, "kanban", "create", "y", "--assignee", "tw", "--workspace", spec,
                   cwd=tmp_path)
    line = assert_one_error_line(
        refused, contains="a dir: workspace path may only contain letters, digits and _ . / -")
    assert f"touch {tmp_path}/PWNED" in line  # the refused path is named
    assert _json(home, "kanban", "list", cwd=tmp_path) == []
    report = _json(home, "kanban", "dispatch", "--wait", "5", cwd=tmp_path)
    assert report["spawned"] == [] and report["spawn_failed"] == []
    assert _markers(tmp_path) == []


def test_a_workspace_outside_the_safe_set_is_refused_at_spawn_and_recorded(
        tmp_path: Path) -> None:
    # A home an operator chose, whose path a shell would read as two commands and a quote.
    home = tmp_path / "it's home;touch PWNED;:"
    made = _cli(home, "profile", "create", "tw", "--command", TEMPLATE, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    created = _json(home, "kanban", "create", "y", "--assignee", "tw", cwd=tmp_path)
    task_id = created["id"]
    report = _json(home, "kanban", "dispatch", "--wait", "5", cwd=tmp_path)
    assert report["spawned"] == []
    [failed] = report["spawn_failed"]
    assert failed["task_id"] == task_id
    error = failed["error"]
    assert "\n" not in error
    assert error.startswith("{workspace} is inside a larger word of the command template"), error
    assert error.endswith('use "$RELAYBOARD_WORKSPACE" in the script instead'), error
    task = _json(home, "kanban", "show", str(task_id), cwd=tmp_path)
    assert task["last_failure_error"] == error
    assert task["consecutive_failures"] == 1
    assert _markers(tmp_path) == []

    # The way the error points to works from that very home.
    again = _cli(home, "profile", "create", "tv", "--command",
                 "timeout 60 sh -c 'cd \"$RELAYBOARD_WORKSPACE\" && "
                 "relayboard kanban complete --result \"$(pwd)\"'", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = _json(home, "kanban", "create", "z", "--assignee", "tv", cwd=tmp_path)
    second_id = second["id"]
    report = _json(home, "kanban", "dispatch", "--wait", "60", cwd=tmp_path)
    assert [s["task_id"] for s in report["spawned"]] == [second_id], report
    done = _json(home, "kanban", "show", str(second_id), cwd=tmp_path)
    assert done["status"] == "done", done
    assert done["result"].startswith(str(home)), done["result"]
    assert _markers(tmp_path) == []
