"""Splitting long text into chunks that fit a platform's message limit.

``split_message`` is what adapters use. Beyond cutting at a newline or a space, it keeps every
chunk readable on its own:

- a fenced code block cut in two is closed (```` ``` ````) at the end of one chunk and reopened,
  with the same info string (```` ```python ````), at the start of the next, so no chunk turns
  the rest of the conversation into code;
- cuts never fall inside a fence line or inside a caller's protected span (a link, an inline code
  span, an HTML entity), unless that span alone is longer than a chunk;
- with ``number=True`` the chunks are numbered ``(1/3) ``, ``(2/3) ``, … (only when there is more
  than one), for destinations where other messages may land between the parts.

Lengths are measured with the caller's ``length`` (``len``, or ``utf16_len`` for Telegram), which
must be additive over concatenation.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

FENCE = "```"
CLOSE = "\n```"


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (how Telegram counts: characters outside the BMP count 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int, *, length: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into chunks with ``length(chunk) <= limit`` (no fence handling, no numbers).

    Prefers a newline, then a space, in the second half of the window; otherwise cuts hard (never
    inside a code point). Separators at a cut are dropped. An empty text yields no chunks.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    return _Splitter(text, length, [], fences=False).split(limit)


def split_message(
    text: str,
    limit: int,
    *,
    length: Callable[[str], int] = len,
    number: bool = False,
    protect: re.Pattern[str] | None = None,
) -> list[str]:
    """Split ``text`` into chunks of at most ``limit``, keeping code fences balanced.

    ``protect`` matches spans a cut should not fall inside (links, entities). With ``number``,
    each chunk of a multi-part message starts with ``(i/n) `` (a newline instead of the space when
    the chunk starts with a fence, which must begin a line).
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    if not text:
        return []
    if length(text) <= limit:
        return [text]
    spans = [(m.start(), m.end()) for m in protect.finditer(text)] if protect is not None else []
    splitter = _Splitter(text, length, spans, fences=True)
    if not number:
        return splitter.split(limit)
    digits = 1
    while True:
        widest = f"({'9' * digits}/{'9' * digits}) "
        parts = splitter.split(limit - length(widest))
        if len(parts) < 10**digits:
            break
        digits += 1
    total = len(parts)
    if total == 1:
        return parts
    return [
        f"({i}/{total})" + ("\n" if part.startswith(FENCE) else " ") + part
        for i, part in enumerate(parts, 1)
    ]


@dataclass(frozen=True)
class _FenceLine:
    start: int  # offset of the line's first character
    end: int  # offset just past the line's last character (its newline excluded)
    info: str | None  # after this line: the open block's info string, or None (closed)
    opens: bool


def _fence_lines(text: str) -> list[_FenceLine]:
    """Every line of ``text`` that opens or closes a fenced block, in order."""
    found: list[_FenceLine] = []
    open_info: str | None = None
    pos = 0
    for line in text.split("\n"):
        end = pos + len(line)
        stripped = line.strip()
        if stripped.startswith(FENCE):
            rest = stripped.lstrip("`")
            if open_info is None:
                # "```code```" on one line is a complete block: no change of state
                if FENCE not in rest:
                    open_info = rest.strip()
                    found.append(_FenceLine(pos, end, open_info, opens=True))
            elif not rest:
                open_info = None
                found.append(_FenceLine(pos, end, None, opens=False))
        pos = end + 1
    return found


class _Splitter:
    def __init__(
        self,
        text: str,
        length: Callable[[str], int],
        spans: list[tuple[int, int]],
        *,
        fences: bool,
    ) -> None:
        self.text = text
        self.length = length
        self.fences = _fence_lines(text) if fences else []
        self._fence_ends = [f.end for f in self.fences]
        self._fence_at = {f.start: f for f in self.fences}
        self.spans = sorted([*spans, *((f.start, f.end) for f in self.fences)])
        self._span_starts = [start for start, _ in self.spans]
        self._reach: list[int] = []  # furthest end among spans[:i + 1]
        for _, end in self.spans:
            self._reach.append(max(end, self._reach[-1] if self._reach else end))

    def state_at(self, pos: int) -> str | None:
        """The info string of the fenced block open at ``pos`` (None outside any block)."""
        i = bisect.bisect_right(self._fence_ends, pos)
        return self.fences[i - 1].info if i else None

    def _inside_span(self, pos: int) -> tuple[int, int] | None:
        """The first protected span that ``pos`` falls strictly inside, if any."""
        i = bisect.bisect_left(self._span_starts, pos)  # spans[:i] start before pos
        if i == 0 or self._reach[i - 1] <= pos:
            return None
        return next((s, e) for s, e in self.spans[:i] if s < pos < e)

    def split(self, limit: int) -> list[str]:
        if limit < 1:
            raise ValueError("limit too small for a chunk")
        text, length = self.text, self.length
        close_cost = length(CLOSE) if self.fences else 0
        chunks: list[str] = []
        pos = 0
        while pos < len(text):
            state = self.state_at(pos)
            fence = self._fence_at.get(pos)
            if state is not None and fence is not None and not fence.opens:
                # The previous chunk already closed this block: its own closing line is moot.
                pos = fence.end + 1
                continue
            prefix = "" if state is None else f"{FENCE}{state}\n"
            rest = text[pos:]
            if length(prefix + rest) <= limit:
                chunks.append(prefix + rest)
                break
            budget = limit - length(prefix) - close_cost
            if budget < 1:
                raise ValueError("limit too small for a chunk")
            end, resume = self._cut(pos, pos + _max_prefix(rest, budget, length))
            body = text[pos:end]
            if body:
                closing = CLOSE if self.state_at(end) is not None else ""
                chunks.append(prefix + body + closing)
            pos = resume
        return [c for c in chunks if c]

    def _cut(self, pos: int, window_end: int) -> tuple[int, int]:
        """Where to end the chunk starting at ``pos`` and where the next one starts."""
        text = self.text
        half = pos + (window_end - pos) // 2
        end, resume = window_end, window_end
        for sep in ("\n", " "):
            # One character more: a separator right after a full window is a clean cut too.
            found = self._last_free(sep, max(half, pos + 1), window_end)
            if found is not None:
                end, resume = found, found + 1
                break
        else:
            span = self._inside_span(window_end)
            if span is not None and span[0] > pos:
                end = resume = span[0]
        # Never end a chunk on a line that opens a block: the block would be empty here.
        i = bisect.bisect_right(self._fence_ends, end)
        last = self.fences[i - 1] if i else None
        if last is not None and last.opens and last.end == end and last.start > pos:
            resume = last.start
            end = last.start - 1 if text[last.start - 1] == "\n" else last.start
        return end, resume

    def _last_free(self, sep: str, lo: int, hi: int) -> int | None:
        """The last ``sep`` in ``text[lo:hi + 1]`` that is not inside a protected span."""
        text = self.text
        at = text.rfind(sep, lo, hi + 1)
        while at != -1:
            if self._inside_span(at) is None:
                return at
            at = text.rfind(sep, lo, at)
        return None


def _max_prefix(text: str, limit: int, length: Callable[[str], int]) -> int:
    """The largest n with length(text[:n]) <= limit (binary search; length is monotonic)."""
    lo, hi = 1, min(len(text), limit)
    if length(text[:hi]) <= limit:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if length(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo
