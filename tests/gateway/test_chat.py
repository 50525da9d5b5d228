"""The chat router in a running daemon, with the in-memory fake platform: commands, who is
served, the agents (none, command, openai), inbound files, one conversation at a time."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.chat import REFUSAL, ThreadTools, Turn, render_status
from gateway.chat.openai_agent import run_tool
from gateway.commands import (
    ChatUser,
    CreateRequest,
    Services,
    UsageError,
    parse_command,
)
from gateway.commands.json_args import json_schema
from kanban import Boards
from kanban.agents.profiles import Profiles
from kanban.board import Board
from platforms.base import Destination
from platforms.fake import FakeAdapter
from tests.fakes.llm_server import LLMServer
from tests.gateway.chat_harness import REPORT_FILES, make_reporter, sent_names, truthy
from tests.gateway.test_daemon import running
from tests.kanban.workers.harness import wait_until

ALICE = "u1"


def fake_platform() -> FakeAdapter:
    return FakeAdapter(platform="fake", allowed_users=[ALICE])


async def replies(fake: FakeAdapter, count: int, thread: str | None = None) -> list[str]:
    async def enough() -> list[str] | None:
        texts = [c.text or "" for c in fake.calls
                 if c.method == "send" and (thread is None or c.dest.thread == thread)]
        return texts if len(texts) >= count else None

    return await wait_until(enough, within=30, what=f"{count} repl(ies)")


async def test_unquoted_create_replies_subscribes_and_the_completion_arrives_with_files(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    make_reporter(home, tmp_path / "scripts")
    fake = fake_platform()
    async with running(home, "kanban: {auto_decompose: false}\n",
                       {"fake": lambda: fake}) as daemon:
        await daemon.ready.wait()
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        await fake.inject(chat="c1", thread="t1", user_id=ALICE, user_name="alice",
                          text="/kanban create Quarterly report --assignee reporter")
        (reply,) = await replies(fake, 1)
        assert reply.startswith("Created #1 Quarterly report · ")
        assert "@reporter" in reply and "post the result in this thread" in reply
        board = await daemon.boards.open("default")
        (sub,) = await board.subscriptions(1)
        assert (sub.platform, sub.chat, sub.thread) == ("fake", "c1", "t1")
        assert (await board.get_task(1)).created_by == "alice (fake)"

        async def delivered() -> bool:
            return sent_names(fake, "t1") >= REPORT_FILES

        await wait_until(delivered, within=60, what="completion with three files")
        done = [t for t in fake.texts if t.startswith("✔ done")]
        assert done == ["✔ done · #1 Quarterly report · @reporter\nRevenue up 4 %"]
        assert all(c.dest.thread == "t1" for c in fake.calls if c.method != "typing")


async def test_a_stranger_creates_nothing_and_is_refused_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fake_platform()
    caplog.set_level("DEBUG")
    async with running(tmp_path / "home", "", {"fake": lambda: fake}) as daemon:
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        secret = "/kanban create Steal the secret plans"
        await fake.inject(chat="c9", user_id="eve", text=secret)
        await fake.inject(chat="c9", user_id="eve", text="hello? " + secret)
        await fake.inject(chat="c1", user_id=ALICE, text="/kanban list")
        texts = await replies(fake, 2)

        async def settled() -> bool:
            return daemon.router.handled == 1 and daemon.router.refusals == 1
        await wait_until(settled, what="one refusal, one answer")
        assert texts.count(REFUSAL.format(user_id="eve", platform="fake")) == 1
        assert "No tasks on board default." in texts
        board = await daemon.boards.open("default")
        assert await board.list_tasks() == []
    assert "Steal the secret" not in caplog.text  # never logged, at any level
    assert "user eve" in caplog.text


async def test_typo_in_assignee_is_refused_with_the_suggestion(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Profiles(home).create("reporter")
    fake = fake_platform()
    async with running(home, "", {"fake": lambda: fake}) as daemon:
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        await fake.inject(chat="c1", user_id=ALICE,
                          text="/kanban create Quarterly report --assignee reportr")
        (reply,) = await replies(fake, 1)
        assert reply == "no profile 'reportr' — did you mean 'reporter'?"
        board = await daemon.boards.open("default")
        assert await board.list_tasks() == []


async def test_a_chat_user_cannot_plant_a_command_in_a_dir_workspace(tmp_path: Path) -> None:
    home = tmp_path / "home"
    canary = tmp_path / "chat_rce"
    Profiles(home).create("coder", command=["sh", "-c", "echo {workspace}"])
    fake = fake_platform()
    async with running(home, "", {"fake": lambda: fake}) as daemon:
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        await fake.inject(chat="c1", user_id=ALICE,
                          text=f'/kanban create fix --assignee coder --workspace '
                               f'"dir:/tmp/x;touch {canary};:"')
        (reply,) = await replies(fake, 1)
        assert reply.startswith("a dir: workspace path may only contain letters, digits and "
                                "_ . / - (got "), reply
        assert "\n" not in reply
        board = await daemon.boards.open("default")
        assert await board.list_tasks() == []
    assert not canary.exists()


async def test_commands_help_status_usage_and_slack_bang(tmp_path: Path) -> None:
    fake = fake_platform()
    slack = FakeAdapter(platform="slack", allowed_users=[ALICE])
    async with running(tmp_path / "home", "", {"fake": lambda: fake, "slack": lambda: slack}):
        await wait_until(lambda: truthy(fake.started and slack.started), what="started")
        for text in ("/help", "/status", "/kanban", "/kanban create --assignee x",
                     "/frobnicate", "/subscribe", "/subscribe 99", "!kanban list",
                     "/kanban@relay_bot list"):
            await fake.inject(chat="c1", user_id=ALICE, text=text)
        await slack.inject(chat="C1", user_id=ALICE, text="!kanban list")
        await slack.inject(chat="C1", user_id=ALICE, text="<free text>")
        got = await replies(fake, 9)
        help_, status, which, usage, unknown, sub_usage, sub_missing, bang, at_bot = got
        assert help_.startswith("Commands:") and "/kanban create" in help_
        assert status.startswith("Up ") and "Adapters: " in status and "Board default" in status
        assert "fake connected" in status and "Workers: none running" in status
        assert which.startswith("Which verb?")
        assert "\n" not in usage and usage.startswith("create needs a title") and "try:" in usage
        assert unknown == "Unknown command /frobnicate — try /help"
        assert sub_usage == "subscribe needs a task id — try: /subscribe 12"
        assert "99" in sub_missing and "\n" not in sub_missing
        assert bang.startswith("I answer commands here")  # "!" is free text outside Slack
        assert at_bot == "No tasks on board default."
        slack_got = await replies(slack, 2)
        assert slack_got[0] == "No tasks on board default."
        assert "!kanban" in slack_got[1]  # the help it gets names the Slack form


def test_render_status_is_short_and_says_more_to_admins() -> None:
    status = {
        "pid": 7, "uptime_seconds": 3725,
        "adapters": {"telegram": {"state": "connected", "detail": None},
                     "slack": {"state": "retrying", "detail": "token refused"}},
        "boards": {"default": {"by_status": {"ready": 1, "running": 2, "done": 9},
                               "outbox_pending": 3},
                   "ops": {"by_status": {"ready": 2}, "outbox_pending": 0},
                   "broken": {"error": "disk I/O error"}},
        "workers": [{"board": "default", "task_id": 14, "pid": 5120}],
        "sandbox": "landlock ABI 7"}
    common = [
        "Adapters: slack retrying (token refused), telegram connected",
        "Board broken: unreadable (disk I/O error)",
        "Board default: 1 ready, 2 running, 9 done",
        "Board ops: 2 ready",
        "Workers: #14 on default (pid 5120)",
    ]
    assert render_status(status, role="admin").splitlines() == [
        "Up 1h 02m · pid 7 · your role: admin", *common,
        "Queue: 3 tasks ready for a worker · 3 notifications waiting",
        "Worker sandbox: landlock ABI 7",
    ]
    assert render_status(status, role="member").splitlines() == [
        "Up 1h 02m · pid 7 · your role: member", *common]


# ---- the agents --------------------------------------------------------------------------------

COMMAND_AGENT = """
import os, sys
from pathlib import Path
seen = sys.stdin.read()
Path("answer.csv").write_text("a,b\\n1,2\\n")
Path("seen.txt").write_text(seen)
print("Here you go: " + str(Path("answer.csv").resolve()))
print("(" + os.environ.get("RELAYBOARD_CHAT_USER", "?") + ", token=" +
      os.environ.get("TELEGRAM_BOT_TOKEN", "none") + ")")
