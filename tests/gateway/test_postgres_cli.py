"""The user's path on PostgreSQL: `storage:` in config.yaml, the DSN in the variable it names, two
homes as two hosts sharing one board, and a worker that finishes its task through the real
`relayboard kanban complete` on the other host's dispatch."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kanban.storage.pg import drop_namespace
from tests.gateway.conftest import clean_environ
from tests.storage_backends import pg_dsn

pytestmark = pytest.mark.postgres_only

DSN_VAR = "TEAM_BOARD_DSN"


@pytest.fixture
def namespace() -> Iterator[str]:
    name = "c" + secrets.token_hex(5)
    yield name
    drop_namespace(pg_dsn(), name)


def host(root: Path, name: str, namespace: str) -> Path:
    home = root / name
    home.mkdir()
    (home / "config.yaml").write_text(
        f"storage:\n  backend: postgresql\n  dsn_env: {DSN_VAR}\n  namespace: {namespace}\n",
        encoding="utf-8")
    return home


def run(home: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--home", str(home), *args],
        env=clean_environ({DSN_VAR: pg_dsn(), **(env or {})}), capture_output=True, text=True,
        timeout=60, check=False)


def ok_json(home: Path, *args: str) -> Any:
    done = run(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_two_hosts_share_one_board_and_a_worker_completes_through_the_cli(
    tmp_path: Path, namespace: str,
) -> None:
    a = host(tmp_path, "host-a", namespace)
    b = host(tmp_path, "host-b", namespace)
    script = (f"{sys.executable} -m gateway kanban complete --result 'done on b' "
              "--summary 'finished by the worker'")
    made = run(b, "profile", "create", "w", "--command", script)
    assert made.returncode == 0, made.stderr
    # Host A files the task; host B sees it and runs it.
    task = ok_json(a, "kanban", "create", "shared work")
    assert [t["id"] for t in ok_json(b, "kanban", "list")] == [task["id"]]
    assign = run(b, "kanban", "assign", str(task["id"]), "w")
    assert assign.returncode == 0, assign.stderr
    report = ok_json(b, "kanban", "dispatch", "--wait", "20")
    assert [s["task_id"] for s in report["spawned"]] == [task["id"]]
    shown = ok_json(a, "kanban", "show", str(task["id"]))
    assert shown["status"] == "done", shown
    assert shown["result"] == "done on b"
    # The board's data is in PostgreSQL: host A has no SQLite file for it.
    assert not (a / "boards" / "default" / "kanban.db").exists()
    boards = ok_json(b, "kanban", "boards", "list")
    assert [x["slug"] for x in boards] == ["default"]


def test_postgresql_without_its_dsn_is_one_clear_line(tmp_path: Path, namespace: str) -> None:
    home = host(tmp_path, "h", namespace)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--home", str(home), "kanban", "list"],
        env=clean_environ(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert f"{DSN_VAR} (storage.dsn_env) is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_wrong_dsn_never_shows_its_password(tmp_path: Path, namespace: str) -> None:
    home = host(tmp_path, "h", namespace)
    bad = "postgresql://relayboard:Sup3rSecret@127.0.0.1:1/relayboard"
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--home", str(home), "kanban", "list"],
        env=clean_environ({DSN_VAR: bad}), capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode != 0
    assert "Sup3rSecret" not in done.stderr + done.stdout
    assert "cannot connect to PostgreSQL 127.0.0.1:1/relayboard" in done.stderr
