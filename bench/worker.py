"""Overhead of the built-in worker on a one-step task, against a fake endpoint that answers at
once (its only reply is a ``kanban_complete`` call). Prints figures; asserts nothing.

    python bench/worker.py [--tasks 20] [--client httpx|openai]

Per task, through the real dispatcher and a real ``python -m gateway worker run`` process:

* claim → first request: from just before the dispatcher cycle that claims the task and spawns
  its worker, to the fake endpoint receiving the first chat-completions request. This is the
  worker's start-up: interpreter, CLI, board, profile, context, and the chat client's import
  (the profile's ``client``: httpx by default; ``--client openai`` measures the SDK instead).
* final tool call → done: from the endpoint answering with ``kanban_complete`` to the task's
  ``completed_at`` (the worker parsing the reply and committing the completion).

The goal for the first figure is 300 ms; the bare interpreter start and the imports of the
worker's path are printed beside it so a regression can be placed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kanban.agents.profiles import Profiles  # noqa: E402
from kanban.home import Boards  # noqa: E402
from kanban.runtime.dispatcher import Dispatcher, DispatchSettings  # noqa: E402
from tests.fakes.llm_server import LLMServer  # noqa: E402

GOAL_MS = 300.0


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def line(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<32} p50 {percentile(ms, 50):7.1f} ms   p95 {percentile(ms, 95):7.1f} ms   "
            f"mean {statistics.fmean(ms):7.1f} ms   (n={len(ms)})")


def import_cost(statement: str, runs: int = 5) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT)
        out.append(time.perf_counter() - start)
    return out


async def bench(tasks: int, root: Path, client: str) -> tuple[list[float], list[float]]:
    home = root / "home"
    boards = Boards(home)
    board = await boards.open("default")
    profiles = Profiles(home)
    async with LLMServer() as llm:
        profiles.create("w", base_url=llm.base_url, model="bench-model")
        file = profiles.path("w") / "profile.yaml"
        file.write_text(file.read_text(encoding="utf-8") + f"client: {client}\n",
                        encoding="utf-8")
        dispatcher = Dispatcher(boards, profiles, DispatchSettings(tmux_cleanup=False),
                                base_env=dict(os.environ), slugs=["default"])
        # Recorded.at is monotonic; completed_at is wall time: one offset maps between them.
        offset = time.time() - time.monotonic()
        to_first, to_done = [], []
        try:
            for i in range(tasks):
                task = (await board.create_task(f"one step {i}", assignee="w")).task
                llm.tool_call("kanban_complete", {"result": "ok"})
                seen = len(llm.completions())
                start = time.monotonic()
                report = await dispatcher.run_cycle(board)
                assert [s["task_id"] for s in report.spawned] == [task.id], report
                assert await dispatcher.wait_workers(60), "the worker did not exit"
                await dispatcher.run_cycle(board, max_new=0)
                done = await board.get_task(task.id)
                assert done.status == "done", (done.status, done.blocked_reason)
                [first] = llm.completions()[seen:]
                to_first.append(first.at - start)
                assert done.completed_at is not None
                to_done.append(done.completed_at - (first.at + offset))
        finally:
            await dispatcher.aclose(terminate=True)
            await boards.close()
    return to_first, to_done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--client", choices=["httpx", "openai"], default="httpx",
                        help="the profile's chat client (default: httpx, the worker's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rb-bench-worker-") as tmp:
        to_first, to_done = asyncio.run(bench(args.tasks, Path(tmp), args.client))
    print(f"client: {args.client}")
    print(line("claim → first request", to_first))
    print(line("final tool call → task done", to_done))
    print(f"goal: claim → first request ≤ {GOAL_MS:.0f} ms "
          f"({'met' if percentile(to_first, 50) * 1000 <= GOAL_MS else 'not met'} at p50)")
    print("start-up costs, for placing the figure above:")
    print(line("  python -c pass", import_cost("pass")))
    print(line("  import gateway.cli.root", import_cost("import gateway.cli.root")))
    entry = ("import gateway.__main__, gateway.cli.worker, gateway.builtin_worker; "
             "gateway.cli.worker.skip_httpx_cli()")
    print(line("  the worker's imports (httpx)", import_cost(f"{entry}; import httpx")))
    print(line("  import gateway.builtin_worker", import_cost("import gateway.builtin_worker")))
    print(line("  import httpx", import_cost("import httpx")))
    print(line("  import openai", import_cost("import openai")))


if __name__ == "__main__":
    main()
