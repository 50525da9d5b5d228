"""Chat end to end through the real SDKs (python-telegram-bot, slack-sdk, discord.py) against
the loopback fakes, in a running daemon: an allow-listed user creates a task unquoted, the
worker's PNG, PDF and CSV arrive in the same thread; a stranger creates nothing and is refused
once; a typo'd assignee is refused with the suggestion; an inbound CSV lands in the task's
attachments; free text reaches the command agent and its file comes back as an attachment; a
schedule made in a Telegram thread posts its first occurrence's chart there."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import platforms.discord  # noqa: F401  (discord.py imported with its audioop warning silenced)
from platforms.base import PlatformAdapter
from platforms.registry import create_adapter
from tests.fakes.common import FakeServer, Recorded
from tests.fakes.discord_server import THREAD_ID, DiscordServer, user
from tests.fakes.discord_server import TOKEN as DISCORD_TOKEN
from tests.fakes.llm_server import LLMServer
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, SlackServer
from tests.fakes.telegram_server import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_server import TelegramServer, visible_text
from tests.gateway.chat_harness import REPORT_FILES, make_reporter
from tests.gateway.test_daemon import running
from tests.kanban.workers.harness import wait_until

WITHIN = 60.0

AGENT = """
import sys
from pathlib import Path
sys.stdin.read()
Path("answer.csv").write_text("a,b\\n1,2\\n")
print("Your numbers are in `" + str(Path("answer.csv").resolve()) + "`")
"""


class Driver:
    """One platform's fake server, seen as a chat thread: say things, read what came back."""

    name: str
    server: FakeServer

    def adapter(self) -> PlatformAdapter:
        raise NotImplementedError

    async def say(self, text: str, *, allowed: bool = True,
                  files: dict[str, bytes] | None = None) -> None:
        raise NotImplementedError

    def texts(self) -> list[str]:
        raise NotImplementedError

    def to_bot(self, text: str) -> str:
        """``text`` with the bot's mention first: the thread is in a group, where free text
        reaches the agent only when it addresses the bot."""
        raise NotImplementedError

    def uploads(self) -> list[tuple[str, bytes]]:
        return [f for r in self.server.requests if self.is_upload(r) for f in r.files.values()]

    def is_upload(self, r: Recorded) -> bool:
        raise NotImplementedError

    def typing_calls(self) -> int:
        raise NotImplementedError

    async def text_matching(self, test: Callable[[str], bool], what: str) -> str:
        async def probe() -> str | None:
            return next((t for t in self.texts() if test(t)), None)

        return await wait_until(probe, within=WITHIN, what=f"{self.name}: {what}")


class TelegramDriver(Driver):
    name = "telegram"

    def __init__(self, server: TelegramServer) -> None:
        self.server = self.tg = server

    def adapter(self) -> PlatformAdapter:
        return create_adapter("telegram", token=TELEGRAM_TOKEN, allowed_users=["42"],
                              base_url=self.tg.api_base)

    async def say(self, text: str, *, allowed: bool = True,
                  files: dict[str, bytes] | None = None) -> None:
        document = next(iter(files.items())) if files else None
        self.tg.push_message(chat_id=-100, thread_id=5, text=text,
                             user_id=42 if allowed else 7,
                             username="alice" if allowed else "eve", document=document)

    def texts(self) -> list[str]:
        return [visible_text(str(r.params["text"])) for r in self.tg.calls("sendMessage")
                if r.params.get("message_thread_id") == "5"]

    def to_bot(self, text: str) -> str:
        return f"@relay_bot {text}"

    def is_upload(self, r: Recorded) -> bool:
        return r.method in ("sendPhoto", "sendDocument", "sendMediaGroup") and \
            r.params.get("message_thread_id") == "5"

    def typing_calls(self) -> int:
        return len(self.tg.calls("sendChatAction"))


class SlackDriver(Driver):
    name = "slack"
    thread = "1700000000.000100"

    def __init__(self, server: SlackServer) -> None:
        self.server = self.sl = server
        self.ts = itertools.count(1)

    def adapter(self) -> PlatformAdapter:
        return create_adapter("slack", bot_token=BOT_TOKEN, app_token=APP_TOKEN,
                              allowed_users=["U1"], base_url=self.sl.api_base)

    async def say(self, text: str, *, allowed: bool = True,
                  files: dict[str, bytes] | None = None) -> None:
        event: dict[str, Any] = {
            "type": "message", "channel": "C1", "user": "U1" if allowed else "U7",
            "text": text.replace("/", "!", 1) if text.startswith("/") else text,
            "ts": f"1700000001.{next(self.ts):06d}", "thread_ts": self.thread}
        if files:
            event["subtype"] = "file_share"
            event["files"] = [self.sl.share_file(n, d) for n, d in files.items()]
        await self.sl.push_event(event)

    def texts(self) -> list[str]:
        return [str(r.params["text"]) for r in self.sl.calls("chat.postMessage")
                if r.params.get("thread_ts") == self.thread]

    def to_bot(self, text: str) -> str:
        return f"<@UBOT> {text}"

    def uploads(self) -> list[tuple[str, bytes]]:
        names = {fid: name for fid, (name, _) in self.sl.uploads.items()}
        done = [f["id"] for r in self.sl.calls("files.completeUploadExternal")
                if r.params.get("thread_ts") == self.thread
                for f in json.loads(r.params["files"])]
        return [(names[fid], self.sl.uploaded.get(fid, b"")) for fid in done]

    def typing_calls(self) -> int:
        return len(self.sl.calls("reactions.add"))


