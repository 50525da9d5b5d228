"""The dispatcher shares the daemon's event loop with chat: its blocking work (workspaces,
prompt writes, Popen) runs on worker threads, and the loop stays responsive meanwhile. (Worker
logs are capped by each worker's own log relay, so the dispatcher never copies them.)

Two kinds of evidence. Loop lag is what a chat user feels, but a 5 MB copy costs only a few ms
on a fast disk, so lag alone cannot show where the work ran. Python's audit events can: the
interpreter itself reports every ``open``, ``shutil.copyfile`` and ``subprocess.Popen`` with the
thread it ran on; nothing in the dispatcher is replaced or mocked.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.kanban.workers.harness import agent, dispatch_env

_WATCHED = ("open", "shutil.copyfile", "subprocess.Popen")
_recording: list[tuple[str, str, int]] | None = None
_hooked = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Runs for every audit event in the process for the rest of the session: keep it trivial.
    if _recording is not None and event in _WATCHED:
        _recording.append((event, str(args[0]) if args else "", threading.get_ident()))


@contextmanager
def recording() -> Iterator[list[tuple[str, str, int]]]:
    """(event, first argument, thread id) of the watched audit events while inside."""
    global _recording, _hooked
    if not _hooked:
        sys.addaudithook(_audit)  # cannot be removed again: hence the global switch
        _hooked = True
    _recording = []
    try:
        yield _recording
    finally:
        _recording = None


class LagMeter:
    """Measures how late a 5 ms periodic coroutine wakes up: the event loop's responsiveness."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.worst = 0.0
        self.ticks = 0

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, time.monotonic() - before - self.period)
            self.ticks += 1


async def test_spawning_writes_the_prompt_and_starts_the_worker_off_the_loop(
        tmp_path: Path) -> None:
    async with dispatch_env(tmp_path) as env:
        env.profile("w", agent("complete"))
        task = await env.task("off the loop")
        with recording() as events:
            report = await env.dispatcher.run_cycle(env.board)
        assert [s["task_id"] for s in report.spawned] == [task.id]
        loop_thread = threading.get_ident()
        prompt = str(env.board.root / "prompts" / f"{task.id}.md")
        popens = [thread for event, _, thread in events if event == "subprocess.Popen"]
        prompt_opens = [thread for event, path, thread in events
                        if event == "open" and path == prompt]
        log_opens = [thread for event, path, thread in events
                     if event == "open" and path == str(env.board.log_path(task.id))]
        assert popens and prompt_opens and log_opens, events
        assert loop_thread not in popens + prompt_opens + log_opens
        await env.wait_status(task.id, "done")