"""


async def test_command_agent_replies_with_its_output_and_the_file_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "sekret")
    script = tmp_path / "agent.py"
    script.write_text(COMMAND_AGENT, encoding="utf-8")
    fake = fake_platform()
    config = (f"agent:\n  kind: command\n  command:\n    argv: ['{sys.executable}', '{script}',"
              " '{user}']\n    timeout: 30\n")
    async with running(tmp_path / "home", config, {"fake": lambda: fake}) as daemon:
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        await fake.inject(chat="c1", user_id=ALICE, user_name="alice", text="first question")
        await replies(fake, 1)
        await fake.inject(chat="c1", user_id=ALICE, user_name="alice", text="chart it please")

        async def two_files() -> bool:
            return len([c for c in fake.calls if c.method == "send_document"]) >= 2
        await wait_until(two_files, within=30, what="the agent's file, twice")
        texts = [t for t in fake.texts]
        assert texts[0].startswith("Here you go:") and "/" not in texts[0].split(":", 1)[1][:3]
        assert "(u1, token=none)" in texts[0]  # the gateway's token did not travel
        assert [c.files[0].name for c in fake.calls if c.method == "send_document"] == [
            "answer.csv", "answer.csv"]
        assert any(c.method == "typing" for c in fake.calls)
        seen = next(daemon.home.glob("chat/threads/fake/*/seen.txt")).read_text()
        # The second turn carries the first exchange (history kept in the home).
        assert "alice: first question" in seen and "assistant: Here you go:" in seen
        assert seen.rstrip().endswith("alice: chart it please")
        # The history is written after the reply is sent: wait for the turn to end.
        await wait_until(lambda: truthy(daemon.router.handled == 2), what="second turn handled")
    history = list((tmp_path / "home" / "chat" / "history" / "fake").glob("*.jsonl"))
    assert len(history) == 1 and len(history[0].read_text().splitlines()) == 4


async def test_openai_agent_creates_a_task_through_a_tool_call(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Profiles(home).create("reporter")
    fake = fake_platform()
    async with LLMServer() as llm:
        llm.tool_call("create_task", {"title": "Quarterly report", "assignee": "reporter"})
        llm.reply("Done: task #1 is on the board, I'll post the result here.")
        config = ("kanban: {dispatch_in_gateway: false}\n"
                  f"agent:\n  kind: openai\n  openai: {{base_url: '{llm.base_url}', "
                  "model: fake-model}\n")
        async with running(home, config, {"fake": lambda: fake}) as daemon:
            await wait_until(lambda: truthy(fake.started), what="adapter started")
            await fake.inject(chat="c1", thread="t", user_id=ALICE, user_name="alice",
                              text="please make the quarterly report")
            (reply,) = await replies(fake, 1)
            assert reply == "Done: task #1 is on the board, I'll post the result here."
            board = await daemon.boards.open("default")
            (task,) = await board.list_tasks()
            assert (task.title, task.assignee, task.created_by) == (
                "Quarterly report", "reporter", "alice (fake)")
            (sub,) = await board.subscriptions(1)
            assert (sub.chat, sub.thread) == ("c1", "t")
        first, second = llm.completions()
        assert [t["function"]["name"] for t in first.params["tools"]] == [
            "create_task", "show_task", "list_tasks", "subscribe_thread"]
        # Derived from the verbs as a chat user has them: an option added to `create` is
        # offered here too; host paths and the thread are not the model's to give.
        parameters = {t["function"]["name"]: t["function"]["parameters"]
                      for t in first.params["tools"]}
        assert parameters["create_task"] == json_schema(CreateRequest, chat=True)
        assert "attachments" not in parameters["create_task"]["properties"]
        assert set(parameters["subscribe_thread"]["properties"]) == {"task_id", "silent"}
        tool_reply = second.params["messages"][-1]
        assert tool_reply["role"] == "tool" and "Created #1 Quarterly report" in \
            tool_reply["content"]


async def test_the_agents_tools_are_verbs_run_as_the_chat_user(tmp_path: Path) -> None:
    boards = Boards(tmp_path / "home")
    Profiles(tmp_path / "home").create("reporter")
    services = Services(boards=boards, profiles=Profiles(tmp_path / "home"))
    member = ChatUser("fake", ALICE, "alice", chat="c1", thread="t")
    tools = ThreadTools(services, member, Destination("fake", "c1", "t"))
    try:
        made = await run_tool(tools, "create_task", '{"title": "Chart", "priority": 3}')
        assert made.startswith("Created #1 Chart") and "in this thread" in made
        refused = {
            '{"title": "x", "colour": "red"}': "error: unknown field 'colour' (fields: title,",
            '{"title": "x", "assignee": "reportr"}': "no profile 'reportr' — did you mean",
            f'{{"title": "x", "priority": {2 ** 63}}}': "error: priority: 9223372036854775808 "
                                                         "is out of range",
            '{"title": "x", "workspace": "dir:/etc"}': "members create tasks in scratch",
            '{"title": "x", "attachments": ["/etc/passwd"]}': "error: unknown field 'attach",
        }
        for raw, expected in refused.items():
            reply = await run_tool(tools, "create_task", raw)
            assert expected in reply and "\n" not in reply, reply
        other = await run_tool(tools, "subscribe_thread", '{"task_id": 1, "chat": "elsewhere"}')
        assert other == "error: chat is set here and cannot be given"
        shown = await run_tool(tools, "show_task", '{"task_id": 1}')
        assert shown.startswith("#1 Chart · ready")
        listed = await run_tool(tools, "list_tasks", '{"status": "ready"}')
        assert listed == "#1 Chart · ready"
        board = await boards.open("default")
        assert [t.title for t in await board.list_tasks()] == ["Chart"]
        assert [(s.chat, s.thread) for s in await board.subscriptions(1)] == [("c1", "t")]
    finally:
        await services.aclose()


# ---- files in --------------------------------------------------------------------------------

async def test_an_inbound_csv_is_in_the_tasks_attachments_when_the_task_appears(
    tmp_path: Path,
) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text("month,sales\nJan,10\n", encoding="utf-8")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 2048)
    fake = fake_platform()
    config = "kanban: {dispatch_in_gateway: false}\ndelivery: {max_attachment_bytes: 1024}\n"
    async with running(tmp_path / "home", config, {"fake": lambda: fake}) as daemon:
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        board = await daemon.boards.open("default")
        stored = board.attachments_path(1) / "sales.csv"
        # A dispatcher is woken by the commit: look at the board the moment any commit lands,
        # through a connection of our own, as another process would.
        at_creation: list[bool] = []

        def observe(_tx: object) -> None:
            with closing(sqlite3.connect(board.db.path)) as conn:
                exists = conn.execute("SELECT 1 FROM tasks WHERE id = 1").fetchone()
            if exists is not None and not at_creation:
                at_creation.append(stored.is_file())

        board.db.on_commit.append(observe)
        await fake.inject(chat="c1", user_id=ALICE, text="/kanban create Chart the sales",
                          files=[str(csv), str(big)])
        (reply,) = await replies(fake, 1)
        assert reply.splitlines()[0].startswith("big.bin was not received: too large")
        assert "Created #1 Chart the sales" in reply and "Attached: sales.csv" in reply
        assert at_creation == [True]
        # A worker-like observer: the board opened afresh finds the file and is told about it.
        async with Board.open(board.db.path, slug="default") as worker_view:
            task = await worker_view.show_task(1)
            context = await worker_view.context(1)
        assert stored.read_text(encoding="utf-8") == "month,sales\nJan,10\n"
        assert task.task.metadata["inputs"] == [str(stored)]
        assert "sales.csv" in task.task.body
        assert task.comments == []  # no after-the-fact note with paths any more
        created = next(e for e in task.events if e.kind == "created")
        assert created.payload["inputs"] == [str(stored)]
        assert f"## Attached files\n\n- {stored}" in context
        assert not list(board.attachments_path(1).glob("big*"))
        # The download went; the durable copy is the thread's file from now on.
        assert not list((tmp_path / "home" / "chat" / "threads").rglob("sales*"))


# ---- one conversation at a time ----------------------------------------------------------------

class GatedAgent:
    kind = "gated"

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.active = 0
        self.most = 0
        self.seen: list[str] = []

    async def reply(self, turn: Turn) -> str:
        self.active += 1
        self.most = max(self.most, self.active)
        self.seen.append(turn.text)
        try:
            if turn.text == "first":
                await self.release.wait()
            return f"answer to {turn.text}"
        finally:
            self.active -= 1


async def test_a_thread_is_one_conversation_at_a_time_and_others_do_not_wait(
    tmp_path: Path,
) -> None:
    fake = fake_platform()
    async with running(tmp_path / "home", "", {"fake": lambda: fake}) as daemon:
        agent = GatedAgent()
        daemon.router.agent = agent
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        await fake.inject(chat="c1", thread="a", user_id=ALICE, text="first")
        await fake.inject(chat="c1", thread="a", user_id=ALICE, text="second")
        await fake.inject(chat="c1", thread="b", user_id=ALICE, text="elsewhere")
        await replies(fake, 1, thread="b")  # the other thread is answered meanwhile
        # Thread a waits on its first turn; thread b's turn ran meanwhile (either may start first).
        assert sorted(agent.seen) == ["elsewhere", "first"]

        async def typing_in_a() -> Any:
            return [c for c in fake.calls if c.method == "typing" and c.dest.thread == "a"]
        await wait_until(typing_in_a, what="typing indicator while the agent works")
        agent.release.set()
        got = await replies(fake, 2, thread="a")
        assert got == ["answer to first", "answer to second"]
        assert sorted(agent.seen[:2]) == ["elsewhere", "first"] and agent.seen[2] == "second"


def test_a_chat_user_cannot_spell_attach() -> None:
    # Host paths are the CLI's: chat passes only the files that came with the message.
    with pytest.raises(UsageError, match="--attach"):
        parse_command("create Steal it --attach /home/me/.ssh/id_rsa")
