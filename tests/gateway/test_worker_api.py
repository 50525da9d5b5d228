"""The worker API's rules: the lease decides who is asking, a run acts on its own task with its
run's rights, arguments are the verb's own, artifacts stay in the workspace, a retried
completion is not an error, and 64 workers completing at once lose and double nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.commands import Services
from gateway.worker_api import serving, socket_path
from gateway.worker_api.client import ApiError, call
from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.home import Boards
from kanban.models import Claim

ROOT = Path(__file__).resolve().parents[2]
WITHIN = 60.0


@dataclass
class Api:
    home: Path
    board: Board
    path: Path

    async def ask(self, verb: str, args: dict[str, Any], claim: Claim, *,
                  lease: str | None = None, task_id: int | None = None) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(
            lambda: call(self.path, verb, args, task_id=task_id or claim.task_id,
                         lease=lease or claim.lease, board="default", patience=5))

    async def refused(self, verb: str, args: dict[str, Any], claim: Claim,
                      **kw: Any) -> ApiError:
        with pytest.raises(ApiError) as caught:
            await self.ask(verb, args, claim, **kw)
        assert "\n" not in str(caught.value)
        return caught.value


@contextlib.asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[Api]:
    """A home with a profile and its board, its worker API served for the block (a context
    manager, not a fixture: the server's task group must end in the task that started it)."""
    home = tmp_path / "home"
    boards = Boards(home)
    profiles = Profiles(home)
    profiles.create("writer")
    try:
        board = await boards.open("default")
        async with serving(Services(boards=boards, profiles=profiles), socket_path(home)):
            yield Api(home, board, socket_path(home))
    finally:
        await boards.close()


async def claimed(api: Api, title: str, *, may_create: bool = False) -> Claim:
    task = (await api.board.create_task(title)).task
    return await api.board.claim(task.id, claimed_by="dispatcher", may_create=may_create)


async def test_a_run_completes_its_own_task_and_nothing_else(tmp_path: Path) -> None:
    async with served(tmp_path) as api:
        mine = await claimed(api, "mine")
        other = await claimed(api, "someone else's")
        # Another task's id with my lease: the lease is only good for its own run.
        error = await api.refused("complete", {"result": "x"}, mine, task_id=other.task_id)
        assert error.kind == "lease"
        # A forged lease for my task.
        error = await api.refused("complete", {"result": "x"}, mine, lease="forged")
        assert error.kind == "lease"
        # The same for the other writes answered without reading the run first: the kernel's
        # own transaction checks the lease.
        for verb, args in (("block", {"words": "stuck"}), ("heartbeat", {})):
            for forged in ({"task_id": other.task_id}, {"lease": "forged"}):
                error = await api.refused(verb, args, mine, **forged)
                assert error.kind == "lease" and "lease" in str(error), (verb, forged)
        # Naming another task in the arguments: the run's rights are its own task's.
        error = await api.refused("complete", {"task_id": other.task_id}, mine)
        assert error.kind == "refused" and "its own task" in str(error)
        # The lease and --force are not the arguments' to give.
        for field in ("lease", "force"):
            error = await api.refused("complete", {field: other.lease}, mine)
            assert error.kind == "usage" and f"{field} is set here" in str(error)
        answer = await api.ask("complete", {"result": "made it", "summary": "ok"}, mine)
        assert answer["json"]["status"] == "done" and "done" in answer["text"]
        assert (await api.board.get_task(mine.task_id)).result == "made it"
        assert (await api.board.get_task(other.task_id)).status == "running"


async def test_a_retried_completion_is_answered_as_done(tmp_path: Path) -> None:
    async with served(tmp_path) as api:
        mine = await claimed(api, "twice")
        await api.ask("complete", {"result": "first"}, mine)
        again = await api.ask("complete", {"result": "second"}, mine)
        assert again["json"] == {"id": mine.task_id, "status": "done"}
        task = await api.board.get_task(mine.task_id)
        assert task.result == "first"
        events = await api.board.events(task_id=mine.task_id)
        assert [e.kind for e in events].count("completed") == 1
        # A block retried after a completion is not a replay: the run ended another way.
        error = await api.refused("block", {"words": "stuck"}, mine)
        assert error.kind == "lease"


async def test_only_a_run_recorded_as_orchestrator_creates_and_the_roster_applies(
        tmp_path: Path) -> None:
    async with served(tmp_path) as api:
        plain = await claimed(api, "plain")
        error = await api.refused("create", {"title": "child"}, plain)
        assert error.kind == "refused" and "may not create tasks" in str(error)
        boss = await claimed(api, "orchestrate", may_create=True)
        error = await api.refused("create", {"title": "child", "assignee": "nobody"}, boss)
        assert error.kind == "invalid" and "nobody" in str(error)
        made = await api.ask("create", {"title": "child", "assignee": "writer",
                                        "parents": [boss.task_id]}, boss)
        child = await api.board.get_task(made["json"]["id"])
        assert (child.title, child.assignee, child.parents) == ("child", "writer", [boss.task_id])


async def test_arguments_are_the_verbs_own_with_the_command_lines_limits(
        tmp_path: Path) -> None:
    async with served(tmp_path) as api:
        boss = await claimed(api, "limits", may_create=True)
        error = await api.refused("create", {"title": "t", "priority": 2 ** 63}, boss)
        assert error.kind == "usage" and "priority" in str(error) and "out of range" in str(error)
        error = await api.refused("create", {"title": "t", "colour": "red"}, boss)
        assert "unknown field 'colour'" in str(error)
        error = await api.refused("dispatch", {}, boss)
        assert error.kind == "usage" and "unknown verb 'dispatch'" in str(error)
        # Verbs a worker may not use are refused by the command layer, as everywhere.
        error = await api.refused("archive", {"task_ids": [boss.task_id]}, boss)
        assert error.kind == "refused" and "archive" in str(error)
        error = await api.refused("set-priority", {"task_id": boss.task_id, "priority": 9}, boss)
        assert error.kind == "refused" and "priority" in str(error)


async def test_artifacts_are_read_from_the_workspace_only(tmp_path: Path) -> None:
    async with served(tmp_path) as api:
        mine = await claimed(api, "files")
        assert mine.workspace
        workspace = Path(mine.workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "chart.csv").write_text("a,1\n", encoding="utf-8")
        secret = tmp_path / "id_ed25519"
        secret.write_text("PRIVATE KEY", encoding="utf-8")
        for path in (str(secret), "../../../../id_ed25519", "sub/../../escape"):
            error = await api.refused("complete", {"artifacts": [path]}, mine)
            assert error.kind == "refused" and "outside your workspace" in str(error)
            assert str(tmp_path) not in str(error)
        # The same for the files a task is created with (an orchestrator's create).
        boss = await claimed(api, "attach", may_create=True)
        error = await api.refused("create", {"title": "leak", "attachments": [str(secret)]},
                                  boss)
        assert error.kind == "refused" and "outside your workspace" in str(error)
        (workspace / "link.txt").symlink_to(secret)
        error = await api.refused("complete", {"artifacts": ["link.txt"]}, mine)
        assert error.kind == "invalid" and "link.txt: is a symbolic link" in str(error)
        assert (await api.board.get_task(mine.task_id)).status == "running"
        done = await api.ask("complete", {"result": "chart", "artifacts": ["chart.csv"]}, mine)
        assert done["json"]["status"] == "done"
        stored = [Path(a) for a in (await api.board.get_task(mine.task_id)).artifacts]
        assert [p.name for p in stored] == ["chart.csv"]
        assert stored[0].read_text(encoding="utf-8") == "a,1\n"
        assert api.board.attachments_path(mine.task_id) in stored[0].parents


WORKER = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from gateway.worker_api.client import call
api, task, lease = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
answer = call(api, "complete", {{"result": "by " + sys.argv[2]}}, task_id=task, lease=lease,
              board="default", patience=30)
print(answer["json"]["status"])
"""


async def test_64_workers_completing_at_once_lose_and_double_nothing(tmp_path: Path) -> None:
    async with served(tmp_path) as api:
        claims = [await claimed(api, f"t{i}") for i in range(64)]
        script = WORKER.format(root=str(ROOT))
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(api.path), str(c.task_id), c.lease,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in claims]
        with anyio.fail_after(WITHIN * 2):
            outs = await asyncio.gather(*(p.communicate() for p in procs))
        assert [p.returncode for p in procs] == [0] * 64, [e for _, e in outs if e][:3]
        assert {o.strip() for o, _ in outs} == {b"done"}
        for claim in claims:
            task = await api.board.get_task(claim.task_id)
            assert (task.status, task.result) == ("done", f"by {claim.task_id}")
            events = await api.board.events(task_id=claim.task_id)
            assert [e.kind for e in events].count("completed") == 1


SENDING_WORKER = """
import socket, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from gateway.worker_api.client import call
sendall = socket.socket.sendall
def sent(self, data, *args):
    sendall(self, data, *args)
    print("sent", flush=True)  # the request is on the wire, its answer not yet read
socket.socket.sendall = sent
api, task, lease = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
answer = call(api, "complete", {{"result": "survived"}}, task_id=task, lease=lease,
              board="default", patience=60)
print(answer["json"]["status"], flush=True)
"""


def _dispatch_loop(home: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, "-m", "gateway", "--home", str(home), "kanban",
                             "dispatch", "--loop"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def test_a_server_killed_mid_request_leaves_the_worker_to_the_next_one(
        tmp_path: Path) -> None:
    """The serving process is stopped (SIGSTOP) so the worker's connection is accepted by the
    kernel and its request sent but never answered; then it is killed (SIGKILL) with the request
    in flight. The worker retries, and a new dispatcher on the same home binds the socket again
    and answers it."""
    home = tmp_path / "home"
    boards = Boards(home)
    board = await boards.open("default")
    path = socket_path(home)
    first = _dispatch_loop(home)
    worker: asyncio.subprocess.Process | None = None
    second: subprocess.Popen[bytes] | None = None
    try:
        with anyio.fail_after(WITHIN):
            while not path.exists():  # noqa: ASYNC110 - another process makes it
                await anyio.sleep(0.02)
        claim = await board.claim((await board.create_task("long job")).task.id,
                                  claimed_by="dispatcher")
        first.send_signal(signal.SIGSTOP)
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SENDING_WORKER.format(root=str(ROOT)), str(path),
            str(claim.task_id), claim.lease, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert worker.stdout is not None
        with anyio.fail_after(WITHIN):
            assert await worker.stdout.readline() == b"sent\n"
        first.kill()
        first.wait(timeout=WITHIN)
        assert (await board.get_task(claim.task_id)).status == "running"
        second = _dispatch_loop(home)
        with anyio.fail_after(WITHIN):
            out, err = await worker.communicate()
        # Retries print "sent" again; the last line is the answer.
        assert out.split()[-1] == b"done", err
        task = await board.get_task(claim.task_id)
        assert (task.status, task.result) == ("done", "survived")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=WITHIN)
        if worker is not None and worker.returncode is None:
            worker.kill()
            await worker.wait()
        await boards.close()


def test_with_no_server_the_workers_cli_exits_75_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    env.update({"PYTHONPATH": str(ROOT), "RELAYBOARD_TASK_ID": "3", "RELAYBOARD_LEASE": "L",
                "RELAYBOARD_API": str(tmp_path / "gone.sock"),
                "RELAYBOARD_API_PATIENCE": "0.3", "RELAYBOARD_HOME": str(tmp_path / "h")})
    done = subprocess.run([sys.executable, "-m", "gateway", "kanban", "complete", "--result",
                           "x"], env=env, capture_output=True, text=True, timeout=WITHIN,
                          check=False)
    assert done.returncode == 75, done.stderr
    assert done.stderr.startswith("error: the worker API at gone.sock did not answer")
    assert len(done.stderr.splitlines()) == 1
