"""What a worker is given: an allowlisted environment (no inherited secrets), the PATH shim that
finds the spawning ``relayboard``, private logs and prompts, and a log capped as it is written —
each through real dispatcher-spawned processes."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from kanban.agents.profiles import Profiles
from kanban.errors import InvalidInput
from kanban.runtime.spawn import log_tail
from kanban.runtime.workerenv import script_dir, shim_path, worker_env
from tests.kanban.workers.harness import agent, dispatch_env, wait_until

SECRETS = {
    "TELEGRAM_BOT_TOKEN": "123456:telegram-secret",
    "SLACK_BOT_TOKEN": "xoxb-slack-secret",
    "OPENAI_API_KEY": "sk-openai-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}
# Where a user's shell would find system tools, but not this venv's bin/.
SYSTEM_PATH = os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin")
                              if os.path.isdir(p))



async def test_worker_inherits_no_secret_of_the_gateway(tmp_path: Path) -> None:
    parent = {**os.environ, **SECRETS, "ANALYST_KEY": "sk-passed-on-purpose",
              "LC_TIME": "C", "SOME_RANDOM_VAR": "x"}
    async with dispatch_env(tmp_path, base_env=parent) as env:
        env.profile("w", agent("complete"), env={
            "OPENAI_API_KEY": {"from_env": "ANALYST_KEY"},  # a secret this profile may have
            "AGENT_MODE": "fast",
            "MISSING_ONE": {"from_env": "NOT_SET_ANYWHERE"},
        })
        task = await env.task()
        await env.dispatcher.run_cycle(env.board)
        await env.wait_status(task.id, "done")
        seen: dict[str, str] = env.record_of(task.id)["all_env"]

    for name, value in SECRETS.items():
        if name != "OPENAI_API_KEY":
            assert name not in seen, f"{name} leaked into the worker"
        assert value not in seen.values(), f"the value of {name} leaked into the worker"
    assert seen["OPENAI_API_KEY"] == "sk-passed-on-purpose"  # passed through explicitly
    assert "ANALYST_KEY" not in seen  # only under the name the profile chose
    assert "MISSING_ONE" not in seen and "SOME_RANDOM_VAR" not in seen
    assert seen["AGENT_MODE"] == "fast" and seen["LC_TIME"] == "C"
    allowed = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
               "PYTHONPATH", "PYTHONUNBUFFERED", "OPENAI_API_KEY", "AGENT_MODE", "AGENT_RECORD_DIR"}
    # A few names the OS or the interpreter adds to every process on its own.
    incidental = {"PWD", "SHLVL", "_", "LC_CTYPE"}
    unexpected = {n for n in seen if n not in allowed | incidental
                  and not n.startswith(("RELAYBOARD_", "LC_"))}
    assert not unexpected, f"not on the allowlist: {sorted(unexpected)}"
    assert seen["RELAYBOARD_MODEL"] == "" and seen["RELAYBOARD_PROMPT_FILE"].endswith("/1.md")


def test_profile_env_forms_and_their_refusals(tmp_path: Path) -> None:
    profiles = Profiles(tmp_path)
    made = profiles.create("a", env=["OPENAI_API_KEY", "HTTPS_PROXY"])
    assert made.env_from == {"OPENAI_API_KEY": "OPENAI_API_KEY", "HTTPS_PROXY": "HTTPS_PROXY"}
    assert made.env == {}
    made = profiles.create("b", env={"MODE": "x", "KEY": {"from_env": "B_KEY"}, "N": 3})
    assert made.env == {"MODE": "x", "N": "3"} and made.env_from == {"KEY": "B_KEY"}
    assert made.to_dict()["env"] == ["MODE", "N"]  # JSON shows names, never literal values
    for bad in ({"bad name": "x"}, {"K": {"from_env": "$(x)"}}, {"K": {"from": "X"}},
                ["ok", "not ok"], "K=V", {"K": ["x"]}):
        with pytest.raises(InvalidInput):
            profiles.create("c", env=bad)
        assert not profiles.exists("c")  # refused before anything was written
    (profiles.path("b") / "profile.yaml").write_text(
        "env:\n  GOOD: 1\n  'BAD-NAME': 2\n  K: {from_env: 'x y'}\n", encoding="utf-8")
    loaded = profiles.load("b")
    assert loaded.env == {"GOOD": "1"} and loaded.env_from == {}
    assert loaded.problem and "BAD-NAME" in loaded.problem and "K must be" in loaded.problem


def test_path_shim_is_the_interpreters_own_directory_not_its_symlink_target(
        tmp_path: Path) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.symlink_to(sys.executable)
    assert script_dir(str(python)) == str(bin_dir)
    assert shim_path("/usr/bin:/x/bin:/bin", "/x/bin") == "/x/bin:/usr/bin:/bin"
    assert shim_path(None, "/x/bin").startswith("/x/bin" + os.pathsep)
    env = worker_env({"PATH": "/usr/bin", "SECRET": "s"}, profile_env={"PATH": "/opt/p"},
                     profile_home=tmp_path, profile_name="p", board="b",
                     api=tmp_path / "api.sock", task_id=1, run_id=2, lease="l",
                     workspace=tmp_path, executable=str(python))
    assert env["PATH"] == f"{bin_dir}{os.pathsep}/opt/p"  # the profile's PATH, shim first
    assert "SECRET" not in env


async def test_a_worker_runs_relayboard_by_name_from_a_path_without_the_venv(
        tmp_path: Path) -> None:
    # The gateway's own PATH lacks the venv, as when it was started as .venv/bin/relayboard
    # without activating anything: the worker must still find *this* relayboard by name.
    parent = {**os.environ, "PATH": SYSTEM_PATH}
    async with dispatch_env(tmp_path, base_env=parent) as env:
        env.profile("w", ["sh", "-c", "command -v relayboard > where.txt && "
                                      "relayboard kanban complete --result via-path"])
        task = await env.task(workspace=f"dir:{tmp_path / 'ws'}")
        await env.dispatcher.run_cycle(env.board)
        await env.cycle_until_exited()
        done = await env.board.get_task(task.id)
        assert done.status == "done", log_tail(env.board.log_path(task.id))
        assert done.result == "via-path"
    where = (tmp_path / "ws" / "where.txt").read_text(encoding="utf-8").strip()
    assert where == os.path.join(script_dir(), "relayboard")


async def test_logs_and_prompts_are_private(tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("exit", "0", "some output"))
        task = await env.task(body="a private body")
        await env.dispatcher.run_cycle(env.board)
        await env.cycle_until_exited()
        log = env.board.log_path(task.id)
        prompt = env.board.root / "prompts" / f"{task.id}.md"
        assert "some output" in log.read_text(encoding="utf-8")
        assert "a private body" in prompt.read_text(encoding="utf-8")
        for path, mode in ((log, 0o600), (log.parent, 0o700), (prompt, 0o600),
                           (prompt.parent, 0o700)):
            assert stat.S_IMODE(path.stat().st_mode) == mode, (path, oct(path.stat().st_mode))


async def test_a_worker_spewing_output_never_passes_the_log_cap(tmp_path: Path) -> None:
    cap, backups = 200_000, 2
    async with dispatch_env(tmp_path, log_max_bytes=cap, log_backups=backups) as env:
        # ~1.5 s of `yes` writes hundreds of MB uncapped; the relay must hold it to 3 × cap.
        env.profile("w", ["sh", "-c", "timeout 1.5 yes; exit 3"])
        task = await env.task()
        await env.dispatcher.run_cycle(env.board)
        log = env.board.log_path(task.id)
        sizes: list[int] = []

        def on_disk() -> int:
            total = 0
            for path in log.parent.glob(f"{log.name}*"):
                with contextlib.suppress(FileNotFoundError):  # renamed while we looked
                    total += path.stat().st_size
            return total

        async def exited() -> bool:
            sizes.append(on_disk())
            return not env.dispatcher.live_workers()

        await wait_until(exited, what="the yes worker to exit")
        files = sorted(log.parent.glob(f"{log.name}*"))
        assert [p.name for p in files] == [log.name, f"{log.name}.1", f"{log.name}.2"]
        assert all(p.stat().st_size <= cap for p in files)
        assert max(sizes) <= cap * (backups + 1)
        assert (log.parent / f"{log.name}.1").stat().st_size == cap  # it really rotated
        await env.dispatcher.run_cycle(env.board)
        crashed = await env.events(task.id, "crashed")
        assert crashed and crashed[-1].payload["exit_code"] == 3


def test_the_log_relay_keeps_capping_after_the_gateway_dies(tmp_path: Path) -> None:
    # A "gateway" process starts a worker and dies at once; the worker writes 3 MB afterwards.
    log = tmp_path / "logs" / "1.log"
    gate = tmp_path / "go"
    script = textwrap.dedent(f"""
        import json, os, sys
        from pathlib import Path
        from kanban.runtime.spawn import SpawnRequest, start_worker
        argv = ["sh", "-c", "while [ ! -e {gate} ]; do sleep 0.01; done; "
                            "head -c 3000000 /dev/zero; touch {tmp_path / 'done'}"]
        env = {{"PATH": os.environ["PATH"]}}
        proc = start_worker(SpawnRequest(argv, env, Path({str(tmp_path)!r}), Path({str(log)!r}),
                                         500_000, 10))
        print(json.dumps({{"worker": proc.pid, "pump": proc.pump.pid}}), flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    pids = json.loads(out.stdout)
    assert psutil.pid_exists(pids["pump"])  # the relay outlived its parent
    gate.touch()  # only now does the worker write
    pump = psutil.Process(pids["pump"])
    try:
        pump.wait(timeout=60)  # it ends once the worker closed the pipe
    except psutil.NoSuchProcess:
        pass
    files = sorted(log.parent.glob("1.log*"))
    assert len(files) == 6 and all(p.stat().st_size <= 500_000 for p in files)
    assert sum(p.stat().st_size for p in files) == 3_000_000  # nothing lost, nothing over cap
    assert (tmp_path / "done").exists()
