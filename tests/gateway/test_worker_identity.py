"""A worker acts with its run's rights, whatever it does to its own environment or flags.

Each attack runs inside a real worker that ``relayboard kanban dispatch`` started, through the
real command line: unsetting the worker variables to look like the operator, creating tasks
without the orchestrator's right, dispatching the board. Beside them, the operator's own command
line (not under any worker) keeps every right.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from gateway.commands import Services
from gateway.worker_api import serving, socket_path
from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.home import Boards
from tests.gateway.conftest import clean_environ

WITHIN = 60.0

# The worker: tries each attack as a child process with every RELAYBOARD_* variable removed
# (`env -u …` by another name), writes what happened to the file named by its second argument,
# then completes its own task with its real identity.
ATTACKER = textwrap.dedent("""
    import json, os, subprocess, sys
    home, report = sys.argv[1], sys.argv[2]
    stripped = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
    def cli(*args, env=stripped):
        done = subprocess.run([sys.executable, "-m", "gateway", "--home", home, *args],
                              env=env, capture_output=True, text=True, timeout=60)
        return {"rc": done.returncode, "err": done.stderr.strip()}
    attacks = {
        "complete_other": cli("kanban", "complete", "1", "--force", "--result", "pwned"),
        "archive_other": cli("kanban", "archive", "1", "--force"),
        "create_stripped": cli("kanban", "create", "sneaky"),
        "create_as_worker": cli("kanban", "create", "sneaky too", env=dict(os.environ)),
        "dispatch": cli("kanban", "dispatch", "--wait", "0"),
        "dir_anywhere": cli("kanban", "create", "x", "--workspace", "dir:/tmp"),
        "profile_create": cli("profile", "create", "evil", "--command", "sh -c id"),
    }
    with open(report, "w") as out:
        json.dump(attacks, out)
    done = subprocess.run([sys.executable, "-m", "gateway", "kanban", "complete",
                           "--result", "finished honestly"], capture_output=True, text=True)
    sys.exit(done.returncode)
