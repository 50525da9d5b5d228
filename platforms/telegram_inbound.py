"""Telegram updates → ``InboundMessage``: the files a message carries and its group facts.

A message in a group, a supergroup or a forum topic is ``is_group``; it is ``addressed`` when
it mentions the bot — a ``mention`` entity spelling ``@<bot username>`` or a ``text_mention``
of the bot's user (a mention of a user without a username) — or replies to one of the bot's
messages. In a forum topic every message carries a ``reply_to_message``: the topic's first
message, which does not count as a reply. The mention is taken out of the text (see
``platforms.mentions``); a command addressed as ``/kanban@relay_bot`` keeps its form, which the
gateway's command parser accepts.

With privacy mode on (BotFather's ``/setprivacy``, the default), Telegram delivers to a bot in a
group only commands, replies to the bot and messages that mention it — the same rule the gateway
applies, so privacy mode can stay on.
"""

from __future__ import annotations

import telegram
from telegram.constants import ChatType, MessageEntityType

from platforms.base import InboundFile
from platforms.mentions import utf16_index, without_spans

GROUP_CHATS = frozenset({ChatType.GROUP, ChatType.SUPERGROUP, ChatType.CHANNEL})


def audio_suffix(mime_type: str | None) -> str:
    """A file suffix for an audio message without a file name (``audio/mpeg`` → ``.mp3``)."""
    sub = (mime_type or "").partition("/")[2].lower()
    return {"mpeg": ".mp3", "mp4": ".m4a", "x-m4a": ".m4a", "ogg": ".ogg", "wav": ".wav",
            "x-wav": ".wav", "webm": ".webm", "flac": ".flac"}.get(sub, ".mp3")


def inbound_files(message: telegram.Message) -> tuple[InboundFile, ...]:
    """The document, the largest photo size, the voice note and the audio a message carries."""
    files: list[InboundFile] = []
    if message.document is not None:
        doc = message.document
        files.append(InboundFile(doc.file_id, doc.file_name or f"{doc.file_unique_id}.bin",
                                 doc.file_size))
    if message.photo:
        photo = message.photo[-1]  # the largest size
        files.append(InboundFile(photo.file_id, f"photo-{photo.file_unique_id}.jpg",
                                 photo.file_size))
    if message.voice is not None:  # a voice note: OGG/Opus
        voice = message.voice
        files.append(InboundFile(voice.file_id, f"voice-{voice.file_unique_id}.ogg",
                                 voice.file_size, audio=True))
    if message.audio is not None:  # an audio file sent as music
        audio = message.audio
        files.append(InboundFile(audio.file_id, audio.file_name or
                                 f"audio-{audio.file_unique_id}{audio_suffix(audio.mime_type)}",
                                 audio.file_size, audio=True))
    return tuple(files)


def group_facts(message: telegram.Message, bot_id: int,
                bot_username: str | None) -> tuple[bool, bool, str]:
    """(``is_group``, ``addressed``, the text without the bot's mention) of a message."""
    text = message.text or message.caption or ""
    entities = message.entities or message.caption_entities or ()
    handle = f"@{bot_username}".lower() if bot_username else None
    spans: list[tuple[int, int]] = []
    for entity in entities:
        start = utf16_index(text, entity.offset)
        end = utf16_index(text, entity.offset + entity.length)
        if entity.type == MessageEntityType.MENTION and handle is not None and \
                text[start:end].lower() == handle:
            spans.append((start, end))
        elif entity.type == MessageEntityType.TEXT_MENTION and entity.user is not None and \
                entity.user.id == bot_id:
            spans.append((start, end))
    return (message.chat.type in GROUP_CHATS, bool(spans) or replies_to_bot(message, bot_id),
            without_spans(text, spans) if spans else text)


def for_another_bot(message: telegram.Message, bot_username: str | None) -> bool:
    """Whether the message is a command addressed to another bot (``/help@other_bot``): in a
    group with several bots each one gets it (with privacy mode off), and only that bot should
    answer."""
    text = message.text or message.caption or ""
    for entity in message.entities or message.caption_entities or ():
        if entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            command = text[:utf16_index(text, entity.length)]
            _, at, name = command.partition("@")
            return bool(at) and bot_username is not None and name.lower() != bot_username.lower()
    return False


def replies_to_bot(message: telegram.Message, bot_id: int) -> bool:
    """Whether the message replies to one of the bot's own messages."""
    parent = message.reply_to_message
    if parent is None or parent.from_user is None or parent.from_user.id != bot_id:
        return False
    # In a forum topic, a message that replies to nothing points at the topic's first message.
    return not (message.is_topic_message and parent.message_id == message.message_thread_id)
