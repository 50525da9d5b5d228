"""``relayboard gateway run`` as a real process: the home lock, SIGTERM with workers left
running and adopted, and a completion with its files delivered through python-telegram-bot to
the loopback Telegram fake — across a kill -9, and through 429 and 500 answers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web

from kanban.agents.profiles import Profiles
from platforms.registry import create_adapter
from tests.fakes.telegram_server import TOKEN, TelegramServer
from tests.gateway.conftest import clean_environ
from tests.gateway.test_notifier import png_bytes
from tests.kanban.workers.harness import AGENT_PATHS, agent, wait_until

WITHIN = 30.0

# The worker: writes a PNG, a PDF and a CSV in its workspace and completes declaring them, plus
# a key under the (fake) ~/.ssh that must never leave the host.
WORKER = """
import os, subprocess, sys
from pathlib import Path
Path("chart.png").write_bytes(bytes.fromhex(sys.argv[1]))
Path("report.pdf").write_bytes(b"%PDF-1.4 quarterly numbers")
Path("data.csv").write_bytes(b"quarter,revenue\\nQ1,10\\n")
key = Path(os.environ["HOME"]) / ".ssh" / "id_rsa"
complete = [sys.executable, "-m", "gateway", "kanban", "complete", "--summary", "Revenue up 4 %",
            "--artifact", "chart.png", "--artifact", "report.pdf", "--artifact", "data.csv"]
# A host file named as an artifact: the worker API refuses the whole completion.
leak = subprocess.run([*complete, "--artifact", str(key)], capture_output=True, text=True)
if leak.returncode != 1 or "outside your workspace" not in leak.stderr:
    sys.exit(f"the key was not refused: {leak.returncode} {leak.stderr}")
subprocess.run(complete, check=True)
"""


def telegram_base_url(server_url: str) -> str:
    """The adapter's base_url for the fake, whichever meaning this adapter version gives it
    (a host to which it appends ``/bot``, or the SDK's full ``…/bot`` base)."""
    probe = create_adapter("telegram", token="1:x", allowed_users=[],
                           base_url="http://h:1/bot")
    full = probe.bot.base_url == "http://h:1/bot1:x"  # type: ignore[attr-defined]
    return f"{server_url}/bot" if full else server_url


class Gateway:
    """One ``relayboard gateway run`` subprocess, its stderr in a file."""

    def __init__(self, home: Path, env: dict[str, str], log: Path) -> None:
        self.home, self.env, self.log = home, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", "--home", str(self.home), *args],
                              env=self.env, capture_output=True, text=True, timeout=WITHIN,
                              check=True)

    async def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "--home", str(self.home), "gateway", "run"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL)
        await self.wait_log("gateway running on", self.proc)
        return self.proc

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def wait_log(self, needle: str, proc: subprocess.Popen[bytes] | None = None,
                       count: int = 1) -> None:
        async def seen() -> bool:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"gateway exited {proc.returncode}:\n{self.text()}")
            return self.text().count(needle) >= count

        await wait_until(seen, within=WITHIN, what=f"log line {needle!r}")

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)

        async def exited() -> bool:
            return self.proc is not None and self.proc.poll() is not None

        await wait_until(exited, within=WITHIN, what="gateway exit")
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WITHIN)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    # The dashboard on a port of its own: tests run side by side, 8765 may be taken.
    (path / "config.yaml").write_text("dashboard: {port: 0}\n", encoding="utf-8")
    return path


