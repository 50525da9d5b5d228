"""CLI benchmark: prints figures measured in one run, side by side; asserts nothing.

* ``python -c pass``: the interpreter alone, the floor of every command;
* ``relayboard kanban create`` in a home of its own (made by a first run);
* ``relayboard kanban list --json`` on a board of N tasks (default 5,000, filled by
  bench/populate.py), every task with its body;
* ``kanban list`` (the human table, first 100 rows);

each the median wall time of several processes, with its ratio to ``python -c pass``, and the
import time of ``kanban create`` (``python -X importtime``, top-level imports). Goals:
``kanban create`` <= 100 ms.

Processes run with bytecode caching on, as an installed package does (a process that compiles
its modules every time measures the compiler). To compare with another checkout, point
``--source`` at its tree (it goes first on PYTHONPATH).

Usage: python bench/cli.py [--tasks N] [--runs N] [--source DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from populate import populate

CPU: dict[str, float] = {}  # median CPU time (user + system) of each command, in ms


def timed(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time in ms (and into CPU, the median CPU time: less sensitive to other
    processes on a loaded machine); NaN when the command fails (an older checkout without the
    flag). One unmeasured run first, so bytecode is written and the file cache is warm."""
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            return float("nan")
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    CPU[" ".join(argv)] = statistics.median(cpu) * 1000
    return statistics.median(times) * 1000


def import_ms(argv: list[str], env: dict[str, str]) -> float:
    """Cumulative import time of the top-level imports of one run, in ms."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=True)
    total = 0
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match and not match.group(2).startswith(" "):
            total += int(match.group(1))
    return total / 1000


def entry_for(source: Path | None) -> list[str]:
    if source is None:
        return ["-m", "gateway"]
    # An editable install's import hook would still find this checkout: drop it first.
    return ["-c", (
        "import runpy, sys; "
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
        f"sys.path.insert(0, {str(source.resolve())!r}); "
        "runpy.run_module('gateway', run_name='__main__')")]


def measure(entry: list[str], home: Path, small: Path, tasks: int, runs: int,
            env: dict[str, str]) -> dict[str, float]:
    create = [sys.executable, *entry, "--home", str(small), "kanban", "create", "start-up"]
    subprocess.run(create, env=env, stdout=subprocess.DEVNULL, check=True)  # board made
    cli = [sys.executable, *entry, "--home", str(home), "kanban", "list"]
    figures = {"kanban create": timed(create, env, runs)}
    figures["kanban create, CPU time"] = CPU[" ".join(create)]
    figures[f"kanban list --json ({tasks:,})"] = timed([*cli, "--json"], env, runs)
    figures[f"kanban list --json ({tasks:,}), CPU time"] = CPU[" ".join([*cli, "--json"])]
    figures["kanban list (table)"] = timed(cli, env, max(3, runs // 2))
    figures["kanban create imports (-X importtime)"] = import_ms(create, env)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--source", type=Path, default=None,
                        help="checkout to measure instead of the installed package")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout, measured in the same run beside it")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYBOARD_") and k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")  # not in the source trees
        home = Path(tmp) / "home"
        started = time.perf_counter()
        populate(home, args.tasks)
        print(f"populated {args.tasks} tasks in {time.perf_counter() - started:.1f} s")
        bare = timed([sys.executable, "-c", "pass"], env, args.runs)
        bare_cpu = CPU[f"{sys.executable} -c pass"]
        ours = measure(entry_for(args.source), home, Path(tmp) / "small", args.tasks,
                       args.runs, env)
        base = (measure(entry_for(args.baseline), home, Path(tmp) / "small-base", args.tasks,
                        args.runs, env) if args.baseline is not None else None)
        again = timed([sys.executable, "-c", "pass"], env, args.runs)
        bare = statistics.median([bare, again])
        bare_cpu = statistics.median([bare_cpu, CPU[f"{sys.executable} -c pass"]])
    head = f"{'median wall time, ms':40}{'this':>8}{'x pass':>8}"
    print(head + (f"{'baseline':>10}{'x pass':>8}" if base else ""))
    print(f"{'python -c pass':40}{bare:8.0f}{1:8.1f}")
    print(f"{'python -c pass, CPU time':40}{bare_cpu:8.0f}{1:8.1f}")
    for name, ms in ours.items():
        floor = bare_cpu if "CPU" in name else bare  # CPU time against the interpreter's
        line = f"{name:40}{ms:8.0f}{ms / floor:8.1f}"
        if base:
            line += f"{base[name]:10.0f}{base[name] / floor:8.1f}"
        print(line)


if __name__ == "__main__":
    main()
