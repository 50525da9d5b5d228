"""Splitting long text into chunks that fit a platform's message limit."""

from __future__ import annotations

from collections.abc import Callable


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (how Telegram counts: characters outside the BMP count 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int, *, length: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into chunks with ``length(chunk) <= limit``.

    Prefers a newline, then a space, in the second half of the window; otherwise cuts hard (never
    inside a code point). Separators at a cut are dropped. An empty text yields no chunks.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    rest = text
    while rest:
        if length(rest) <= limit:
            chunks.append(rest)
            break
        cut = _max_prefix(rest, limit, length)
        window = rest[:cut]
        # One character more: a separator right after a full window is a clean cut too.
        for sep in ("\n", " "):
            pos = rest[: cut + 1].rfind(sep)
            if pos >= cut // 2 and pos > 0:
                chunks.append(rest[:pos])
                rest = rest[pos + 1 :]
                break
        else:
            chunks.append(window)
            rest = rest[cut:]
    return [c for c in chunks if c]


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
