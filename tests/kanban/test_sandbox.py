"""The worker sandbox on real workers: the dispatcher spawns tests/kanban/workers/probe.py under
the real Landlock policy, the probe tries things and reports what it was allowed.

Landlock confines root as well, so most tests run as whoever runs the suite. Two facts hinge on
being the SAME unprivileged user as the gateway — reading that user's ``~/.ssh`` and another of
its processes' ``/proc/<pid>/environ`` — and root reads both whatever the file modes say; those
tests run their processes as an unprivileged user: ``rbtest`` (created here with ``useradd``
when the suite runs as root), or the suite's own user when it is not root.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kanban.agents.profiles import Profiles
from kanban.errors import InvalidInput
from kanban.home import Boards
from kanban.models import Task
from kanban.runtime import sandbox
from kanban.runtime.landlock import abi_version
from tests.kanban.workers import probe
from tests.kanban.workers.harness import AGENT_PATHS, DEADLINE, Env, dispatch_env, wait_until

PROBE = Path(probe.__file__)
needs_landlock = pytest.mark.skipif(abi_version() < 6,
                                    reason="needs Landlock ABI 6 (Linux 6.12 or later)")
TEST_USER = "rbtest"


# What a worker may touch does not depend on the board's backend: a worker reaches its board only
# through the worker API's socket, never over the network.
pytestmark = pytest.mark.sqlite_only


def probe_profile(env: Env, name: str, checks: Sequence[Sequence[object]], *,
                  command: Sequence[str] | None = None, **fields: Any) -> None:
    argv = list(command) if command is not None else [sys.executable, str(PROBE), "complete"]
    env.profile(name, argv, env={"PROBE_CHECKS": json.dumps([list(c) for c in checks],
                                                             default=str)}, **fields)


def outcome(task: Task) -> dict[str, str]:
    assert task.result, f"task {task.id} has no result"
    found: dict[str, str] = json.loads(task.result)
    return found


def key(*check: object) -> str:
    return " ".join(map(str, check))


@contextlib.contextmanager
def stand_in(extra_env: dict[str, str] | None = None,
             wrapper: Sequence[str] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """A process outside every sandbox (the gateway or dispatcher of the threat), holding a
    secret in its environment; stopped by its pid afterwards."""
    proc = subprocess.Popen([*wrapper, "sleep", "600"],
                            env={"PATH": os.defpath, "SECRET": "telegram-token-123",
                                 **(extra_env or {})})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=DEADLINE)


# ---- what a worker may not reach ----------------------------------------------------------------

@needs_landlock
async def test_a_worker_reaches_only_its_own_task(tmp_path: Path) -> None:
    user_home = tmp_path / "user"
    (user_home / ".ssh").mkdir(parents=True)
    (user_home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (user_home / ".aws").mkdir()
    (user_home / ".aws" / "credentials").write_text("aws_secret_access_key = x")
    base_env = {**os.environ, "HOME": str(user_home)}
    async with dispatch_env(tmp_path, base_env=base_env) as env:
        config = env.home / "config.yaml"
        config.write_text("platforms: {telegram: {token: secret}}\n")
        await env.boards.create("other")
        other_board = await env.boards.open("other")
        other_workspace = env.board.workspaces_dir / "999"
        other_workspace.mkdir(parents=True)
        (other_workspace / "notes.txt").write_text("another task's notes")
        task = await env.task("probe")
        inputs = env.board.attachments_path(task.id)
        inputs.mkdir(parents=True)
        (inputs / "input.txt").write_text("the task's own input")
        with stand_in() as gateway:
            checks: list[list[object]] = [
                ["read", config], ["write", config],
                ["read", other_board.db.path], ["read", other_workspace / "notes.txt"],
                # Its own board's database too: it reports through the worker API.
                ["read", env.board.db.path], ["write", env.board.db.path],
                ["list", env.board.root], ["write", env.board.root / "planted.txt"],
                ["read", user_home / ".ssh" / "id_ed25519"],
                ["read", user_home / ".aws" / "credentials"],
                ["write", tmp_path / "escaped.txt"],
                ["signal", gateway.pid, signal.SIGTERM], ["signal", gateway.pid, signal.SIGKILL],
                ["signal", "parent", 0],
                ["read", inputs / "input.txt"], ["write", "made-here.txt"], ["tmp"],
                ["read", sys.executable], ["run", "git", "--version"],
                ["run", "sh", "-c", "echo to-null > /dev/null && echo out > /dev/stdout"],
            ]
            probe_profile(env, "w", checks, command=[sys.executable, str(PROBE), "complete",
                                                     "report.txt"])
            await env.dispatcher.run_cycle(env.board)
            done = await env.wait_status(task.id, "done")
            assert gateway.poll() is None, "the worker's signal reached a process outside"
        found = outcome(done)
        refused = {key(*c) for c in checks[:14]}
        assert {k: v for k, v in found.items() if k in refused} == {
            k: ("EPERM" if k.startswith("signal") else "EACCES") for k in refused}
        assert all(v == "ok" for k, v in found.items() if k not in refused), found
        assert not (tmp_path / "escaped.txt").exists()
        assert not (env.board.root / "planted.txt").exists()
        # The artifact made in the workspace was staged into the task's attachments.
        [artifact] = done.artifacts
        assert Path(artifact).read_text() == "an artifact"
        assert Path(artifact).parent == inputs


@needs_landlock
async def test_network_allow_deny_and_a_port_list(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        allowed, other = (stack.enter_context(socket.create_server(("127.0.0.1", 0)))
                          for _ in range(2))
        port_ok, port_other = allowed.getsockname()[1], other.getsockname()[1]
        llm = stack.enter_context(local_http_server())
        async with dispatch_env(tmp_path) as env:
            probe_profile(env, "ports", [["connect", port_ok], ["connect", port_other]],
                          network=[port_ok])
            probe_profile(env, "deny", [["connect", port_ok]], network="deny")
            probe_profile(env, "allow", [["http", llm], ["connect", port_other]])
            tasks = {name: await env.task(name, assignee=name)
                     for name in ("ports", "deny", "allow")}
            await env.dispatcher.run_cycle(env.board)
            found = {name: outcome(await env.wait_status(t.id, "done"))
                     for name, t in tasks.items()}
    assert found["ports"] == {key("connect", port_ok): "ok",
                              key("connect", port_other): "EACCES"}
    assert found["deny"] == {key("connect", port_ok): "EACCES"}
    assert found["allow"] == {key("http", llm): "ok", key("connect", port_other): "ok"}


@contextlib.contextmanager
def local_http_server() -> Iterator[str]:
    """An HTTP endpoint on 127.0.0.1 (a worker's LLM); its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/models"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=DEADLINE)


@needs_landlock
async def test_read_paths_write_paths_and_write_home(tmp_path: Path) -> None:
    readable, writable = tmp_path / "repo", tmp_path / "out"
    readable.mkdir()
    (readable / "src.txt").write_text("source")
    writable.mkdir()
    async with dispatch_env(tmp_path) as env:
        home_file = env.profiles.path("home-rw") / "memory.md"
        checks = [["read", readable / "src.txt"], ["write", readable / "new.txt"],
                  ["write", writable / "result.txt"], ["list", writable],
                  ["write", home_file]]
        probe_profile(env, "home-rw", checks, write_home=True,
                      read_paths=[*AGENT_PATHS, str(readable)],
                      write_paths=[str(env.records), str(writable)])
        probe_profile(env, "home-ro", [["write", home_file],
                                       ["read", env.profiles.path("home-ro") / "profile.yaml"]])
        rw = await env.task("rw", assignee="home-rw")
        ro = await env.task("ro", assignee="home-ro")
        await env.dispatcher.run_cycle(env.board)
        found_rw = outcome(await env.wait_status(rw.id, "done"))
        found_ro = outcome(await env.wait_status(ro.id, "done"))
    assert found_rw == {key("read", readable / "src.txt"): "ok",
                        key("write", readable / "new.txt"): "EACCES",
                        key("write", writable / "result.txt"): "ok",
                        key("list", writable): "ok",
                        key("write", home_file): "ok"}
    assert found_ro == {key("write", home_file): "EACCES",
                        key("read", env.profiles.path("home-ro") / "profile.yaml"): "ok"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True, timeout=DEADLINE).stdout


def make_repo(repo: Path) -> None:
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "w@example.com")
    git(repo, "config", "user.name", "Worker")
    git(repo, "commit", "-q", "--allow-empty", "-m", "0")


