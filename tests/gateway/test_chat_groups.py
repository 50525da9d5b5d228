"""Group manners end to end, through the real SDKs against the loopback fakes, in a running
daemon: in a group, free text reaches the agent only when it mentions the bot or replies to one
of the bot's messages (with the mention taken out), commands always work, nobody gets an answer
or a refusal for text not meant for the bot; a group left out of ``platforms.<name>.channels``
is ignored; a one-to-one chat is answered as before."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

import platforms.discord  # noqa: F401  (discord.py imported with its audioop warning silenced)
from platforms.base import PlatformAdapter
from platforms.registry import create_adapter
from tests.fakes.common import FakeServer
from tests.fakes.discord_server import CHANNEL_ID, DM_CHANNEL_ID, OTHER_CHANNEL_ID, DiscordServer
from tests.fakes.discord_server import TOKEN as DISCORD_TOKEN
from tests.fakes.discord_server import user as discord_user
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, BOT_USER, SlackServer
from tests.fakes.telegram_server import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_server import TelegramServer, visible_text
from tests.gateway.test_daemon import running
from tests.kanban.workers.harness import wait_until
from tests.platforms.logs import LogWaiter

WITHIN = 60.0
Where = Literal["group", "other", "dm"]

# The agent: writes down every message it is given, and answers with it.
AGENT = """
import os, sys
message = os.environ["RELAYBOARD_CHAT_MESSAGE"]
with open(sys.argv[1], "a", encoding="utf-8") as log:
    log.write(message.replace("\\n", " ") + "\\n")
