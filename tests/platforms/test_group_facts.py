"""What each adapter says about a message for the router's group rule — ``is_group``,
``addressed``, and the text without the bot's mention — from its platform's own data, through
the real SDKs against the fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from platforms.base import Destination, InboundMessage
from platforms.discord import DiscordAdapter
from platforms.mentions import utf16_index, without_spans
from platforms.slack import SlackAdapter
from platforms.telegram import TelegramAdapter
from tests.fakes.discord_server import BOT_ROLE_ID, CHANNEL_ID, DiscordServer, user
from tests.fakes.slack_server import BOT_USER, SlackServer
from tests.fakes.telegram_server import BOT_ID, TelegramServer
from tests.platforms import test_discord, test_slack, test_telegram

Inbox = asyncio.Queue[InboundMessage]


async def next_message(inbox: Inbox) -> InboundMessage:
    return await asyncio.wait_for(inbox.get(), 5)


def facts(msg: InboundMessage) -> tuple[bool, bool, str]:
    return msg.is_group, msg.addressed, msg.text


def test_a_mention_is_cut_with_its_comma_and_space() -> None:
    assert without_spans("@bot, what is left?", [(0, 4)]) == "what is left?"
    assert without_spans("hey @bot can you", [(4, 8)]) == "hey can you"
    assert without_spans("thanks @bot", [(7, 11)]) == "thanks"
    assert without_spans("@bot /kanban list\n--x", [(0, 4)]) == "/kanban list\n--x"
    assert utf16_index("🎉 @bot", 3) == 2  # the emoji is two UTF-16 units


# --- Telegram ----------------------------------------------------------------------------------

@pytest.fixture
async def telegram(telegram_server: TelegramServer) -> AsyncIterator[tuple[TelegramAdapter,
                                                                           Inbox]]:
    adapter = test_telegram.make_adapter(telegram_server)
    inbox: Inbox = asyncio.Queue()
    await adapter.start(inbox)
    try:
        yield adapter, inbox
    finally:
        await adapter.close()


async def test_telegram_mentions_replies_and_topics(
        telegram: tuple[TelegramAdapter, Inbox], telegram_server: TelegramServer) -> None:
    adapter, inbox = telegram
    tg = telegram_server

    def group(text: str, **kw: object) -> None:
        tg.push_message(chat_id=-100, text=text, chat_type="supergroup", **kw)  # type: ignore[arg-type]

    group("@relay_bot, what is left?")
    assert facts(await next_message(inbox)) == (True, True, "what is left?")
    group("@other_bot what is left?")  # another bot's mention
    assert facts(await next_message(inbox)) == (True, False, "@other_bot what is left?")
    group("🎉 @Relay_Bot done?")  # offsets in UTF-16 units; usernames match in any case
    assert facts(await next_message(inbox)) == (True, True, "🎉 done?")
    group("Relay please sum it up", text_mention=("Relay", BOT_ID))
    assert facts(await next_message(inbox)) == (True, True, "please sum it up")
    group("/help@other_bot")  # a command for another bot in the group: not for this one
    group("/kanban@relay_bot list")  # a command: the router's parser takes this form
    assert facts(await next_message(inbox)) == (True, False, "/kanban@relay_bot list")
    tg.push_message(chat_id=-100, chat_type="group", text="@relay_bot look",
                    document=("a.csv", b"x,y\n"))  # a caption's mention
    assert facts(await next_message(inbox)) == (True, True, "look")

    # In a forum topic the bot opened, a message replying to nothing is not a reply to the bot.
    group("chatting in the topic", thread_id=5, topic_by=BOT_ID)
    assert facts(await next_message(inbox)) == (True, False, "chatting in the topic")
    assert (await adapter.send(Destination("telegram", "-100", thread="5"), "Done.")).ok
    group("thanks!", thread_id=5, topic_by=BOT_ID, reply_to=tg.bot_messages(-100)[-1])
    assert facts(await next_message(inbox)) == (True, True, "thanks!")

    tg.push_message(chat_id=42, text="hello")  # a private chat
    assert facts(await next_message(inbox)) == (False, False, "hello")


# --- Slack -------------------------------------------------------------------------------------

@pytest.fixture
async def slack(slack_server: SlackServer) -> AsyncIterator[tuple[SlackAdapter, Inbox]]:
    adapter = test_slack.make_adapter(slack_server)
    inbox: Inbox = asyncio.Queue()
    await adapter.start(inbox)
    try:
        yield adapter, inbox
    finally:
        await adapter.close()


async def test_slack_mentions_threads_and_dms(slack: tuple[SlackAdapter, Inbox],
                                              slack_server: SlackServer) -> None:
    adapter, inbox = slack
    sl = slack_server
    await sl.push_event(sl.message("C1", "U1", f"<@{BOT_USER}|relay>: what is left?"))
    assert facts(await next_message(inbox)) == (True, True, "what is left?")
    await sl.push_event(sl.message("C1", "U1", f"ask <@{BOT_USER}> and <@U2>"))
    assert facts(await next_message(inbox)) == (True, True, "ask and <@U2>")
    await sl.push_event(sl.message("G1", "U1", "private channel chatter"))
    assert facts(await next_message(inbox)) == (True, False, "private channel chatter")
    await sl.push_event(sl.message("D1", "U1", "hello"))
    assert facts(await next_message(inbox)) == (False, False, "hello")
    # app_mention events carry no channel_type; the channel id says it is not a DM.
    await sl.push_event({"type": "app_mention", "channel": "C1", "user": "U1",
                         "text": f"<@{BOT_USER}> hi", "ts": "1700000003.000001"})
    assert facts(await next_message(inbox)) == (True, True, "hi")

    # A thread under the bot's own message is for the bot; a thread someone else started is not.
    assert (await adapter.send(Destination("slack", "C1"), "Report ready.")).ok
    (_, bot_ts), = sl.posts
    await sl.push_event(sl.message("C1", "U1", "thanks, and Q2?", thread_ts=bot_ts))
    assert facts(await next_message(inbox)) == (True, True, "thanks, and Q2?")
    human = sl.message("C1", "U2", "a thread of ours")
    await sl.push_event(human)
    await next_message(inbox)
    await sl.push_event(sl.message("C1", "U1", "agreed", thread_ts=human["ts"]))
    assert facts(await next_message(inbox)) == (True, False, "agreed")


# --- Discord -----------------------------------------------------------------------------------

@pytest.fixture
async def discord_started(discord_server: DiscordServer) -> AsyncIterator[tuple[DiscordAdapter,
                                                                                Inbox]]:
    adapter = test_discord.make_adapter(discord_server)
    inbox: Inbox = asyncio.Queue()
    await adapter.start(inbox)
    try:
        yield adapter, inbox
    finally:
        await adapter.close()


async def test_discord_mentions_replies_and_dms(discord_started: tuple[DiscordAdapter, Inbox],
                                                discord_server: DiscordServer) -> None:
    adapter, inbox = discord_started
    dc = discord_server
    bob = user("42", "bob")
    await dc.push_message(content="<@1000> what is left?", author=bob)
    assert facts(await next_message(inbox)) == (True, True, "what is left?")
    await dc.push_message(content="hey <@!1000>, sum it up", author=bob)
    assert facts(await next_message(inbox)) == (True, True, "hey sum it up")
    await dc.push_message(content=f"<@&{BOT_ROLE_ID}> status please", author=bob)
    assert facts(await next_message(inbox)) == (True, True, "status please")  # the bot's role
    await dc.push_message(content="ask <@77> instead", author=bob)
    assert facts(await next_message(inbox)) == (True, False, "ask <@77> instead")
    await dc.push_message(content="hello", author=bob, dm=True)
    assert facts(await next_message(inbox)) == (False, False, "hello")

    assert (await adapter.send(Destination("discord", CHANNEL_ID), "Report ready.")).ok
    first = await dc.push_message(content="not for you", author=bob)
    assert facts(await next_message(inbox)) == (True, False, "not for you")
    bot_message = dc.bot_messages(CHANNEL_ID)[-1]
    await dc.push_message(content="and Q2?", author=bob, reply_to=bot_message)
    assert facts(await next_message(inbox)) == (True, True, "and Q2?")
    await dc.push_message(content="and Q3?", author=bob, reply_to=bot_message, ping=False)
    assert facts(await next_message(inbox)) == (True, True, "and Q3?")  # the reference alone
    await dc.push_message(content="me too", author=user("43", "cy"), reply_to=first)
    assert facts(await next_message(inbox)) == (True, False, "me too")
