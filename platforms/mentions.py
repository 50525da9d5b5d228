"""Taking the bot's mention out of a message's text, the same way on every platform.

A message that addresses the bot by mentioning it (``@relay_bot what is left?``, Slack's
``<@U0BOT> …``, Discord's ``<@123…> …``) reaches the agent without the mention, and so does a
command written after one (``@relay_bot /kanban list``). Each adapter finds the spans its platform
marks as the bot's mention; :func:`without_spans` cuts them out with the punctuation and space
that belong to them (``@relay_bot, hello`` → ``hello``), leaving the rest of the text as typed.
"""

from __future__ import annotations

from collections.abc import Iterable

_AFTER = ",:;"


def utf16_index(text: str, units: int) -> int:
    """The index in ``text`` of the character ``units`` UTF-16 code units in (Telegram counts
    entity offsets in UTF-16; a character outside the BMP is two units)."""
    count = 0
    for index, char in enumerate(text):
        if count >= units:
            return index
        count += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def without_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` without the ``[start, end)`` spans, each with the ``,``/``:`` right after it and
    the spaces that would otherwise be doubled; the result is stripped at both ends."""
    out: list[str] = []
    last = 0
    for start, end in sorted(spans):
        if start < last:
            continue  # overlapping spans: the first one already took this part
        out.append(text[last:start])
        if end < len(text) and text[end] in _AFTER:
            end += 1
        at_word_start = not "".join(out) or "".join(out)[-1].isspace()
        while at_word_start and end < len(text) and text[end] in " \t":
            end += 1
        last = end
    out.append(text[last:])
    return "".join(out).strip()