class DiscordDriver(Driver):
    name = "discord"

    def __init__(self, server: DiscordServer) -> None:
        self.server = self.dc = server

    def adapter(self) -> PlatformAdapter:
        adapter = create_adapter("discord", token=DISCORD_TOKEN, allowed_users=["42"],
                                 base_url=self.dc.api_base, gateway_url=self.dc.gateway_url)
        adapter.guild_ready_timeout = 0.1  # type: ignore[attr-defined]
        return adapter

    async def say(self, text: str, *, allowed: bool = True,
                  files: dict[str, bytes] | None = None) -> None:
        await self.dc.push_message(channel_id=THREAD_ID, content=text, files=files,
                                   author=user("42", "bob") if allowed else user("5", "eve"))

    def texts(self) -> list[str]:
        return [str(r.params.get("content") or "")
                for r in self.dc.calls(f"POST /channels/{THREAD_ID}/messages")]

    def to_bot(self, text: str) -> str:
        return f"<@1000> {text}"

    def is_upload(self, r: Recorded) -> bool:
        return r.method == f"POST /channels/{THREAD_ID}/messages" and bool(r.files)

    def typing_calls(self) -> int:
        return len(self.dc.calls(f"POST /channels/{THREAD_ID}/typing"))


SERVERS: dict[str, Callable[[], FakeServer]] = {
    "telegram": TelegramServer, "slack": SlackServer, "discord": DiscordServer}
DRIVERS: dict[str, Callable[[Any], Driver]] = {
    "telegram": TelegramDriver, "slack": SlackDriver, "discord": DiscordDriver}


@pytest.fixture
async def driver(request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Driver]:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    async with SERVERS[request.param]() as server:
        yield DRIVERS[request.param](server)


@pytest.mark.parametrize("driver", ["telegram", "slack", "discord"], indirect=True)
async def test_chat_end_to_end_through_the_real_sdk(driver: Driver, tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_reporter(home, tmp_path / "scripts")
    script = tmp_path / "agent.py"
    script.write_text(AGENT, encoding="utf-8")
    config = ("kanban: {auto_decompose: false}\n"
              f"agent:\n  kind: command\n  command: {{argv: ['{sys.executable}', '{script}']}}\n")
    async with AsyncExitStack() as stack:
        daemon = await stack.enter_async_context(
            running(home, config, {driver.name: driver.adapter}))

        async def connected() -> bool:
            status = await daemon.status()
            return bool(status["adapters"][driver.name]["state"] == "connected")

        await wait_until(connected, within=WITHIN, what="adapter connected")
        board = await daemon.boards.open("default")

        # Someone not on the list: nothing runs, one refusal however often they try.
        await driver.say("/kanban create Steal the plans", allowed=False)
        await driver.say("/kanban create Steal the plans", allowed=False)
        refusal = await driver.text_matching(lambda t: "allow-list" in t, "refusal")
        await driver.say("/kanban create Quarterly report --assignee reportr")
        typo = await driver.text_matching(lambda t: "no profile" in t, "typo refused")
        assert typo == "no profile 'reportr' — did you mean 'reporter'?"
        assert await board.list_tasks() == []
        assert [t for t in driver.texts() if "allow-list" in t] == [refusal]

        # The unquoted create: the reply names the task; the completion and files follow.
        await driver.say("/kanban create Quarterly report --assignee reporter")
        created = await driver.text_matching(lambda t: t.startswith("Created #1"), "created")
        assert created.startswith("Created #1 Quarterly report · ")

        async def files_arrived() -> set[str] | None:
            names = {name for name, _ in driver.uploads()}
            return names if names >= REPORT_FILES else None

        await wait_until(files_arrived, within=WITHIN, what="the three files")
        done = await driver.text_matching(lambda t: t.startswith("✔ done"), "completion")
        assert "#1 Quarterly report" in done and "Revenue up 4 %" in done
        uploaded = dict(driver.uploads())
        assert uploaded["report.pdf"] == b"%PDF-1.4 quarterly numbers"
        assert uploaded["data.csv"] == b"quarter,revenue\nQ1,10\n"

        # A CSV sent with a create lands in the new task's attachments.
        await driver.say("/kanban create Look at these numbers",
                         files={"sales.csv": b"month,sales\nJan,10\n"})
        await driver.text_matching(lambda t: t.startswith("Created #2"), "second task")
        stored = board.attachments_path(2) / "sales.csv"
        assert stored.read_bytes() == b"month,sales\nJan,10\n"

        # Free text goes to the command agent; the file it names comes back attached.
        await driver.say(driver.to_bot("what are my numbers?"))
        answer = await driver.text_matching(lambda t: t.startswith("Your numbers"), "agent")
        assert "answer.csv" in answer

        async def agent_file() -> bool:
            return any(n == "answer.csv" for n, _ in driver.uploads())

        await wait_until(agent_file, within=WITHIN, what="the agent's file")
        assert driver.typing_calls() >= 1
        tasks = await board.list_tasks()
        assert [t.title for t in tasks if "Steal" in t.title] == []


async def test_openai_agent_over_telegram_creates_a_task(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    home = tmp_path / "home"
    make_reporter(home, tmp_path / "scripts")
    async with TelegramServer() as tg, LLMServer() as llm:
        llm.tool_call("create_task", {"title": "Quarterly report", "assignee": "reporter"})
        llm.reply("Task #1 is on the board; its result will be posted here.")
        driver = TelegramDriver(tg)
        config = ("kanban: {dispatch_in_gateway: false}\n"
                  f"agent:\n  kind: openai\n  openai: {{base_url: '{llm.base_url}', "
                  "model: fake}\n")
        async with running(home, config, {"telegram": driver.adapter}) as daemon:
            await driver.say(driver.to_bot("please make the quarterly report"))
            reply = await driver.text_matching(lambda t: t.startswith("Task #1"), "agent reply")
            assert "posted here" in reply
            board = await daemon.boards.open("default")
            (task,) = await board.list_tasks()
            assert (task.title, task.assignee) == ("Quarterly report", "reporter")
            (sub,) = await board.subscriptions(1)
            assert (sub.platform, sub.chat, sub.thread) == ("telegram", "-100", "5")


class ShiftedClock:
    """The host's clock moved ahead by ``offset`` seconds: the test jumps to a schedule's time
    instead of waiting for it (the offset stays a few minutes, well inside a lease)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_a_schedule_made_in_telegram_posts_its_first_chart_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    home = tmp_path / "home"
    make_reporter(home, tmp_path / "scripts")
    config = ("kanban: {auto_decompose: false, members_may_schedule: true, "
              "timezone: Europe/Berlin}\n")
    berlin = ZoneInfo("Europe/Berlin")
    # A daily time two to three minutes ahead: the schedule's first run, reached by moving the
    # board's clock, not by waiting.
    at = datetime.fromtimestamp(time.time() + 150, berlin)
    every = f"daily {at:%H:%M}"
    async with TelegramServer() as server, running(
            home, config, {"telegram": TelegramDriver(server).adapter}) as daemon:
        chat = TelegramDriver(server)

        async def connected() -> bool:
            status = await daemon.status()
            return bool(status["adapters"]["telegram"]["state"] == "connected")

        await wait_until(connected, within=WITHIN, what="adapter connected")
        board = await daemon.boards.open("default")
        clock = ShiftedClock()
        board.clock = clock

        await chat.say(f'/kanban create Sales chart --every "{every}" --assignee reporter')
        reply = await chat.text_matching(lambda t: t.startswith("Scheduled #S1"), "scheduled")
        first = f"{at:%a} {at.day} {at:%b} {at:%H:%M}"
        assert reply == (f"Scheduled #S1 Sales chart · daily {at:%H:%M} (Europe/Berlin) · "
                         f"first run {first} · results will be posted here")
        [schedule] = await board.list_schedules()
        assert schedule.next_run_at is not None and schedule.next_run_at > time.time()
        assert await board.list_tasks() == []  # nothing before its time

        clock.offset = schedule.next_run_at - time.time() + 0.5  # the clock reaches 09:00
        board.changes.bump()  # what the loop's next tick would do, without the wait

        async def chart_posted() -> set[str] | None:
            names = {name for name, _ in chat.uploads()}
            return names if names >= REPORT_FILES else None

        await wait_until(chart_posted, within=WITHIN, what="the occurrence's chart")
        done = await chat.text_matching(lambda t: t.startswith("✔ done"), "completion")
        assert "#1 Sales chart" in done
        assert dict(chat.uploads())["chart.png"].startswith(b"\x89PNG")
        [task] = await board.list_tasks()
        assert task.schedule_id == schedule.id and task.status == "done"
        # One occurrence, one task: the next is tomorrow's.
        after = await board.get_schedule(schedule.id)
        assert after.next_run_at is not None
        assert after.next_run_at - schedule.next_run_at == pytest.approx(86400, abs=3600)
