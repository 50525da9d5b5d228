"""The dashboard trusts "this machine" without a token, but not the code a worker runs on it: a
request that changes something, from a worker's process (even one that dropped the worker
variables) is refused; the same request from the operator's own process goes through."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import Cli, clean_environ, dashboard_process

# Posts a task and a chat message to the dashboard at argv[1]; prints each status and error.
CLIENT = """
import json, sys, urllib.error, urllib.request
url = sys.argv[1]
out = {}
for name, path, body in (("task", "api/tasks", {"title": "from a worker"}),
                         ("chat", "chat/messages", {"text": "/kanban create via chat"}),
                         ("read", "api/board", None)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            out[name] = [resp.status, ""]
    except urllib.error.HTTPError as exc:
        out[name] = [exc.code, json.loads(exc.read() or b"{}").get("error", "")]
print(json.dumps(out))
"""
WORKER_VARS = {"RELAYBOARD_TASK_ID": "7", "RELAYBOARD_RUN_ID": "3", "RELAYBOARD_LEASE": "lease"}


@pytest.fixture
def dashboard(rb: Cli) -> Iterator[str]:
    with dashboard_process(rb) as served:
        yield served.url


def client_argv(url: str, tmp_path: Path, *wrapper: str) -> list[str]:
    script = tmp_path / "client.py"
    script.write_text(CLIENT, encoding="utf-8")
    return [*wrapper, sys.executable, str(script), url]


def call(argv: list[str], env: dict[str, str]) -> dict[str, list[object]]:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, list[object]] = json.loads(done.stdout)
    return result


def test_a_worker_process_may_read_but_not_write(dashboard: str, tmp_path: Path) -> None:
    worker = call(client_argv(dashboard, tmp_path), clean_environ(WORKER_VARS))
    assert worker["read"][0] == 200
    for name in ("task", "chat"):
        status, error = worker[name]
        assert status == 403, worker
        assert "comes from a worker's process" in str(error)
    # Dropping the variables does not help: the shell that started the client has them.
    unset = call(client_argv(dashboard, tmp_path, "sh", "-c", 'env -u RELAYBOARD_TASK_ID '
                             '-u RELAYBOARD_LEASE -u RELAYBOARD_RUN_ID "$@"; exit $?', "sh"),
                 clean_environ(WORKER_VARS))
    assert unset["task"][0] == 403 and unset["chat"][0] == 403, unset
    board = httpx.get(dashboard + "api/tasks", timeout=10).json()
    assert board == []


def test_the_operators_own_process_still_writes(dashboard: str, tmp_path: Path) -> None:
    operator = call(client_argv(dashboard, tmp_path), clean_environ())
    assert operator["task"][0] == 201 and operator["chat"][0] == 201, operator
    titles = [t["title"] for t in httpx.get(dashboard + "api/tasks", timeout=10).json()]
    assert titles == ["from a worker"]


async def test_a_recorded_worker_with_a_clean_environment_is_refused(
        dashboard: str, rb: Cli, tmp_path: Path) -> None:
    """A worker whose parent is gone and that replaced its environment is still known: the
    dispatcher recorded its pid on the run."""
    from kanban.home import Boards
    from kanban.runtime.spawn import process_start_time

    script = tmp_path / "client.py"
    script.write_text(CLIENT, encoding="utf-8")
    # Waits for a line on stdin, then makes its requests: its pid is recorded first.
    client = subprocess.Popen(
        [sys.executable, "-c", "import sys, runpy; sys.stdin.readline(); "
         f"sys.argv = ['client', {dashboard!r}]; runpy.run_path({str(script)!r})"],
        env=clean_environ(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    boards = Boards(rb.home)
    try:
        board = await boards.open("default")
        task = (await board.create_task("running")).task
        claim = await board.claim(task.id, claimed_by="dispatcher")
        await board.set_worker(claim.run_id, pid=client.pid,
                               started_at=process_start_time(client.pid))
        out, _ = client.communicate("go\n", timeout=60)
    finally:
        await boards.close()
        if client.poll() is None:
            client.kill()
    result = json.loads(out)
    assert result["task"][0] == 403 and result["chat"][0] == 403, result
    assert result["read"][0] == 200
