"""Local files in agent text: the one classification table, path extraction, image headers.

Agents mention the files they produced ("chart saved to /tmp/run/chart.png"); the gateway turns
those mentions into native attachments. ``FILE_KINDS`` is the single table every adapter uses to
decide how a file travels: images inline (photo / image block), videos as video, audio and
everything else as a document.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class FileKind(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"


# Extension groups as they are documented; every group that is not image/video/audio is
# delivered as a document.
EXTENSION_GROUPS: dict[str, tuple[FileKind, tuple[str, ...]]] = {
    "image": (FileKind.IMAGE, ("png", "jpg", "jpeg", "gif", "webp", "bmp", "tiff", "svg")),
    "video": (FileKind.VIDEO, ("mp4", "mov", "avi", "mkv", "webm", "3gp")),
    "audio": (FileKind.AUDIO, ("mp3", "wav", "ogg", "opus", "m4a", "flac")),
    "document": (FileKind.DOCUMENT, ("pdf", "docx", "doc", "odt", "rtf", "txt", "md", "epub")),
    "spreadsheet": (
        FileKind.DOCUMENT,
        ("xlsx", "xls", "ods", "csv", "tsv", "json", "xml", "yaml", "yml"),
    ),
    "presentation": (FileKind.DOCUMENT, ("pptx", "ppt", "odp", "key")),
    "archive": (FileKind.DOCUMENT, ("zip", "tar", "gz", "tgz", "bz2", "xz", "7z")),
    "web page": (FileKind.DOCUMENT, ("html", "htm")),
}

FILE_KINDS: dict[str, FileKind] = {
    ext: kind for kind, exts in EXTENSION_GROUPS.values() for ext in exts
}


def classify(path: str | Path) -> FileKind | None:
    """The kind of a file by its extension (case-insensitive), or None if it is not deliverable."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return FILE_KINDS.get(suffix)


@dataclass(frozen=True)
class Partition:
    images: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    audio: list[Path] = field(default_factory=list)
    documents: list[Path] = field(default_factory=list)


def partition_files(paths: Iterable[str | Path]) -> Partition:
    """Split files by kind, keeping their order; unknown extensions travel as documents."""
    part = Partition()
    buckets = {
        FileKind.IMAGE: part.images,
        FileKind.VIDEO: part.videos,
        FileKind.AUDIO: part.audio,
        FileKind.DOCUMENT: part.documents,
    }
    for raw in paths:
        path = Path(raw)
        buckets[classify(path) or FileKind.DOCUMENT].append(path)
    return part


# --- extraction ---------------------------------------------------------------------------------

# Longest extensions first so "tgz" is not cut to "tg…" and "jpeg" wins over "jpe…".
_EXT_ALT = "|".join(sorted((re.escape(e) for e in FILE_KINDS), key=len, reverse=True))
_FENCE = re.compile(r"(?ms)^[ \t]*(```|~~~).*?(?:^[ \t]*\1[ \t]*$|\Z)")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_QUOTED = re.compile(
    r"""(?P<q>["'])(?P<path>(?:~/|/)[^"'\n]*?\.(?:""" + _EXT_ALT + r"""))(?P=q)""",
    re.IGNORECASE,
)
_BARE = re.compile(
    r"""(?:^|(?<=[\s(\[<{:=,]))(?P<path>(?:~/|/)[^\s"'`<>()\[\]{}]*?\.(?:"""
    + _EXT_ALT
    # A following "." / "," / ":" ends the path only as punctuation (then space or end): inside
    # a name it is another extension ("b.tar.gz" must not stop at ".tar").
    + r"""))(?=$|[\s"'`)\]>}]|[.,;:!?](?:[\s"'`)\]>}]|$))""",
    re.IGNORECASE | re.MULTILINE,
)


def _protected_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for rx in (_FENCE, _INLINE_CODE, _URL):
        spans.extend(m.span() for m in rx.finditer(text))
    return spans


def _overlaps(span: tuple[int, int], spans: Sequence[tuple[int, int]]) -> bool:
    start, end = span
    return any(start < e and s < end for s, e in spans)


def extract_local_files(text: str, *, home: Path | None = None) -> tuple[list[Path], str]:
    """Find existing local files mentioned in ``text``; return them and the text without them.

    Absolute and ``~/`` paths with a known extension (``FILE_KINDS``) count, bare or quoted (quotes
    allow spaces). Paths inside fenced blocks, inline code and URLs are left alone; only existing
    regular files are returned, each once, in order of first mention. ``home`` replaces ``~``
    (tests); by default the user's home directory is used.
    """
    protected = _protected_spans(text)
    found: list[tuple[int, int, str]] = []
    for rx in (_QUOTED, _BARE):
        for m in rx.finditer(text):
            if _overlaps(m.span(), protected) or _overlaps(m.span(), [(s, e) for s, e, _ in found]):
                continue
            found.append((m.start(), m.end(), m.group("path")))
    found.sort()

    files: list[Path] = []
    seen: set[Path] = set()
    removals: list[tuple[int, int]] = []
    for start, end, raw in found:
        path = _expand(raw, home)
        try:
            is_file = path.is_file()
        except OSError:
            is_file = False
        if not is_file:
            continue
        removals.append((start, end))
        if path not in seen:
            seen.add(path)
            files.append(path)

    if not removals:
        return files, text
    pieces: list[str] = []
    cursor = 0
    for start, end in removals:
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])
    return files, _tidy("".join(pieces))


def _expand(raw: str, home: Path | None) -> Path:
    if raw.startswith("~/"):
        base = home if home is not None else Path.home()
        return base / raw[2:]
    return Path(raw)


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t]{2,}", " ", line).rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip()


# --- image headers (stdlib only: Pillow is not a dependency) -------------------------------------


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG, GIF, JPEG or WebP header; None if unknown or unreadable."""
    try:
        with path.open("rb") as fh:
            head = fh.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return int(w), int(h)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                w, h = struct.unpack("<HH", head[6:10])
                return int(w), int(h)
            if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                return _webp_size(head)
            if head.startswith(b"\xff\xd8"):
                fh.seek(2)
                return _jpeg_size(fh.read())
    except (OSError, struct.error):
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return int(w) & 0x3FFF, int(h) & 0x3FFF
    if chunk == b"VP8L":
        b = head[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return w, h
    return None


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 0
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF_MARKERS and i + 9 <= len(data):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None