@pytest.fixture
def gateway(home: Path, tmp_path: Path) -> Iterator[Gateway]:
    user = tmp_path / "user"
    (user / ".ssh").mkdir(parents=True)
    (user / ".ssh" / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8")
    env = clean_environ({"HOME": str(user), "TELEGRAM_BOT_TOKEN": TOKEN, "PTB_TIMEDELTA": "1"})
    gw = Gateway(home, env, tmp_path / "gateway.log")
    try:
        yield gw
    finally:
        gw.kill()


class GatedTelegram(TelegramServer):
    """The Telegram fake, able to hold sendMessage calls unanswered (a send in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["method"] == "sendMessage" and not self.gate.is_set():
            await self.record_only(request)
            await self.gate.wait()
            raise ConnectionResetError("held until the gateway died")
        return await super().handle(request)

    async def record_only(self, request: web.Request) -> None:
        from tests.fakes.common import Recorded, read_form

        params, files = await read_form(request)
        await self.record(Recorded("sendMessage(held)", params, files))


@pytest.fixture
async def telegram() -> AsyncIterator[GatedTelegram]:
    async with GatedTelegram() as server:
        yield server


def write_setup(gw: Gateway, telegram: TelegramServer, tmp_path: Path) -> None:
    (gw.home / "config.yaml").write_text(
        "kanban: {auto_decompose: false}\n"
        "dashboard: {port: 0}\n"
        "platforms:\n"
        f"  telegram: {{enabled: true, base_url: '{telegram_base_url(telegram.url)}',"
        " allowed_users: []}\n", encoding="utf-8")
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    gw.cli("profile", "create", "reporter",
           "--command", f"{sys.executable} {script} {png_bytes().hex()}")
    Profiles(gw.home).update("reporter", read_paths=[str(script)])  # its sandbox runs the script
    gw.cli("kanban", "create", "Quarterly report", "--assignee", "reporter")
    gw.cli("kanban", "subscribe", "1", "--platform", "telegram", "--chat", "555")


def files_of(server: TelegramServer, method: str) -> list[tuple[str, bytes]]:
    return [f for r in server.calls(method) for f in r.files.values()]


def texts_of(server: TelegramServer) -> list[str]:
    return [str(r.params.get("text", "")) for r in server.calls("sendMessage")]


async def test_second_gateway_on_a_home_is_refused_naming_the_holder(gateway: Gateway) -> None:
    proc = await gateway.start()
    second = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway", "--home", str(gateway.home), "gateway", "run"],
        env=gateway.env, capture_output=True, text=True, timeout=WITHIN)
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: another gateway is already running on this home (pid {proc.pid}); "
        "stop it first, or use a different --home")
    assert await gateway.stop() == 0


async def test_sigterm_exits_zero_leaves_workers_running_and_the_next_start_adopts_them(
    gateway: Gateway, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    gateway.cli("profile", "create", "w", "--command",
                " ".join([*agent("wait-file", str(release))]))
    Profiles(gateway.home).update("w", read_paths=AGENT_PATHS)  # its sandbox runs agent.py
    gateway.cli("kanban", "create", "long job", "--assignee", "w")
    await gateway.start()

    def worker_pid() -> int | None:
        shown = json.loads(gateway.cli("kanban", "show", "1", "--json").stdout)
        pids = [r["worker_pid"] for r in shown["runs"] if r["status"] == "active"]
        return pids[0] if pids and pids[0] else None

    async def spawned() -> int | None:
        return await asyncio.to_thread(worker_pid)

    pid = await wait_until(spawned, within=WITHIN, what="worker spawned")
    assert await gateway.stop() == 0
    assert psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    proc = await gateway.start()
    await gateway.wait_log("dispatch default: adopted=1", proc)
    release.write_text("go", encoding="utf-8")

    async def done() -> bool:
        shown = await asyncio.to_thread(gateway.cli, "kanban", "show", "1", "--json")
        return bool(json.loads(shown.stdout)["status"] == "done")

    await wait_until(done, within=WITHIN, what="adopted worker completed")
    assert await gateway.stop() == 0


async def test_completion_with_files_reaches_telegram_across_kill_9_and_server_errors(
    gateway: Gateway, telegram: GatedTelegram, tmp_path: Path
) -> None:
    write_setup(gateway, telegram, tmp_path)
    telegram.gate.clear()  # the first completion message is held in flight
    await gateway.start()
    await telegram.wait_until(lambda: telegram.calls("sendMessage(held)"), WITHIN)
    gateway.kill()  # kill -9 between queueing and the platform's answer
    telegram.gate.set()
    # The platform then answers 429 (Retry-After) and 500 before accepting.
    telegram.fail_next("sendMessage", 429, {"ok": False, "error_code": 429,
                                            "description": "Too Many Requests: retry after 1",
                                            "parameters": {"retry_after": 1}})
    telegram.fail_next("sendMessage", 500, {"ok": False, "error_code": 500,
                                            "description": "Internal Server Error"})
    await gateway.start()
    await telegram.wait_until(lambda: len(telegram.calls("sendDocument")) >= 2, WITHIN)
    await telegram.wait_until(lambda: any("✔ done" in t for t in texts_of(telegram)), WITHIN)

    done = [t for t in texts_of(telegram) if t.startswith("✔ done")]
    assert done and done[0].splitlines() == [
        "✔ done · #1 Quarterly report · @reporter", "Revenue up 4 %"]
    photos = files_of(telegram, "sendPhoto") + files_of(telegram, "sendMediaGroup")
    assert [data for _, data in photos] == [png_bytes()]
    documents = sorted(files_of(telegram, "sendDocument"))
    assert documents == [("data.csv", b"quarter,revenue\nQ1,10\n"),
                         ("report.pdf", b"%PDF-1.4 quarterly numbers")]
    every_upload = [data for r in telegram.requests for _, data in r.files.values()]
    assert not any(b"PRIVATE KEY" in data for data in every_upload)
    assert all(str(tmp_path) not in t for t in texts_of(telegram))

    subs: list[dict[str, Any]] = json.loads(
        gateway.cli("kanban", "subscriptions", "--json").stdout)
    [row] = subs[0]["deliveries"]
    assert row["state"] == "sent"
    steps = {r["step"]: r["status"] for r in row["receipts"]}
    assert steps == {"message": "delivered",
                     "images": "delivered", "file:report.pdf": "delivered",
                     "file:data.csv": "delivered"}
    assert await gateway.stop() == 0
    log = gateway.text()
    assert TOKEN not in log and TOKEN.split(":")[1] not in log
    assert "sent again" in log  # the row interrupted by kill -9 was released at start
    assert os.environ.get("TELEGRAM_BOT_TOKEN") != TOKEN
