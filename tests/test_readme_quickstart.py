"""The README's quick start, run verbatim as a new user would: no activated venv, a fresh home.

The commands are read from README.md's "Quick start" section, so the README and this test cannot
drift apart: a changed line is run as changed, and a line this test does not know how to run
fails it. The install steps (``python3 -m venv .venv``, ``.venv/bin/pip install …``) are CI's job
and are skipped; ``.venv`` here is a link to the venv running the tests. The daemon line runs in
the background and is stopped with SIGINT (Ctrl-C) once the task is done; the test-suite line is
what CI runs (``.ci/run``), not re-run from inside the suite.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEADLINE = 90.0
INSTALL_STEP = re.compile(r"^(python3? -m venv \.venv|\.venv/bin/pip install .*)$")


@dataclass
class QuickStart:
    daemon: str  # the long-running command of the first block
    tests: str  # the test-suite command of the first block
    work: list[str]  # the second block's commands, in order


def readme_quickstart(text: str) -> QuickStart:
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```(?:sh|bash|console)?\n(.*?)^```", section.group(1), re.S | re.M)
    assert len(blocks) == 2, f"expected 2 code blocks in the quick start, found {len(blocks)}"
    setup, work = ([line for line in _logical_lines(block)] for block in blocks)
    daemon = tests = None
    for line in setup:
        steps = [s.strip() for s in line.split("&&")]
        installs = [s for s in steps if INSTALL_STEP.match(s)]
        assert installs == steps[:len(installs)] and installs, f"no install steps first: {line}"
        rest = " && ".join(steps[len(installs):])
        if re.search(r"\brelayboard (kanban dispatch --loop|gateway run)\b", rest):
            daemon = rest
        elif re.search(r"\bpython -m pytest\b", rest):
            tests = rest
        else:
            pytest.fail(f"the quick start has a line this test does not know how to run: {line}")
    assert daemon and tests, "the quick start lost its daemon or its test command"
    return QuickStart(daemon, tests, work)


def _logical_lines(block: str) -> list[str]:
    """Lines with ``\\`` continuations joined, as the shell reads them; blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip()]


def _venv() -> Path:
    if sys.prefix == sys.base_prefix:
        pytest.skip("the quick start needs the tests to run from a venv (.venv)")
    return Path(sys.prefix)


def _user_env(home: Path, venv: Path) -> dict[str, str]:
    """A new user's shell: the venv not activated (its bin/ not on PATH), a fresh home."""
    bin_dir = os.path.dirname(os.path.abspath(sys.executable))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYBOARD_") and k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", os.defpath).split(os.pathsep)
                                  if p and os.path.abspath(p) not in (bin_dir, str(venv / "bin")))
    env["RELAYBOARD_HOME"] = str(home)
    return env


def test_readme_quick_start_commands_are_parsed_from_the_readme() -> None:
    quick = readme_quickstart(README.read_text(encoding="utf-8"))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # The test command the README shows is the one CI runs.
    assert shlex.split(quick.tests)[-3:] == ["-m", "pytest", "-q"]
    assert "python -m pytest -q" in ci
    assert any("kanban create" in line for line in quick.work)


def test_readme_quick_start_runs_verbatim_without_an_activated_venv(tmp_path: Path) -> None:
    quick = readme_quickstart(README.read_text(encoding="utf-8"))
    venv = _venv()
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / ".venv").symlink_to(venv, target_is_directory=True)
    home = tmp_path / "home"
    env = _user_env(home, venv)
    # The user's shell cannot find `relayboard` by name: only .venv/bin/relayboard works.
    probe = subprocess.run(["sh", "-c", "command -v relayboard"], env=env, cwd=clone,
                           capture_output=True, text=True, timeout=30, check=False)
    assert probe.returncode != 0, f"relayboard is on the test's PATH: {probe.stdout}"

    daemon = subprocess.Popen(["sh", "-c", quick.daemon], env=env, cwd=clone,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        *setup, show = quick.work
        for line in setup:
            done = subprocess.run(["sh", "-c", line], env=env, cwd=clone, capture_output=True,
                                  text=True, timeout=60, check=False)
            assert done.returncode == 0, f"{line!r} failed: {done.stderr}"
        # "In another terminal, give it work": the user looks again until the worker is done.
        deadline = time.monotonic() + DEADLINE
        while True:
            shown = subprocess.run(["sh", "-c", show], env=env, cwd=clone, capture_output=True,
                                   text=True, timeout=60, check=False)
            assert shown.returncode == 0, shown.stderr
            if re.search(r"\bdone\b", shown.stdout) or re.search(r"\bblocked\b", shown.stdout):
                break
            assert time.monotonic() < deadline, f"the task never finished:\n{shown.stdout}"
            time.sleep(0.2)  # a person re-running `show`; the deadline above bounds it
    finally:
        os.killpg(daemon.pid, signal.SIGINT)  # Ctrl-C, as the README says
        try:
            output, _ = daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            output, _ = daemon.communicate()
            pytest.fail("the dispatcher did not stop on Ctrl-C")
    log = home / "boards" / "default" / "logs" / "1.log"
    assert "blocked" not in shown.stdout, f"{shown.stdout}\n{log.read_text(errors='replace')}"
    expected = re.search(r"--result (\w+)", " ".join(quick.work))
    assert expected, "the quick start's worker no longer reports a result"
    assert re.search(rf"\bresult\b.*\b{expected.group(1)}\b", shown.stdout, re.I | re.S), \
        shown.stdout
    assert "hello from 1" in log.read_text(encoding="utf-8")
    assert daemon.returncode is not None and daemon.returncode in (0, -signal.SIGINT, 130), \
        output.decode(errors="replace")
