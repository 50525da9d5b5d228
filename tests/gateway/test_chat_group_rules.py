"""The router's group rule, decided in one place from the adapters' facts (``is_group``,
``addressed``) and ``platforms.<name>.channels``: each message dispatched in a task group that
ends only when everything it started has finished, so "nothing was sent" is a fact, not a wait."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from gateway.chat.router import ChatRouter, RouterSettings
from gateway.commands import Services
from gateway.config import ConfigError, load_config
from kanban import Boards
from platforms.base import InboundMessage
from platforms.fake import FakeAdapter

SERVED_GROUP = "g-served"


def message(text: str, *, chat: str = SERVED_GROUP, group: bool = True,
            addressed: bool = False, allowed: bool = True) -> InboundMessage:
    return InboundMessage(platform="fake", chat=chat, thread=None,
                          user_id="u1" if allowed else "u9", user_name="alice", text=text,
                          message_id="m1", authorized=allowed, is_group=group,
                          addressed=addressed)


async def sent_for(tmp_path: Path, msg: InboundMessage,
                   channels: frozenset[str] = frozenset()) -> list[str]:
    """What the router sends for ``msg``, everything it started being finished."""
    fake = FakeAdapter(platform="fake", allowed_users=["u1"])
    settings = RouterSettings(channels={"fake": channels} if channels else {})
    router = ChatRouter(services=Services(boards=Boards(tmp_path / "boards")),
                        adapters={"fake": fake}, home=tmp_path / "home", settings=settings)
    async with anyio.create_task_group() as group:
        router.dispatch(msg, group)
    return [c.text or "" for c in fake.calls if c.method == "send"]


@pytest.mark.parametrize("msg", [
    message("lunch, anyone?"),
    message("lunch, anyone?", allowed=False),  # no refusal either
    message("", allowed=False),  # a file or a voice note not meant for the bot
], ids=["member", "stranger", "no-text"])
async def test_group_text_not_meant_for_the_bot_gets_nothing(tmp_path: Path,
                                                             msg: InboundMessage) -> None:
    assert await sent_for(tmp_path, msg) == []


@pytest.mark.parametrize("msg", [
    message("what is left?", addressed=True),
    message("/help"),
    message("/help@relay_bot"),
    message("what is left?", group=False),
], ids=["addressed", "command", "command-to-this-bot", "one-to-one"])
async def test_mentions_replies_commands_and_private_chats_are_answered(
        tmp_path: Path, msg: InboundMessage) -> None:
    (answer,) = await sent_for(tmp_path, msg)
    assert "/kanban" in answer  # the help text (agent.kind none answers free text with it)


async def test_a_stranger_addressing_the_bot_in_a_group_is_refused(tmp_path: Path) -> None:
    (answer,) = await sent_for(tmp_path, message("/kanban list", allowed=False))
    assert "allow-list" in answer and "u9" in answer


async def test_channels_limits_the_groups_served_not_private_chats(tmp_path: Path) -> None:
    served = frozenset({SERVED_GROUP})
    assert await sent_for(tmp_path, message("/help", chat="g-other"), served) == []
    assert await sent_for(tmp_path, message("hi", chat="g-other", addressed=True), served) == []
    assert await sent_for(tmp_path, message("/help", chat="g-other", allowed=False),
                          served) == []
    assert len(await sent_for(tmp_path, message("/help"), served)) == 1
    assert len(await sent_for(tmp_path, message("hi", chat="dm-7", group=False), served)) == 1


def test_channels_is_read_per_platform_with_ids_as_strings(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "platforms:\n"
        "  telegram: {channels: [-1001234567890, '-200']}\n"
        "  slack: {channels: [C024BE91L]}\n", encoding="utf-8")
    config = load_config(None, {}, home=tmp_path)
    assert config.platforms["telegram"].channels == ("-1001234567890", "-200")
    assert config.platforms["slack"].channels == ("C024BE91L",)
    assert config.platforms["slack"].options.get("channels") is None  # a key of its own


def test_channels_must_be_a_list(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("platforms:\n  discord: {channels: 3000}\n",
                                          encoding="utf-8")
    with pytest.raises(ConfigError, match=r"platforms\.discord\.channels"):
        load_config(None, {}, home=tmp_path)
