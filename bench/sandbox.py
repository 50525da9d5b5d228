"""Worker boot time with and without the sandbox: prints medians; asserts nothing.

Boot is measured from just before the spawn — for a sandboxed worker that includes building its
policy and ruleset (every path opened, every rule added) — to the first line the child prints,
read from its stdout pipe. Runs alternate between the two, so load on the machine hits both;
the child's own CPU time (user + system, from ``wait4``) is printed too, being far less
sensitive to other load than wall time, and so is the CPU time the dispatcher's thread spends
building the policy and ruleset. Two children: ``/bin/echo`` (the spawn itself) and this
Python printing one line (a worker's interpreter start-up, which opens hundreds of files, each
checked by Landlock). Goal: the sandbox adds at most 5 ms to the median.

Usage: python bench/sandbox.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from kanban.runtime.landlock import run_confined
from kanban.runtime.sandbox import (
    WorkerPaths as Paths,
)
from kanban.runtime.sandbox import (
    confine,
    kernel_abi,
    sandbox_status,
    worker_policy,
)


def prepare(root: Path) -> Paths:
    """A board folder the way the dispatcher lays it out for one task."""
    board = root / "boards" / "default"
    paths = Paths(workspace=board / "workspaces" / "1", tmpdir=board / "tmp" / "1",
                  profile_home=root / "profiles" / "w", inputs=[board / "attachments" / "1"],
                  prompt_file=board / "prompts" / "1.md")
    for folder in (paths.workspace, paths.tmpdir, paths.profile_home, *paths.inputs,
                   board / "prompts"):
        folder.mkdir(parents=True, exist_ok=True)
    (board / "prompts" / "1.md").write_text("the task")
    return paths


def boot(argv: Sequence[str], paths: Paths, sandboxed: bool) -> tuple[float, float, float]:
    """(wall seconds to the first line, the child's CPU seconds, this thread's CPU seconds
    spent building the policy and ruleset)."""
    started = time.perf_counter()
    ruleset = None
    building = time.thread_time()
    if sandboxed:
        ruleset = confine("required", worker_policy(paths))
    built = time.thread_time() - building

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                cwd=paths.workspace, env={"PATH": os.defpath},
                                close_fds=True, start_new_session=True)

    try:
        proc = start() if ruleset is None else run_confined(ruleset, start)
    finally:
        if ruleset is not None:
            ruleset.close()
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - started
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert line.strip() == b"up", line
    return elapsed, usage.ru_utime + usage.ru_stime, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"sandbox: {sandbox_status('auto')}")
    if kernel_abi() < 2:
        print("no Landlock here: nothing to compare")
        return
    children = {"echo": ["/bin/echo", "up"], "python": [sys.executable, "-I", "-c",
                                                         "print('up')"]}
    with tempfile.TemporaryDirectory() as tmp:
        paths = prepare(Path(tmp))
        for name, argv in children.items():
            wall: dict[bool, list[float]] = {False: [], True: []}
            cpu: dict[bool, list[float]] = {False: [], True: []}
            build: dict[bool, list[float]] = {False: [], True: []}
            boot(argv, paths, True)  # warm caches once
            for _ in range(args.runs):
                for sandboxed in (False, True):
                    took, used, built = boot(argv, paths, sandboxed)
                    wall[sandboxed].append(took)
                    cpu[sandboxed].append(used)
                    build[sandboxed].append(built)
            for what, figures in (("boot", wall), ("child CPU", cpu),
                                  ("ruleset build CPU", build)):
                plain, confined = (statistics.median(figures[s]) * 1000 for s in (False, True))
                print(f"{name:>6}: median {what} {plain:6.2f} ms unconfined, {confined:6.2f} ms"
                      f" sandboxed ({confined - plain:+.2f} ms) over {args.runs} runs each")


if __name__ == "__main__":
    main()