""")


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "--home", str(home), *args],
                          env=clean_environ(), capture_output=True, text=True, timeout=WITHIN,
                          check=False)


async def test_a_worker_without_its_variables_is_still_that_worker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "attacker.py"
    script.write_text(ATTACKER, encoding="utf-8")
    report_file = tmp_path / "attacks.json"
    # The attacks are on identity, not files: its sandbox lets it read its script and write
    # its report anywhere under tmp_path.
    Profiles(home).create("tw", command=[sys.executable, str(script), str(home),
                                         str(report_file)], write_paths=[str(tmp_path)])
    boards = Boards(home)
    try:
        board = await boards.open("default")
        victim = (await board.create_task("someone else's work")).task
        mine = (await board.create_task("attack", assignee="tw")).task
        # The victim is running under a manual claim, as if another worker had it.
        await board.claim(victim.id, claimed_by="other")
        done = await asyncio.to_thread(_cli, home, "kanban", "dispatch", "--json", "--wait", "50")
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        assert [s["task_id"] for s in report["spawned"]] == [mine.id]

        finished = await board.get_task(mine.id)
        assert finished.status == "done", (finished, board.log_path(mine.id).read_text())
        attacks = json.loads(report_file.read_text(encoding="utf-8"))
        for name, outcome in attacks.items():
            assert outcome["rc"] != 0, (name, outcome)
            assert outcome["err"].startswith("error: "), (name, outcome)
            assert len(outcome["err"].splitlines()) == 1, (name, outcome)
        assert "may only complete its own task" in attacks["complete_other"]["err"]
        assert "may not create tasks" in attacks["create_stripped"]["err"]
        assert "may not create tasks" in attacks["create_as_worker"]["err"]
        assert "only the operator may dispatch" in attacks["dispatch"]["err"]
        assert "only the operator may create profiles" in attacks["profile_create"]["err"]
        assert Profiles(home).names() == ["tw"]
        # Nothing changed on the victim, and no task was made.
        assert (await board.get_task(victim.id)).status == "running"
        assert sorted(t.id for t in await board.list_tasks()) == [victim.id, mine.id]
    finally:
        await boards.close()

    # The operator's own command line, outside any worker, keeps its rights.
    forced = await asyncio.to_thread(_cli, home, "kanban", "complete", str(victim.id), "--force",
                                     "--result", "by the operator")
    assert forced.returncode == 0, forced.stderr


async def test_the_run_record_decides_whether_a_worker_creates(tmp_path: Path) -> None:
    """What the built-in worker's run_shell does: the CLI with the worker's own variables.
    A plain run may not create; an orchestrator run (recorded at the claim) may."""
    home = tmp_path / "home"
    boards = Boards(home)
    try:
        board = await boards.open("default")
        await _test_run_record(home, boards, board)
    finally:
        await boards.close()


async def _test_run_record(home: Path, boards: Boards, board: Board) -> None:
    async with serving(Services(boards=boards, profiles=Profiles(home)), socket_path(home)):
        plain = (await board.create_task("plain")).task
        orch = (await board.create_task("orchestrate")).task
        plain_claim = await board.claim(plain.id, claimed_by="dispatcher")
        orch_claim = await board.claim(orch.id, claimed_by="dispatcher", may_create=True)

        def as_worker(task_id: int, run_id: int, lease: str) -> subprocess.CompletedProcess[str]:
            env = clean_environ({
                "RELAYBOARD_HOME": str(home), "RELAYBOARD_BOARD": "default",
                "RELAYBOARD_API": str(socket_path(home)), "RELAYBOARD_TASK_ID": str(task_id),
                "RELAYBOARD_RUN_ID": str(run_id), "RELAYBOARD_LEASE": lease})
            return subprocess.run([sys.executable, "-m", "gateway", "kanban", "create",
                                   "child", "--json"], env=env, capture_output=True,
                                  text=True, timeout=WITHIN, check=False)

        refused = await asyncio.to_thread(as_worker, plain.id, plain_claim.run_id,
                                          plain_claim.lease)
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: a worker may not create tasks")
        made = await asyncio.to_thread(as_worker, orch.id, orch_claim.run_id, orch_claim.lease)
        assert made.returncode == 0, made.stderr
        child = json.loads(made.stdout)["id"]
        assert (await board.get_task(child)).title == "child"


def test_the_builtin_worker_is_not_told_it_is_the_orchestrator() -> None:
    from kanban.agents.profiles import Profile
    from kanban.runtime.launch import argv_template
    from kanban.runtime.settings import DispatchSettings

    argv = argv_template(Profile(name="boss", home=Path("/nowhere")),
                         DispatchSettings(orchestrator_profile="boss"))
    assert "--orchestrator" not in argv


def test_lineage_reads_this_process_and_its_parents() -> None:
    from gateway.identity import lineage

    ids, ancestors = lineage()
    # A session or group led from outside this pid namespace reads as 0, which is never
    # an identity; every non-zero one is in the set.
    expected = {os.getpid(), os.getsid(0), os.getpgrp()} - {0, 1}
    assert expected <= ids and 0 not in ids
    assert ancestors[0] == os.getppid()


def test_spawners_are_known_by_their_command_line(tmp_path: Path) -> None:
    from gateway.identity import is_spawner

    lines = {
        10: [sys.executable, "-m", "gateway", "--home", "/h", "gateway", "run"],
        11: ["/venv/bin/relayboard", "kanban", "--board", "b", "dispatch", "--loop"],
        12: ["/venv/bin/relayboard", "kanban", "create", "dispatch"],
        13: ["bash", "-c", "gateway run"],
        14: ["/usr/bin/python3", "-m", "pytest", "tests/gateway"],
    }
    for pid, argv in lines.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv))
    assert [pid for pid in lines if is_spawner(pid, tmp_path)] == [10, 11]


def test_the_peer_of_a_loopback_connection_is_found() -> None:
    import socket

    from gateway.identity import peer_pid

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = subprocess.Popen(
            [sys.executable, "-c", "import socket, sys; s = socket.create_connection("
             f"('127.0.0.1', {port})); sys.stdin.read()"], stdin=subprocess.PIPE)
        try:
            server.settimeout(WITHIN)
            conn, address = server.accept()
            with conn:
                assert peer_pid(address, port) == client.pid
        finally:
            client.communicate(b"", timeout=WITHIN)