@needs_landlock
async def test_git_commits_in_a_worktree_workspace_but_leaves_the_repository_alone(
        tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    await asyncio.to_thread(make_repo, repo)
    async with dispatch_env(tmp_path, worktree_repo=repo) as env:
        checks: list[list[object]] = [
            ["write", "feature.txt"], ["run", "git", "add", "feature.txt"],
            ["run", "git", "commit", "-q", "-m", "from the worker"],
            ["write", repo / ".git" / "hooks" / "post-checkout"],
            ["write", repo / ".git" / "config"], ["write", repo / "README"]]
        probe_profile(env, "coder", checks)
        task = await env.task("code", assignee="coder", workspace="worktree")
        await env.dispatcher.run_cycle(env.board)
        found = outcome(await env.wait_status(task.id, "done"))
    assert list(found.values()) == ["ok", "ok", "ok", "EACCES", "EACCES", "EACCES"], found
    log = await asyncio.to_thread(git, repo, "log", "--format=%s",
                                  f"relayboard/default/task-{task.id}")
    assert log.splitlines()[0] == "from the worker"


# ---- the same unprivileged user -------------------------------------------------------------

def unprivileged_wrapper() -> list[str]:
    """The argv prefix that runs a program as the unprivileged test user: ``setpriv`` to
    ``rbtest`` (created if missing) when the suite runs as root, nothing otherwise."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root needs setpriv to become an unprivileged user")
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        if shutil.which("useradd") is None:
            pytest.skip(f"running as root needs useradd to create the {TEST_USER} user")
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", TEST_USER], check=True, capture_output=True)
    return ["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups", "--"]


def user_python() -> str:
    """A Python the unprivileged user can run (the suite's may live in root's home)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if os.geteuid() != 0 or not os.path.realpath(candidate).startswith("/root"):
            if os.access(candidate, os.X_OK):
                return candidate
    pytest.skip("no Python outside root's home for the unprivileged user")


@contextlib.contextmanager
def user_home() -> Iterator[Path]:
    """A home with ``.ssh/id_ed25519`` owned by the unprivileged user (mode 0600)."""
    root = Path(tempfile.mkdtemp(prefix="rb-sandbox-home-"))
    try:
        os.chmod(root, 0o755)
        (root / ".ssh").mkdir(mode=0o700)
        key_file = root / ".ssh" / "id_ed25519"
        key_file.write_text("PRIVATE KEY")
        key_file.chmod(0o600)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(TEST_USER)
            for path in (root, root / ".ssh", key_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@needs_landlock
async def test_same_user_secrets_are_refused_to_the_worker(tmp_path: Path) -> None:
    """Run as an unprivileged user (rbtest when the suite is root): the worker and the process
    holding the secret are that same user, so only the sandbox stands between them — the same
    reads succeed for that user's unconfined process."""
    wrapper = unprivileged_wrapper()
    python = user_python()
    with user_home() as home, stand_in(wrapper=wrapper) as holder:
        checks = [["read", home / ".ssh" / "id_ed25519"], ["environ", holder.pid]]
        command = [*wrapper, python, "-I", str(PROBE), "print"]
        unconfined = await asyncio.to_thread(
            subprocess.run, command, env={"PROBE_CHECKS": json.dumps(checks, default=str)},
            capture_output=True, text=True, timeout=DEADLINE, check=True)
        assert set(json.loads(unconfined.stdout).values()) == {"ok"}, unconfined.stdout
        async with dispatch_env(tmp_path, base_env={**os.environ, "HOME": str(home)}) as env:
            probe_profile(env, "w", checks, command=command)
            task = await env.task("as the same user")
            await env.dispatcher.run_cycle(env.board)
            await env.cycle_until_exited()
            printed = env.board.log_path(task.id).read_text().strip().splitlines()[-1]
    assert json.loads(printed) == {key(*c): "EACCES" for c in checks}


def test_a_non_dumpable_process_hides_its_environment_but_still_watches_its_children(
        tmp_path: Path) -> None:
    """Run as an unprivileged user (rbtest when the suite is root; root reads any process's
    environment): after :func:`forbid_dumping`, a process of the same user cannot read the
    dispatcher's environment, while the dispatcher still reads its worker's (a worker execs a
    new program, which makes it dumpable again) and waits on it through a pidfd."""
    wrapper = unprivileged_wrapper()
    python = user_python()
    landlock_file = Path(sandbox.__file__).with_name("landlock.py")
    script = (
        "import importlib.util, os, subprocess, sys\n"
        f"spec = importlib.util.spec_from_file_location('landlock', {str(landlock_file)!r})\n"
        "landlock = importlib.util.module_from_spec(spec); spec.loader.exec_module(landlock)\n"
        "assert landlock.forbid_dumping() and not landlock.dumpable()\n"
        # The child says when it runs: the kernel makes it dumpable late in its exec.
        "child = subprocess.Popen([sys.executable, '-I', '-c', 'import sys; print(1, "
        "flush=True); sys.stdin.read()'], env={'CHILD_SECRET': 'c'}, stdin=subprocess.PIPE,"
        " stdout=subprocess.PIPE)\n"
        "fd = os.pidfd_open(child.pid)\n"
        "child.stdout.readline()\n"
        "environ = open(f'/proc/{child.pid}/environ', 'rb').read()\n"
        "print(os.getpid(), child.pid, b'CHILD_SECRET' in environ, flush=True)\n"
        "sys.stdin.read()\n"
        "child.stdin.close(); child.wait()\n")
    with subprocess.Popen([*wrapper, python, "-I", "-c", script],
                          env={"PATH": os.defpath, "SECRET": "dispatcher-secret"},
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        pid, child, child_read = proc.stdout.readline().split()
        assert child_read == "True"
        reader = [*wrapper, "cat", f"/proc/{pid}/environ"]
        refused = subprocess.run(reader, capture_output=True, timeout=DEADLINE, check=False)
        assert refused.returncode != 0 and b"dispatcher-secret" not in refused.stdout
        allowed = subprocess.run([*wrapper, "cat", f"/proc/{child}/environ"],
                                 capture_output=True, timeout=DEADLINE, check=False)
        assert b"CHILD_SECRET" in allowed.stdout
        proc.stdin.close()
        assert proc.wait(timeout=DEADLINE) == 0


# ---- the dispatcher as its own process ----------------------------------------------------------

@needs_landlock
async def test_a_worker_cannot_kill_the_dispatch_cli_which_records_its_completion(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    checks = [["signal", "parent", signal.SIGKILL], ["signal", "parent", signal.SIGTERM]]
    Profiles(home).create("w", command=[sys.executable, str(PROBE), "complete"],
                          read_paths=AGENT_PATHS,
                          env={"PROBE_CHECKS": json.dumps(checks)})
    boards = Boards(home)
    try:
        board = await boards.open("default")
        task = (await board.create_task("kill the dispatcher", assignee="w")).task
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "gateway", "--home", str(home), "kanban",
                             "dispatch", "--json", "--wait", str(DEADLINE)],
            capture_output=True, text=True, timeout=DEADLINE * 2, check=False)
        assert done.returncode == 0, done.stderr
        assert [s["task_id"] for s in json.loads(done.stdout)["spawned"]] == [task.id]

        async def finished() -> Task | None:
            current = await board.get_task(task.id)
            return current if current.status == "done" else None

        found = outcome(await wait_until(finished, what="the probe's completion"))
    finally:
        await boards.close()
    assert found == {key(*c): "EPERM" for c in checks}


# ---- levels -------------------------------------------------------------------------------------

async def test_auto_warns_once_and_runs_unconfined_without_landlock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sandbox, "kernel_abi", lambda: 0)
    monkeypatch.setattr(sandbox, "_warned", False)
    assert sandbox.sandbox_status("auto").startswith("unavailable: this kernel has no Landlock")
    async with dispatch_env(tmp_path) as env:
        config = env.home / "config.yaml"
        config.write_text("secret: 1\n")
        probe_profile(env, "w", [["read", config]])
        tasks = [await env.task(f"t{i}") for i in range(2)]
        with caplog.at_level(logging.WARNING, logger="kanban.runtime.sandbox"):
            await env.dispatcher.run_cycle(env.board)
            found = [outcome(await env.wait_status(t.id, "done")) for t in tasks]
    assert found == [{key("read", config): "ok"}] * 2
    warnings = [r for r in caplog.records if r.name == "kanban.runtime.sandbox"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "workers run unconfined" in warnings[0].getMessage()


async def test_required_refuses_to_spawn_without_landlock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "kernel_abi", lambda: 0)
    assert sandbox.sandbox_status("required").endswith("workers are refused")
    async with dispatch_env(tmp_path, sandbox="required") as env:
        probe_profile(env, "w", [])
        task = await env.task()
        report = await env.dispatcher.run_cycle(env.board)
        assert [f["task_id"] for f in report.spawn_failed] == [task.id]
        [event] = await env.events(task.id, "spawn_failed")
        assert event.payload["error"] == ("the worker sandbox is required but this kernel has "
                                          "no Landlock (Linux 5.19 or later, with landlock "
                                          "enabled)")
        assert not env.dispatcher.workers()


def test_status_names_the_level_in_force() -> None:
    assert sandbox.sandbox_status("off") == "off"
    abi = abi_version()
    if abi >= 6:
        assert sandbox.sandbox_status("auto") == f"landlock ABI {abi}"


# ---- profile keys -------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "message"), [
    ({"network": "no"}, "network must be allow, deny or a list of TCP ports 1-65535, not 'no'"),
    ({"network": [0]}, "network must be allow, deny or a list of TCP ports 1-65535, not [0]"),
    ({"read_paths": "/srv"}, "read_paths must be a list of absolute paths"),
    ({"write_paths": ["out"]}, "write_paths: 'out' is not an absolute path"),
    ({"write_home": "yes"}, "write_home must be true or false, not 'yes'"),
])
def test_profile_sandbox_keys_are_checked_with_one_line_naming_the_key(
        tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    profiles = Profiles(tmp_path)
    with pytest.raises(InvalidInput) as refused:
        profiles.create("w", **fields)
    assert str(refused.value) == message
    # Written by hand, the same value makes the profile unusable rather than looser.
    profiles.create("w")
    text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())
    (profiles.path("w") / "profile.yaml").write_text(text + "\n")
    assert profiles.load("w").unusable() == (f"profile 'w' is unreadable: {message} "
                                             "(fix its profile.yaml)")


def test_profile_sandbox_keys_round_trip(tmp_path: Path) -> None:
    profiles = Profiles(tmp_path)
    made = profiles.create("w", network=[443, 80, 443], read_paths=["/srv/a/"],
                           write_paths=["/srv/b"], write_home=True)
    assert (made.network, made.read_paths, made.write_paths, made.write_home) == (
        (80, 443), ["/srv/a"], ["/srv/b"], True)
    assert profiles.load("w").to_dict()["network"] == [80, 443]
    assert profiles.create("d").network == "allow"


