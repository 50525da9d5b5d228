"""Shared pieces of the chat tests: a worker that completes with a PNG, a PDF and a CSV, and
helpers to wait on what an adapter was sent."""

from __future__ import annotations

import sys
from pathlib import Path

from kanban.agents.profiles import Profiles
from platforms.fake import FakeAdapter
from tests.gateway.test_notifier import png_bytes

# Writes a PNG, a PDF and a CSV in its workspace and completes declaring them.
REPORT_WORKER = """
import subprocess, sys
from pathlib import Path
Path("chart.png").write_bytes(bytes.fromhex(sys.argv[1]))
Path("report.pdf").write_bytes(b"%PDF-1.4 quarterly numbers")
Path("data.csv").write_bytes(b"quarter,revenue\\nQ1,10\\n")
subprocess.run([sys.executable, "-m", "gateway", "kanban", "complete",
                "--summary", "Revenue up 4 %", "--artifact", "chart.png",
                "--artifact", "report.pdf", "--artifact", "data.csv"], check=True)
"""
REPORT_FILES = {"chart.png", "report.pdf", "data.csv"}


def make_reporter(home: Path, scripts: Path, name: str = "reporter") -> None:
    scripts.mkdir(parents=True, exist_ok=True)
    script = scripts / "report_worker.py"
    script.write_text(REPORT_WORKER, encoding="utf-8")
    Profiles(home).create(name, command=[sys.executable, str(script), png_bytes().hex()],
                          read_paths=[str(scripts)])


def sent_names(fake: FakeAdapter, thread: str | None = None) -> set[str]:
    return {p.name for c in fake.calls if c.method != "send" and c.method != "typing"
            and (thread is None or c.dest.thread == thread) for p in c.files}


async def truthy(value: object) -> object:
    return value