print("heard: " + message)
"""


class GroupDriver:
    """One platform's fake, seen as three chats: a served group, a group not in ``channels``
    (``other``) and a one-to-one chat with the bot (``dm``)."""

    name: str
    server: FakeServer
    group_id: str  # what platforms.<name>.channels lists

    def adapter(self) -> PlatformAdapter:
        raise NotImplementedError

    async def say(self, where: Where, text: str, *, stranger: bool = False,
                  mention: bool = False, reply: bool = False) -> None:
        """Post ``text``; ``mention`` puts the bot's mention first, ``reply`` answers the bot's
        latest message in that chat (Slack: in the thread under it)."""
        raise NotImplementedError

    def texts(self, where: Where) -> list[str]:
        raise NotImplementedError

    async def text_matching(self, where: Where, test: Callable[[str], bool], what: str) -> str:
        async def probe() -> str | None:
            return next((t for t in self.texts(where) if test(t)), None)

        return await wait_until(probe, within=WITHIN, what=f"{self.name}: {what}")


class TelegramGroups(GroupDriver):
    name = "telegram"
    group_id = "-100"
    chats: ClassVar[dict[str, int]] = {"group": -100, "other": -200, "dm": 42}

    def __init__(self, server: TelegramServer) -> None:
        self.server = self.tg = server

    def adapter(self) -> PlatformAdapter:
        return create_adapter("telegram", token=TELEGRAM_TOKEN, allowed_users=["42"],
                              base_url=self.tg.api_base)

    async def say(self, where: Where, text: str, *, stranger: bool = False,
                  mention: bool = False, reply: bool = False) -> None:
        chat = self.chats[where]
        self.tg.push_message(
            chat_id=chat, text=f"@relay_bot {text}" if mention else text,
            user_id=7 if stranger else 42, username="eve" if stranger else "alice",
            chat_type="private" if where == "dm" else "supergroup",
            reply_to=self.tg.bot_messages(chat)[-1] if reply else None)

    def texts(self, where: Where) -> list[str]:
        return [visible_text(str(r.params["text"])) for r in self.tg.calls("sendMessage")
                if r.params.get("chat_id") == str(self.chats[where])]


class SlackGroups(GroupDriver):
    name = "slack"
    group_id = "C1"
    chats: ClassVar[dict[str, str]] = {"group": "C1", "other": "C2", "dm": "D1"}

    def __init__(self, server: SlackServer) -> None:
        self.server = self.sl = server

    def adapter(self) -> PlatformAdapter:
        return create_adapter("slack", bot_token=BOT_TOKEN, app_token=APP_TOKEN,
                              allowed_users=["U1"], base_url=self.sl.api_base)

    async def say(self, where: Where, text: str, *, stranger: bool = False,
                  mention: bool = False, reply: bool = False) -> None:
        channel = self.chats[where]
        text = "!" + text[1:] if text.startswith("/") else text
        thread = [ts for c, ts in self.sl.posts if c == channel][-1] if reply else None
        await self.sl.push_event(self.sl.message(
            channel, "U7" if stranger else "U1", f"<@{BOT_USER}> {text}" if mention else text,
            thread_ts=thread))

    def texts(self, where: Where) -> list[str]:
        return [str(r.params["text"]) for r in self.sl.calls("chat.postMessage")
                if r.params.get("channel") == self.chats[where]]


class DiscordGroups(GroupDriver):
    name = "discord"
    group_id = CHANNEL_ID
    chats: ClassVar[dict[str, str]] = {
        "group": CHANNEL_ID, "other": OTHER_CHANNEL_ID, "dm": DM_CHANNEL_ID}

    def __init__(self, server: DiscordServer) -> None:
        self.server = self.dc = server

    def adapter(self) -> PlatformAdapter:
        adapter = create_adapter("discord", token=DISCORD_TOKEN, allowed_users=["42"],
                                 base_url=self.dc.api_base, gateway_url=self.dc.gateway_url)
        adapter.guild_ready_timeout = 0.1  # type: ignore[attr-defined]
        return adapter

    async def say(self, where: Where, text: str, *, stranger: bool = False,
                  mention: bool = False, reply: bool = False) -> None:
        channel = self.chats[where]
        await self.dc.push_message(
            channel_id=channel, content=f"<@1000> {text}" if mention else text,
            author=discord_user("5", "eve") if stranger else discord_user("42", "bob"),
            dm=where == "dm", reply_to=self.dc.bot_messages(channel)[-1] if reply else None)

    def texts(self, where: Where) -> list[str]:
        return [str(r.params.get("content") or "")
                for r in self.dc.calls(f"POST /channels/{self.chats[where]}/messages")]


SERVERS: dict[str, Callable[[], FakeServer]] = {
    "telegram": TelegramServer, "slack": SlackServer, "discord": DiscordServer}
DRIVERS: dict[str, Callable[[Any], GroupDriver]] = {
    "telegram": TelegramGroups, "slack": SlackGroups, "discord": DiscordGroups}


@pytest.fixture
async def driver(request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GroupDriver]:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    async with SERVERS[request.param]() as server:
        yield DRIVERS[request.param](server)


@pytest.fixture
def router_log() -> Iterator[LogWaiter]:
    waiter = LogWaiter()
    logger = logging.getLogger("gateway.chat.router")
    logger.addHandler(waiter)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield waiter
    finally:
        logger.removeHandler(waiter)
        logger.setLevel(previous)


@pytest.mark.parametrize("driver", ["telegram", "slack", "discord"], indirect=True)
async def test_in_a_group_the_bot_answers_mentions_replies_and_commands_only(
        driver: GroupDriver, router_log: LogWaiter, tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = tmp_path / "agent.py"
    script.write_text(AGENT, encoding="utf-8")
    heard = tmp_path / "heard.txt"
    config = ("kanban: {dispatch_in_gateway: false}\n"
              f"agent:\n  kind: command\n  command: {{argv: ['{sys.executable}', '{script}', "
              f"'{heard}']}}\n"
              f"platforms:\n  {driver.name}: {{channels: ['{driver.group_id}']}}\n")

    def agent_heard() -> list[str]:
        return heard.read_text(encoding="utf-8").splitlines() if heard.exists() else []

    async with AsyncExitStack() as stack:
        daemon = await stack.enter_async_context(
            running(home, config, {driver.name: driver.adapter}))

        async def connected() -> bool:
            status = await daemon.status()
            return bool(status["adapters"][driver.name]["state"] == "connected")

        await wait_until(connected, within=WITHIN, what="adapter connected")
        board = await daemon.boards.open("default")

        # Talk not meant for the bot: nobody is answered or refused, the agent hears nothing.
        await driver.say("group", "lunch at noon, everyone?")
        await driver.say("group", "sure, see you there", stranger=True)
        # Then a mention in the same chat: answered, without the mention.
        await driver.say("group", "what is left on the board?", mention=True)
        answer = await driver.text_matching("group", lambda t: t.startswith("heard:"), "mention")
        assert answer == "heard: what is left on the board?"
        assert agent_heard() == ["what is left on the board?"]

        # A reply to the bot's message needs no mention.
        await driver.say("group", "and after that?", reply=True)
        await driver.text_matching("group", lambda t: t == "heard: and after that?", "reply")

        # Commands always work, without a mention.
        await driver.say("group", "/kanban create Group chores")
        await driver.text_matching("group", lambda t: t.startswith("Created #1 Group chores"),
                                   "command")
        assert agent_heard() == ["what is left on the board?", "and after that?"]
        assert [t for t in driver.texts("group") if "allow-list" in t] == []
        # A stranger's command is refused, once: their chatter above spent none of the budget.
        await driver.say("group", "/kanban create Steal the plans", stranger=True)
        await driver.text_matching("group", lambda t: "allow-list" in t, "refusal")

        # A group that platforms.<name>.channels does not list: ignored, commands too.
        await driver.say("other", "anyone there?", mention=True)
        await driver.say("other", "/kanban create Elsewhere")
        await router_log.wait_for("is not in platforms", count=2, limit=WITHIN)

        # A one-to-one chat is answered as before, without a mention.
        await driver.say("dm", "just between us")
        await driver.text_matching("dm", lambda t: t == "heard: just between us", "DM")

        assert driver.texts("other") == []
        assert [t.title for t in await board.list_tasks()] == ["Group chores"]
        assert agent_heard() == ["what is left on the board?", "and after that?",
                                 "just between us"]
