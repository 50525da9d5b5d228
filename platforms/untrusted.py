"""Untrusted names and titles on their way to a person: one line, nothing invisible.

A task title, an assignee or a file name is written by whoever created the task or the file. Sent
verbatim it can forge structure in a chat message: a newline followed by ``✔ done · #1`` starts a
line that looks like the gateway's own, and a right-to-left override (U+202E) makes
``report‮fdp.exe`` read as ``reportexe.pdf``. Every name and title that reaches a platform or the
page passes through :func:`clean_line` (or :func:`clean_file_name` for an upload's name); text
that may legitimately span lines (a result, a reply) through :func:`clean_text`.

Both the gateway and the adapters use this module, so it lives in ``platforms`` (which imports
neither ``gateway`` nor ``kanban``).
"""

from __future__ import annotations

import re

# Line breaks of every kind a chat client or terminal may honour: LF, CR, VT, FF, NEL, and the
# Unicode line and paragraph separators.
LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"
# Bidirectional formatting characters: marks (LRM, RLM, ALM), embeddings and overrides
# (LRE…RLO) and isolates (LRI…PDI). Each can make text read differently from what it contains.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# C0 (without tab and the line breaks above), DEL, C1 (without NEL), and the bidi controls.
_INVISIBLE = re.compile(f"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f{BIDI_CONTROLS}]")
_BREAKS = re.compile(f"[ \t]*[{LINE_BREAKS}][{LINE_BREAKS} \t]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
LINE_MARK = " ⏎ "  # what a line break inside a one-line field becomes, so the break stays visible


def clean_line(text: object, *, newline: str = LINE_MARK) -> str:
    """``text`` on one line: line breaks become ``newline``, tabs a space, and control and
    bidirectional formatting characters are removed."""
    value = _SURROGATE.sub("", str(text))
    value = _INVISIBLE.sub("", value).replace("\t", " ")
    return _BREAKS.sub(newline, value.strip(f" \t{LINE_BREAKS}"))


def clean_text(text: object) -> str:
    """``text`` keeping its lines (``\\n``) and tabs; other line breaks become ``\\n`` and control
    and bidirectional formatting characters are removed."""
    value = _SURROGATE.sub("", str(text))
    value = _INVISIBLE.sub("", value)
    return re.sub(f"\r\n|[{LINE_BREAKS.replace(chr(10), '')}]", "\n", value)


def clean_file_name(name: str, *, fallback: str = "file") -> str:
    """A file name as a person sees it in a chat: one line (breaks become spaces), no controls,
    no bidi overrides, no directory part. Never empty."""
    base = clean_line(name, newline=" ").replace("\\", "/").rsplit("/", 1)[-1].strip(" ")
    return fallback if base in ("", ".", "..") else base
