"""Text helpers shared by every renderer: escaping untrusted text for a terminal or a chat, and
splitting chat text into words."""

from __future__ import annotations

import re

from gateway.commands.errors import UsageError
from platforms.untrusted import BIDI_CONTROLS

# C0 controls (but tab and newline, handled per caller), DEL, C1 controls, and the bidirectional
# formatting characters (the one list in platforms.untrusted) that can make a terminal or chat
# line read differently from what it contains.
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")
_CONTROL_NL = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: object, *, multiline: bool = False) -> str:
    """``text`` with control characters, escape sequences and lone surrogates shown as ``\\x1b``
    style escapes, so a title can never move the cursor, recolour or clear a terminal.
    ``multiline`` keeps newlines and tabs (bodies, comments)."""
    value = str(text)
    value = _SURROGATE.sub(_escape_char, value)
    return (_CONTROL if multiline else _CONTROL_NL).sub(_escape_char, value)


def one_line(text: str, limit: int = 300) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


# Phone keyboards type typographic quotes; each opener accepts its usual closers.
_CLOSERS = {
    '"': '"”“', "“": "”“\"", "”": "”“\"", "„": "”“\"",
    "'": "'’", "‘": "’'‘", "’": "’'",
}


def split_words(text: str) -> list[str]:
    """Split chat text into words: whitespace separates; a word that starts with a quote
    (straight or typographic) runs to the matching closing quote that ends a word. Apostrophes
    inside words ("don’t") stay literal. An unclosed quote is a :class:`UsageError`."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        closers = _CLOSERS.get(text[i])
        if closers is None:
            start = i
            while i < n and not text[i].isspace():
                i += 1
            words.append(text[start:i])
            continue
        start = i + 1
        j = start
        while j < n and not (text[j] in closers and (j + 1 == n or text[j + 1].isspace())):
            j += 1
        if j >= n:
            raise UsageError("a quote is not closed",
                             "put the closing quote after the last word")
        words.append(text[start:j])
        i = j + 1
    return words
