"""The board verbs start without the imports they do not use, and read the config as before.

Each case runs ``relayboard`` as a real process and reports the modules it loaded, so a heavy
import put back on the start-up path of ``kanban create`` or ``list --json`` fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.board_settings import CACHE_FILE
from gateway.cli.invocation import emit_json_list
from tests.gateway.conftest import SUBPROCESS_TIMEOUT, clean_environ

# Loaded by the verbs that need them (the daemon, the dashboard, tables, schedules, LLMs), never
# by `kanban create` or `kanban list --json`.
HEAVY = ("pydantic", "pydantic_core", "gateway.config_schema", "gateway.config", "yaml",
         "anyio", "psutil", "croniter", "dateutil", "httpx", "starlette", "uvicorn",
         "prometheus_client", "rich", "gateway.dashboard", "gateway.daemon",
         "kanban.runtime.spawn", "kanban.agents.llm", "openai")

_RUN = """
import json, sys
from gateway.cli.root import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def run(home: Path, *args: str) -> tuple[str, list[str], set[str]]:
    """stdout, the stderr lines before the report, and the modules the process loaded."""
    proc = subprocess.run([sys.executable, "-c", _RUN, "--home", str(home), *args],
                          env=clean_environ(), capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, check=False)
    *errors, report = proc.stderr.splitlines()
    data = json.loads(report)
    assert data["code"] == 0, proc.stderr
    return proc.stdout, errors, set(data["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY
                  or any(m.startswith(h + ".") for h in HEAVY))


def test_create_and_list_json_load_no_heavy_module(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first, _, _ = run(home, "kanban", "create", "first")  # makes the home
    assert first.startswith("Created task 1 (ready)")
    run(home, "kanban", "list")  # a home that exists: the config's settings are cached
    out, errors, modules = run(home, "kanban", "create", "second", "--priority", "2")
    assert out.startswith("Created task 2 (ready)") and not errors
    assert heavy(modules) == []
    out, errors, modules = run(home, "kanban", "list", "--json")
    assert [t["title"] for t in json.loads(out)] == ["second", "first"] and not errors
    assert heavy(modules) == []


def test_config_file_is_read_through_the_cache_with_its_warnings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("kanban:\n  default_board: ops\n  colour: blue\n")
    run(home, "kanban", "boards", "create", "ops")
    for _ in range(2):  # the first run validates in full and caches, the second reads the cache
        out, errors, modules = run(home, "kanban", "create", "on ops")
        assert out.startswith("Created task") and "on ops" in out
        assert errors == ["config.yaml: unknown key kanban.colour (ignored)"]
    assert heavy(modules) == []
    assert (home / CACHE_FILE).is_file()
    out, _, _ = run(home, "kanban", "--board", "ops", "list", "--json")
    assert [t["title"] for t in json.loads(out)] == ["on ops", "on ops"]


def test_an_edited_config_is_validated_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.yaml"
    config.write_text("kanban:\n  failure_limit: 3\n")
    run(home, "kanban", "create", "cached")
    run(home, "kanban", "create", "from the cache")
    config.write_text("kanban:\n  failure_limit: 0\n")  # refused: the cache must not hide it
    for _ in range(2):  # a refusal is never cached
        proc = subprocess.run([sys.executable, "-m", "gateway", "--home", str(home), "kanban",
                               "create", "refused"], env=clean_environ(), capture_output=True,
                              text=True, timeout=SUBPROCESS_TIMEOUT, check=False)
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: config.yaml: kanban.failure_limit")
    config.write_text("kanban:\n  default_board: elsewhere\n")
    proc = subprocess.run([sys.executable, "-m", "gateway", "--home", str(home), "kanban",
                           "create", "x"], env=clean_environ(), capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, check=False)
    assert proc.returncode == 1 and "board 'elsewhere' does not exist" in proc.stderr


def test_a_config_naming_other_files_is_never_cached(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("dashboard:\n  token_file: /nonexistent\n")
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "gateway", "--home", str(home), "kanban",
                        "create", "x"], env=clean_environ(), capture_output=True, text=True,
                       timeout=SUBPROCESS_TIMEOUT, check=False)
    assert not (home / CACHE_FILE).exists()


def test_a_torn_cache_is_ignored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    run(home, "kanban", "create", "one")
    run(home, "kanban", "create", "two")
    (home / CACHE_FILE).write_text('{"key": ')
    out, errors, _ = run(home, "kanban", "create", "three")
    assert out.startswith("Created task 3") and not errors
    assert json.loads((home / CACHE_FILE).read_text())["settings"]["default_board"] == "default"


def test_json_list_is_one_item_a_line_and_falls_back_for_what_orjson_refuses(
        capsys: pytest.CaptureFixture[str]) -> None:
    items = [{"id": 1, "title": "héllo ✓", "at": 1796690373.5367923, "path": Path("/x")},
             {"id": 2, "title": "b", "metadata": {"z": 1, "a": [None, True]}}]
    emit_json_list(items)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 4
    assert "héllo ✓" in out  # UTF-8, not \\u escapes
    assert json.loads(out) == [{**items[0], "path": "/x"}, items[1]]
    assert list(json.loads(lines[2].rstrip(","))["metadata"]) == ["z", "a"]  # key order kept
    huge = [{"id": 3, "n": 2**70}, {"id": 4}]
    emit_json_list(huge)
    out = capsys.readouterr().out
    assert out.splitlines()[1] == '{"id": 3, "n": 1180591620717411303424},'
    emit_json_list([])
    assert capsys.readouterr().out == "[]\n"
